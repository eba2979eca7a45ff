"""Option groups of the model config (`config.model.moe`, `config.model.funnel`):
the given keys checked against the group's defaults, then filled in."""

from __future__ import annotations

from typing import Any, Mapping


def with_defaults(group: str, given: Mapping[str, Any],
                  defaults: Mapping[str, Any]) -> dict[str, Any]:
  """`defaults` updated with `given`; a key not in `defaults` is a ValueError
  naming the group (`config.model.<group>`) and the valid keys."""
  given = dict(given)
  unknown = sorted(set(given) - set(defaults))
  if unknown:
    raise ValueError(f"unknown {group} options {unknown} (config.model.{group});"
                     f" valid: {sorted(defaults)}")
  return {**defaults, **given}

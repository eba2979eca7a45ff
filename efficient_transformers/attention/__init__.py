"""Attention mechanisms as pure functions, and their registry.

Every mechanism follows one contract (DESIGN.md, "Attention contract"):

    fn(q, k, v, *, mask=None, causal=False, **options) -> out
    q: [batch, q_len, heads, head_dim]; k, v: [batch, kv_len, heads, head_dim]
    mask: optional bool [batch, kv_len], True = real token (key padding)
    out: [batch, q_len, heads, head_dim], same dtype as q

`get(name)` returns the function; `REGISTRY` is the plain dict behind it.
Mechanisms whose support does not depend on the input also register a pattern
function: `pattern(name, q_len, kv_len, causal=..., **options)` returns the
bool [heads or 1, q_len, kv_len] array of the pairs they attend. That array is
the single truth shared by the oracle tests (dense with that `pair_mask` must
equal the mechanism), the Pallas block layouts and the documentation pictures.

Adding a mechanism: write `attention/<name>.py` with the function (and its
pattern function if the support is fixed), add both to the dicts below, and add
a test class to tests/attention/ that subclasses the shared contract base.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from efficient_transformers.attention.dense import dense, dense_pattern

REGISTRY: dict[str, Callable] = {
    "dense": dense,
}

PATTERNS: dict[str, Callable[..., np.ndarray]] = {
    "dense": dense_pattern,
}


def get(name: str) -> Callable:
  """The attention function registered as `name`."""
  try:
    return REGISTRY[name]
  except KeyError:
    raise ValueError(
        f"unknown attention {name!r}; registered: {', '.join(sorted(REGISTRY))}"
    ) from None


def pattern(name: str, q_len: int, kv_len: int, *, causal: bool = False,
            **options) -> np.ndarray:
  """bool [heads or 1, q_len, kv_len]: the pairs `name` attends with `options`."""
  if name not in PATTERNS:
    if name in REGISTRY:
      raise ValueError(
          f"attention {name!r} has no fixed pattern (its support depends on the"
          f" input); fixed patterns: {', '.join(sorted(PATTERNS))}")
    get(name)  # raises the unknown-name error
  return PATTERNS[name](q_len, kv_len, causal=causal, **options)


__all__ = ["REGISTRY", "PATTERNS", "get", "pattern", "dense"]

"""Dropout randomness is passed at call time, never stored in the model.

Every module here builds `nnx.Dropout` without `rngs`, so `nnx.state(model)`
holds only `nnx.Param` variables: the training loop checkpoints parameters
alone and derives each step's dropout key from (seed, step), passing
`rngs=nnx.Rngs(dropout=key)` to the model's `__call__`. Each dropout site
draws a fresh key from that stream, so one key per step suffices.
"""

from __future__ import annotations

from flax import nnx


def check_rngs(deterministic: bool, rngs: nnx.Rngs | None, where: str) -> None:
  """Raises ValueError when dropout is on (deterministic=False) without rngs."""
  if not deterministic and rngs is None:
    raise ValueError(
        f"{where}: deterministic=False needs dropout randomness; pass"
        " rngs=nnx.Rngs(dropout=key) (the model stores no random state), or"
        " deterministic=True for evaluation")

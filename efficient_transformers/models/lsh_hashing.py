"""The hash randomness of Reformer's LSH attention (Kitaev et al. 2020), drawn by
the attention layer (`MECHANISM_MODULES["reformer"]`); see attention/reformer.py.

No random state is stored (the training loop keeps only nnx.Param): the `rng`
passed to `attention.reformer` is a pure function of a key.
- Training (deterministic=False): a fresh key every call from the call's
  randomness (`rngs.dropout()`, the per-step key of the training loop), so
  the random rotations change every step, as in the paper and trax. The
  reversible stack (models/reversible.py) rebuilds the same `rngs` when it
  recomputes a layer, so the recomputation hashes identically.
- Evaluation (deterministic=True): the fixed key `jax.random.key(hash_seed)`,
  so evaluation is deterministic. Every layer gets the same rotations unless
  `layer_overrides` gives layers their own `hash_seed`; their inputs differ
  (each layer projects its own queries), so this only correlates the random
  rotations across layers. Keeping no per-layer constant also keeps every
  layer's structure identical, which lets the reversible stack scan over them.

attention_kw read: `hash_seed` (0). Nothing is trained.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
from flax import nnx


class LSHRandomness(nnx.Module):
  """Supplies `rng` (the rotations' key) to `attention.reformer`."""

  layer_options = ("hash_seed",)

  def __init__(self, *, emb_dim: int, num_heads: int, head_dim: int,
               max_length: int | None, attention_kw: Mapping[str, Any],
               rngs: nnx.Rngs):
    del emb_dim, num_heads, head_dim, max_length, rngs
    self.hash_seed = int(attention_kw.get("hash_seed", 0))

  def __call__(self, x, context, *, deterministic: bool, rngs=None) -> dict:
    del x, context
    if deterministic:
      return {"rng": jax.random.key(self.hash_seed)}
    if rngs is None:
      raise ValueError("reformer needs rngs=nnx.Rngs(dropout=key) in training"
                       " (fresh hash rotations every step)")
    return {"rng": rngs.dropout()}

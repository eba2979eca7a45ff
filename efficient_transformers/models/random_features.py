"""Performer's random features (Choromanski et al. 2020), drawn by the attention
layer (`MECHANISM_MODULES["performer"]`); see attention/performer.py.

No random state is stored (the training loop keeps only nnx.Param): features
are a pure function of a key.
- Evaluation (deterministic=True), and training with `redraw` False: the key is
  fixed, derived from `feature_seed` and a per-layer integer drawn from the
  parameter stream at construction, so every layer has its own features and
  evaluation is deterministic.
- Training with `redraw` True: fresh features every step from the call's
  randomness (`rngs.dropout()`, the per-step key of the training loop),
  as in performer-pytorch's feature redrawing (every step here; its default is
  every 1000 steps).
Features are never trained.

attention_kw read: `num_features` (256; 0 with kernel "relu" = LRA's
deterministic relu(x) features), `kernel`, `redraw` (False), `feature_seed` (0).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
from flax import nnx

from efficient_transformers.attention.performer import orthogonal_features


class PerformerFeatures(nnx.Module):
  """Draws the [num_features, head_dim] orthogonal features for each call."""

  layer_options = ("redraw", "feature_seed")

  def __init__(self, *, emb_dim: int, num_heads: int, head_dim: int,
               max_length: int | None, attention_kw: Mapping[str, Any],
               rngs: nnx.Rngs):
    del emb_dim, num_heads, max_length
    self.head_dim = head_dim
    self.num_features = int(attention_kw.get("num_features", 256))
    self.redraw = bool(attention_kw.get("redraw", False))
    layer_seed = jax.random.randint(rngs.params(), (), 0, 2**31 - 1)
    try:
      layer_seed = int(layer_seed)
    except jax.errors.ConcretizationTypeError:  # built under a trace
      layer_seed = 0
    self.seed = (int(attention_kw.get("feature_seed", 0)), layer_seed)

  def __call__(self, x, context, *, deterministic: bool, rngs=None) -> dict:
    del x, context
    if self.num_features <= 0:
      return {}  # relu kernel without random features
    if self.redraw and not deterministic:
      if rngs is None:
        raise ValueError("performer with redraw=True needs rngs in training")
      key = rngs.dropout()
    else:
      key = jax.random.fold_in(jax.random.key(self.seed[0]), self.seed[1])
    return {"features": orthogonal_features(key, self.num_features, self.head_dim)}

"""Linformer's length projections (Wang et al. 2020), owned by the attention
layer (`MECHANISM_MODULES["linformer"]`); see attention/linformer.py.

Parameters are sized for `max_length` positions and sliced to each call's
kv_len (fairseq's `weight[:, :tgt_len]`), so one model serves any length up to
max_length. Sharing (the paper's section 4):
- headwise (`share_heads`, default True): one [max_length, k] projection for
  every head, else one per head [heads, max_length, k];
- key-value (`share_kv`, default True as in LRA): E = F;
- layerwise: not available here: every layer owns its projections (LRA's
  released Linformer does not share across layers either).
Initialisation: xavier_uniform with gain 1/sqrt(2) (fairseq).

Sized by the layer's `max_length` (the encoder's, CLS included). Layer
options (attention_kw keys read here, not passed to the function): `low_rank`
k (default 32, LRA's `low_rank_features`), `share_kv`, `share_heads`.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
from flax import nnx


class LinformerProjections(nnx.Module):
  """Holds proj_k (and proj_v unless shared) and passes them, sliced."""

  layer_options = ("low_rank", "share_kv", "share_heads")

  def __init__(self, *, emb_dim: int, num_heads: int, head_dim: int,
               max_length: int | None, attention_kw: Mapping[str, Any],
               rngs: nnx.Rngs):
    del emb_dim, head_dim
    if not max_length:
      raise ValueError("linformer needs the layer's max_length (the longest key"
                       " sequence, CLS included) to size its projections")
    self.max_length = int(max_length)
    low_rank = int(attention_kw.get("low_rank", 32))
    self.share_kv = bool(attention_kw.get("share_kv", True))
    shape = (self.max_length, low_rank)
    if not attention_kw.get("share_heads", True):
      shape = (num_heads,) + shape
    init = jax.nn.initializers.variance_scaling(
        0.5, "fan_avg", "uniform", in_axis=-2, out_axis=-1)  # xavier, gain 1/sqrt(2)
    self.proj_k = nnx.Param(init(rngs.params(), shape))
    self.proj_v = None if self.share_kv else nnx.Param(init(rngs.params(), shape))

  def __call__(self, x, context, *, deterministic: bool, rngs=None) -> dict:
    del x, deterministic, rngs
    kv_len = context.shape[1]
    if kv_len > self.max_length:
      raise ValueError(f"linformer projections cover {self.max_length} positions,"
                       f" got kv_len {kv_len}: build the model for longer inputs")
    proj_k = self.proj_k[..., :kv_len, :]
    proj_v = proj_k if self.proj_v is None else self.proj_v[..., :kv_len, :]
    return {"proj_k": proj_k, "proj_v": proj_v}

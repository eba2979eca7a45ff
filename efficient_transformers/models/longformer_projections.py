"""Longformer's separate global projections Q_g, K_g, V_g (Beltagy et al. 2020, §3.1).

The paper computes global attention with its own linear projections: the
global tokens' queries Q_g, and every token's keys K_g and values V_g, while
the sliding-window rows (and the global keys that they see) use the layer's
ordinary Q_s, K_s, V_s. This module owns Q_g, K_g, V_g and hands them to
`attention.longformer` as its `global_qkv` option; the attention layer creates
it through `MECHANISM_MODULES["longformer"]`.

Initialisation: xavier_uniform without biases, like the layer's own
projections. The paper initialises Q_g, K_g, V_g as copies of Q_s, K_s, V_s
(to start from a pretrained RoBERTa); a mechanism module does not see the
layer's parameters, so here they start independent (training from scratch, as
in LRA, has no pretrained values to copy).
"""

from __future__ import annotations

from typing import Any, Mapping

import einops
import jax
from flax import nnx

from efficient_transformers.attention.longformer import NUM_GLOBAL


class LongformerGlobalProjections(nnx.Module):
  """Q_g for the first num_global tokens, K_g and V_g for every token.

  Args (the MECHANISM_MODULES factory signature):
    emb_dim, num_heads, head_dim: the attention layer's sizes.
    attention_kw: the mechanism options; reads num_global (default as
      attention.longformer).
    rngs: parameter initialisation.
  """

  def __init__(self, *, emb_dim: int, num_heads: int, head_dim: int,
               max_length: int | None, attention_kw: Mapping[str, Any],
               rngs: nnx.Rngs):
    del max_length
    self.num_global = int(attention_kw.get("num_global", NUM_GLOBAL))
    self.num_heads = num_heads

    def projection():
      return nnx.Linear(emb_dim, num_heads * head_dim, use_bias=False,
                        kernel_init=jax.nn.initializers.xavier_uniform(),
                        rngs=rngs)

    self.query_global = projection()
    self.key_global = projection()
    self.value_global = projection()

  def __call__(self, x: jax.Array, context: jax.Array, *, deterministic: bool,
               rngs: nnx.Rngs | None) -> dict[str, Any]:
    """x, context [B, L, E] -> {"global_qkv": (q_g [B, G, N, H], k_g, v_g [B, L, N, H])}."""
    del deterministic, rngs
    if self.num_global == 0:
      return {}
    split = lambda t: einops.rearrange(t, "b t (n h) -> b t n h", n=self.num_heads)
    q_g = split(self.query_global(x[:, :self.num_global]))
    return {"global_qkv": (q_g, split(self.key_global(context)),
                           split(self.value_global(context)))}

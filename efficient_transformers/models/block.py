"""Pre-LN Transformer block, as LRA's (`models/transformer/transformer.py`).

    x = x + Dropout(Attention(LN(x)))                      self-attention
    x = x + Dropout(CrossAttention(LN(x), memory))         if cross_attention
    x = x + Dropout(Dense(Dropout(GELU(Dense(LN(x))))))    MLP
    x = x + Dropout(MoE(LN(x)))                             MLP, if moe (models/moe.py)

Funnel (models/funnel.py): with `query` (the pooled stream), queries come from
LN(query), keys and values from LN(x), the residual is `query`, and the block
returns [batch, query_length, emb_dim]; `query_mask` is query's padding.

Cross-attention uses the same registered mechanism as self-attention (never
causal), so efficient mechanisms that support q_len != kv_len serve it too.
Shapes: x [batch, length, emb_dim] -> same; memory [batch, mem_length, emb_dim].
Dense init as LRA's MlpBlock: xavier_uniform kernels, normal(1e-6) biases.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
from flax import nnx

from efficient_transformers.models.attention_layer import AttentionLayer
from efficient_transformers.models.dropout import check_rngs
from efficient_transformers.models.moe import MoEFeedForward


class Block(nnx.Module):
  """One pre-LN Transformer layer: attention, optional cross-attention, MLP.

  Args:
    emb_dim: width E of the residual stream.
    num_heads: attention heads.
    mlp_dim: hidden width of the MLP.
    qkv_dim: total q/k/v width (default emb_dim).
    attention, attention_kw: the registered mechanism and its options.
    dropout_rate: dropout on each residual branch and after the GELU.
    cross_attention: add a cross-attention sub-layer over `memory`.
    max_length: longest sequence (self and memory), for mechanism parameters.
    moe: None (dense MLP) or the options of a MoEFeedForward replacing it.
    rngs: parameter initialisation.
  """

  def __init__(self, emb_dim: int, num_heads: int, mlp_dim: int, *,
               qkv_dim: int | None = None, attention: str = "dense",
               attention_kw: Mapping[str, Any] | None = None,
               dropout_rate: float = 0.1, cross_attention: bool = False,
               max_length: int | None = None,
               moe: Mapping[str, Any] | None = None, rngs: nnx.Rngs):
    def attention_layer():
      return AttentionLayer(emb_dim, num_heads, qkv_dim=qkv_dim,
                            attention=attention, attention_kw=attention_kw,
                            max_length=max_length, rngs=rngs)

    def dense(d_in, d_out):
      return nnx.Linear(d_in, d_out,
                        kernel_init=jax.nn.initializers.xavier_uniform(),
                        bias_init=jax.nn.initializers.normal(1e-6), rngs=rngs)

    self.attention_norm = nnx.LayerNorm(emb_dim, rngs=rngs)
    self.attention = attention_layer()
    if cross_attention:
      self.cross_attention_norm = nnx.LayerNorm(emb_dim, rngs=rngs)
      self.cross_attention = attention_layer()
    else:
      self.cross_attention = None
    self.mlp_norm = nnx.LayerNorm(emb_dim, rngs=rngs)
    if moe is None:
      self.moe = None
      self.mlp_in = dense(emb_dim, mlp_dim)
      self.mlp_out = dense(mlp_dim, emb_dim)
    else:
      self.moe = MoEFeedForward(emb_dim, mlp_dim, moe=moe,
                                dropout_rate=dropout_rate, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x: jax.Array, *, mask: jax.Array | None = None,
               causal: bool = False, memory: jax.Array | None = None,
               memory_mask: jax.Array | None = None,
               query: jax.Array | None = None,
               query_mask: jax.Array | None = None, deterministic: bool,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """x [B, L, E] -> [B, L, E] ([B, Lq, E] when query is given).

    Args:
      x: the residual stream.
      mask: bool [B, L] key padding of x, True = real token.
      causal: causal self-attention.
      memory: [B, M, E] states to cross-attend (needed iff cross_attention).
      memory_mask: bool [B, M] key padding of memory.
      query: optional [B, Lq, E] stream whose LN gives the queries (Funnel's
        pooled query); keys and values still come from x.
      query_mask: bool [B, Lq] padding of query (for the MoE).
      deterministic: disable dropout.
      rngs: dropout randomness (`nnx.Rngs(dropout=key)`), needed unless
        deterministic.
    """
    check_rngs(deterministic, rngs, "Block")
    drop = lambda y: self.dropout(y, deterministic=deterministic, rngs=rngs)
    context = self.attention_norm(x)
    if query is None:
      query, query_mask, queries = x, mask, context
    else:
      queries = self.attention_norm(query)
    x = query + drop(self.attention(queries, context, mask=mask, causal=causal,
                                    deterministic=deterministic, rngs=rngs))
    if self.cross_attention is not None:
      if memory is None:
        raise ValueError("Block has cross_attention but no memory was given")
      x = x + drop(self.cross_attention(
          self.cross_attention_norm(x), memory, mask=memory_mask,
          deterministic=deterministic, rngs=rngs))
    elif memory is not None:
      raise ValueError("memory given to a Block without cross_attention")
    if self.moe is not None:
      return x + drop(self.moe(self.mlp_norm(x), mask=query_mask,
                               deterministic=deterministic, rngs=rngs))
    h = drop(jax.nn.gelu(self.mlp_in(self.mlp_norm(x))))
    return x + drop(self.mlp_out(h))

"""The one Transformer encoder every model uses (LRA's TransformerEncoder).

    tokens [B, L] -> Embedder -> (CLS prepended) -> num_layers pre-LN Blocks
    -> final LayerNorm
    -> hidden [B, L(+1), E], mask [B, L(+1)]

Padding: token id 0 is padding; the key mask is `tokens != 0` (LRA's
`inputs > 0`). Padded positions still get hidden states, which callers ignore
through the returned mask.

CLS (`use_cls=True`): the Embedder prepends a learned zero-init vector before
adding positions, so CLS sits at position 0 as in LRA; `max_length` counts
tokens only. CLS is always a real key (LRA copies the first token's mask).

Mixture-of-Experts (`moe`, models/moe.py): the MLP of layers i with
i % every == every - 1 becomes a MoEFeedForward. Funnel downsampling
(`funnel`, models/funnel.py): the layers form stages of `block_sizes` layers
and the sequence (and its mask) is pooled before each stage after the first;
the returned hidden states and mask then have the last stage's length, and
`stage_lengths(length)` gives every stage's length.

The same class is the decoder of the LM heads (`causal=True`) and of the
encoder-decoder (`causal=True, cross_attention=True`, attending to `memory`).
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from efficient_transformers.models.block import Block
from efficient_transformers.models.dropout import check_rngs
from efficient_transformers.models.embedding import Embedder
from efficient_transformers.models import funnel as funnel_lib
from efficient_transformers.models.moe import is_moe_layer, moe_options
from efficient_transformers.models import reversible as reversible_lib


def layer_attention(attention: str, attention_kw: Mapping[str, Any] | None,
                    layer_overrides: Sequence[Mapping[str, Any]] | None,
                    layer: int) -> tuple[str, dict[str, Any]]:
  """The (mechanism, options) of one layer, after `layer_overrides`."""
  kw = dict(attention_kw or {})
  if layer_overrides:
    override = dict(layer_overrides[layer % len(layer_overrides)])
    if override.get("attention", attention) != attention:
      kw = {}  # another mechanism: the base options do not apply to it
    attention = override.pop("attention", attention)
    kw.update(override)
  return attention, kw


class Encoder(nnx.Module):
  """Embedder, optional CLS, a stack of pre-LN blocks and a final LayerNorm.

  Args:
    vocab_size: number of token ids (0 = padding).
    max_length: longest token sequence accepted (CLS not counted).
    num_layers, emb_dim, num_heads, mlp_dim, qkv_dim: sizes (qkv_dim defaults
      to emb_dim).
    attention, attention_kw: registered mechanism and its options.
    layer_overrides: optional sequence of dicts cycled over the layers: layer i
      uses `attention` and `attention_kw` updated by
      layer_overrides[i % len(layer_overrides)]: key "attention" names another
      mechanism (whose options are then only that dict's other keys); other
      keys update `attention_kw`. E.g. Axial
      Transformer layers alternating axes: ({"axis": 0}, {"axis": 1}); the
      Memory-Compressed Transformer's mix: ({"attention": "local"},
      {"attention": "memory_compressed"}).
    dropout_rate: dropout on embeddings and every residual branch.
    position: "sinusoidal", "learned" or "none".
    use_cls: prepend a learned CLS vector.
    causal: causal self-attention in every block.
    cross_attention: every block cross-attends to `memory`.
    moe: None, or MoE options (models/moe.py) for the MLP of every
      `every`-th layer.
    funnel: None, or Funnel pooling options (models/funnel.py); not causal.
    reversible: run the blocks as a reversible stack (models/reversible.py):
      activation memory independent of depth; self-attention blocks only.
    remat: rematerialise every block in the backward pass (nnx.remat).
    ffn_chunk_size: feed-forward positions per chunk (reversible stack only).
    rngs: parameter initialisation.
  """

  def __init__(self, vocab_size: int, max_length: int, *, num_layers: int,
               emb_dim: int, num_heads: int, mlp_dim: int,
               qkv_dim: int | None = None, attention: str = "dense",
               attention_kw: Mapping[str, Any] | None = None,
               layer_overrides: Sequence[Mapping[str, Any]] | None = None,
               dropout_rate: float = 0.1, position: str = "sinusoidal",
               use_cls: bool = False, causal: bool = False,
               cross_attention: bool = False,
               moe: Mapping[str, Any] | None = None,
               funnel: Mapping[str, Any] | None = None,
               reversible: bool = False, remat: bool = False,
               ffn_chunk_size: int | None = None, rngs: nnx.Rngs):
    self.funnel = funnel_lib.funnel_options(funnel, num_layers=num_layers,
                                            causal=causal)
    self.pool_layers = funnel_lib.pool_layers(self.funnel)
    moe = moe_options(moe)
    if reversible and (remat or funnel):
      raise ValueError("reversible=True already recomputes activations and"
                       " cannot pool (funnel): unset remat and funnel")
    if ffn_chunk_size and not reversible:
      raise ValueError("ffn_chunk_size chunks the reversible stack's"
                       " feed-forward: set reversible=True or unset it")
    self.reversible, self.remat = bool(reversible), bool(remat)
    self.ffn_chunk_size = ffn_chunk_size
    self.emb_dim = emb_dim
    self.mlp_dim = mlp_dim
    self.use_cls = use_cls
    self.causal = causal
    self.embedder = Embedder(vocab_size, emb_dim, max_length, position=position,
                             dropout_rate=dropout_rate, use_cls=use_cls, rngs=rngs)
    layers = [layer_attention(attention, attention_kw, layer_overrides, i)
              for i in range(num_layers)]
    self.blocks = nnx.List([
        Block(emb_dim, num_heads, mlp_dim, qkv_dim=qkv_dim,
              attention=name, attention_kw=kw,
              dropout_rate=dropout_rate, cross_attention=cross_attention,
              max_length=max_length + use_cls,
              moe=moe if is_moe_layer(moe, i) else None, rngs=rngs)
        for i, (name, kw) in enumerate(layers)])
    self.final_norm = nnx.LayerNorm(emb_dim, rngs=rngs)
    if self.reversible:
      reversible_lib.check_reversible_blocks(self.blocks)

  def __call__(self, tokens: jax.Array, *, memory: jax.Array | None = None,
               memory_mask: jax.Array | None = None, deterministic: bool,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, jax.Array]:
    """int tokens [B, L] -> (hidden [B, L(+1), E], mask bool [B, L(+1)]).

    Args:
      tokens: int token ids, 0 = padding.
      memory, memory_mask: [B, M, E] and bool [B, M], for cross_attention.
      deterministic: disable dropout.
      rngs: dropout randomness (`nnx.Rngs(dropout=key)`), needed unless
        deterministic.

    Returns:
      hidden states after the final LayerNorm (CLS first when use_cls) and the
      mask of real positions (CLS is always real); with funnel, both have the
      last stage's length.
    """
    check_rngs(deterministic, rngs, "Encoder")
    mask_BxL = tokens != 0
    x_BxLxE = self.embedder(tokens, deterministic=deterministic, rngs=rngs)
    if self.use_cls:
      mask_BxL = jnp.concatenate(
          [jnp.ones((tokens.shape[0], 1), bool), mask_BxL], axis=1)
    if self.reversible:
      if memory is not None:
        raise ValueError("the reversible stack has no cross-attention (memory)")
      x_BxLxE = reversible_lib.reversible_stack(
          self.blocks, x_BxLxE, mask=mask_BxL, causal=self.causal,
          deterministic=deterministic, rngs=rngs,
          ffn_chunk_size=self.ffn_chunk_size)
      return self.final_norm(x_BxLxE), mask_BxL
    pooled = False
    for i, block in enumerate(self.blocks):
      call = dict(mask=mask_BxL, causal=self.causal, memory=memory,
                  memory_mask=memory_mask, deterministic=deterministic, rngs=rngs)
      if i in self.pool_layers:
        query_BxQxE, query_mask_BxQ = funnel_lib.pool_stage(
            x_BxLxE, mask_BxL, self.funnel, use_cls=self.use_cls)
        call.update(query=query_BxQxE, query_mask=query_mask_BxQ)
        pooled = True
      # After the first pooling, name the funnel layer if the mechanism fails.
      errors = (funnel_lib.check_stage_call(
          block.attention.attention, i, call.get("query", x_BxLxE).shape[1],
          x_BxLxE.shape[1]) if pooled else contextlib.nullcontext())
      with errors:
        x_BxLxE = (reversible_lib.remat_block(block, x_BxLxE, **call)
                   if self.remat else block(x_BxLxE, **call))
      mask_BxL = call.get("query_mask", mask_BxL)
    return self.final_norm(x_BxLxE), mask_BxL

  def stage_lengths(self, length: int) -> tuple[int, ...]:
    """Sequence length of each stage for `length` tokens (CLS included)."""
    return funnel_lib.stage_lengths(length + self.use_cls, self.funnel,
                                    use_cls=self.use_cls)

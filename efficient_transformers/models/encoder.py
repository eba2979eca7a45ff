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

The same class is the decoder of the LM heads (`causal=True`) and of the
encoder-decoder (`causal=True, cross_attention=True`, attending to `memory`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from efficient_transformers.models.block import Block
from efficient_transformers.models.dropout import check_rngs
from efficient_transformers.models.embedding import Embedder


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
    rngs: parameter initialisation.
  """

  def __init__(self, vocab_size: int, max_length: int, *, num_layers: int,
               emb_dim: int, num_heads: int, mlp_dim: int,
               qkv_dim: int | None = None, attention: str = "dense",
               attention_kw: Mapping[str, Any] | None = None,
               layer_overrides: Sequence[Mapping[str, Any]] | None = None,
               dropout_rate: float = 0.1, position: str = "sinusoidal",
               use_cls: bool = False, causal: bool = False,
               cross_attention: bool = False, rngs: nnx.Rngs):
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
              max_length=max_length + use_cls, rngs=rngs)
        for name, kw in layers])
    self.final_norm = nnx.LayerNorm(emb_dim, rngs=rngs)

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
      mask of real positions (CLS is always real).
    """
    check_rngs(deterministic, rngs, "Encoder")
    mask_BxL = tokens != 0
    x_BxLxE = self.embedder(tokens, deterministic=deterministic, rngs=rngs)
    if self.use_cls:
      mask_BxL = jnp.concatenate(
          [jnp.ones((tokens.shape[0], 1), bool), mask_BxL], axis=1)
    for block in self.blocks:
      x_BxLxE = block(x_BxLxE, mask=mask_BxL, causal=self.causal, memory=memory,
                      memory_mask=memory_mask, deterministic=deterministic,
                      rngs=rngs)
    return self.final_norm(x_BxLxE), mask_BxL

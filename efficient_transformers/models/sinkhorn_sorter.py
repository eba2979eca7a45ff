"""Sparse Sinkhorn attention's sorting network (Tay et al. 2020, "SortNet"),
owned by the attention layer (`MECHANISM_MODULES["sinkhorn"]`); see
attention/sinkhorn.py.

Paper: Tay, Bahri, Yang, Metzler, Juan 2020, "Sparse Sinkhorn Attention".
Family: learnable patterns.
Complexity: O(L * E + nb * E^2 + nb * E * heads * nb_max) per example.

SortNet: the layer input x [B, L, E] is cut into nb = ceil(L / block_size)
blocks; each block is summarised by the mean of its real tokens (the paper
pools by a sum; the mean keeps the scale independent of block_size and of
padding), and a two-layer MLP (E -> E, ReLU, E -> heads * nb_max) gives, per
head, a row of sort logits over the blocks: sort_logits [B, heads, nb, nb]
(nb_max = ceil(max_length / block_size) columns, the first nb used). One sort
per head, as in LRA's SortNet (a dense layer per head over block sums).

Causal: block u is summarised by the running mean of the tokens up to and
including its first token (as sinkhorn-transformer does), which every query of
block u may see; the function then sorts only strictly earlier blocks.

Gumbel noise: in training (deterministic=False, `gumbel_noise` True) the layer
passes `rng = rngs.dropout()` (the training loop's per-step key) to the
function; evaluation is noise-free and deterministic.

attention_kw read: `block_size` (required, shared with the function),
`gumbel_noise` (True; consumed here).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from efficient_transformers.attention import blocked


class SinkhornSorter(nnx.Module):
  """Sort logits [B, heads, nb, nb] from block summaries of the layer input."""

  layer_options = ("gumbel_noise",)
  call_inputs = ("mask", "causal")

  def __init__(self, *, emb_dim: int, num_heads: int, head_dim: int,
               max_length: int | None, attention_kw: Mapping[str, Any],
               rngs: nnx.Rngs):
    del head_dim
    block_size = attention_kw.get("block_size")
    if block_size is None or int(block_size) < 1:
      raise ValueError("sinkhorn needs attention_kw.block_size >= 1, got"
                       f" {block_size!r}")
    if max_length is None:
      raise ValueError("sinkhorn's sorting network is sized by max_length (its"
                       " output has one logit per block); build the layer with"
                       " max_length")
    self.block_size = int(block_size)
    self.num_heads = num_heads
    self.max_blocks = -(-max_length // self.block_size)
    self.gumbel_noise = bool(attention_kw.get("gumbel_noise", True))
    self.hidden = nnx.Linear(emb_dim, emb_dim, rngs=rngs)
    self.logits = nnx.Linear(emb_dim, num_heads * self.max_blocks, rngs=rngs)

  def __call__(self, x, context, *, mask=None, causal=False,
               deterministic: bool, rngs=None) -> dict:
    del context  # self-attention: x is the sequence that is sorted
    batch, length, _ = x.shape
    num_blocks = -(-length // self.block_size)
    if num_blocks > self.max_blocks:
      raise ValueError(f"sequence of {length} tokens has {num_blocks} blocks, more"
                       f" than the {self.max_blocks} the sorter was built for")
    weight = (jnp.ones((batch, length), jnp.float32) if mask is None
              else mask.astype(jnp.float32))
    x = x.astype(jnp.float32) * weight[..., None]
    if causal:
      first = jnp.arange(num_blocks) * self.block_size
      sums = jnp.cumsum(x, axis=1)[:, first]
      counts = jnp.cumsum(weight, axis=1)[:, first]
    else:
      sums = blocked.to_blocks(x, self.block_size).sum(2)
      counts = blocked.to_blocks(weight, self.block_size).sum(2)
    summary_BxCxE = sums / jnp.maximum(counts, 1.0)[..., None]
    out = self.logits(jax.nn.relu(self.hidden(summary_BxCxE)))
    out = out.reshape(batch, num_blocks, self.num_heads, self.max_blocks)
    options = {"sort_logits": jnp.swapaxes(out[..., :num_blocks], 1, 2)}
    if self.gumbel_noise and not deterministic:
      if rngs is None:
        raise ValueError("sinkhorn with gumbel_noise=True needs rngs in training"
                         " (or set attention_kw.gumbel_noise=False)")
      options["rng"] = rngs.dropout()
    return options

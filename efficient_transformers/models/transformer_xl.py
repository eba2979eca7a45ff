"""Transformer-XL language model (Dai et al. 2019), optionally Compressive (Rae et al. 2020).

Papers: Dai et al., "Transformer-XL: Attentive Language Models Beyond a
Fixed-Length Context", ACL 2019; Rae et al., "Compressive Transformers for
Long-Range Sequence Modelling", ICLR 2020 (`cmem_len` > 0, see compressive.py).
Survey family (Tay et al.): recurrence.

    tokens [B, L] (one segment of B parallel streams)
      -> token embedding (+ dropout; no absolute positions)
      -> num_layers blocks: x + Drop(RelAttn(LN(x) -> LN([cmem; mem; x])))
                            x + Drop(MLP(LN(x)))
      -> LayerNorm -> Dense(vocab) -> logits [B, L, vocab]

Segment-level recurrence: layer l's memory holds the stop-gradient of its
*input* over the previous segments (the paper's SG(h^{n-1}_{tau})), so keys
and values span [memory; segment] while gradients stay within the segment.
Attention is causal over that span with relative positions
(relative_attention.py).

State (nnx.Cache, models/variables.py): per layer `memory` [B, S, E] with
S = max(mem_len, eval_mem_len) slots, newest last, and one `memory_filled`
count of valid slots for all layers (all-zeros = empty memory: unfilled slots
are masked). Compressive: per layer `compressed_memory` [B, cmem_len, E] and
one `compressed_filled`. Deviation from variables.py's rule for model state:
the memory advances on EVERY forward pass, evaluation included (that is what
the memory is for); the training loop zeroes every Cache at the start of
training and of each evaluation and feeds the segments in order
(`lra.byte_lm` lays the stream out so that row r of batch t continues row r
of batch t-1). Training attends to the last `mem_len` memories, evaluation
(deterministic=True) to the last `eval_mem_len` (the paper evaluates with a
longer memory than it trains with).

Because the memory has one row per stream, every call must have exactly
`batch_size` rows (config: model.batch_size, tied to train.batch_size and
train.eval_batch_size by the lm configs; grad_accum_steps must be 1).
With mem_len = eval_mem_len = cmem_len = 0 the model holds no state and is an
ordinary causal Transformer with relative positions (any batch size).

Complexity per segment and layer: O(L (L + M + C) d) time, O((M + C) d) state.

Options: mem_len, eval_mem_len (default mem_len), cmem_len (0),
compression_rate (3), reconstruction_weight (1.0), batch_size; the usual
sizes num_layers, emb_dim, num_heads, mlp_dim, qkv_dim, dropout_rate.
Deviations: pre-LN blocks as the rest of the zoo (the official code's default
is post-LN; `pre_lnorm=True` is its option), GELU MLP, no adaptive softmax,
no `same_length` or `clamp_len`, token ids 0 are not masked (the lm task has no
padding). Compressive with eval_mem_len != mem_len is not supported.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from efficient_transformers.models.compressive import MemoryCompressor
from efficient_transformers.models.dropout import check_rngs
from efficient_transformers.models.embedding import Embedder
from efficient_transformers.models.relative_attention import RelativeAttention


def push(buffer_BxSxE, new_BxTxE):
  """FIFO append, newest last: the last S rows of [buffer [B, S, E]; new [B, T, E]]."""
  size = buffer_BxSxE.shape[1]
  out = jnp.concatenate([buffer_BxSxE, new_BxTxE.astype(buffer_BxSxE.dtype)], 1)
  return out[:, out.shape[1] - size:]


def suffix_valid(size: int, filled) -> jax.Array:
  """bool [size]: the last `filled` slots are valid."""
  return jnp.arange(size) >= size - filled


class TransformerXLBlock(nnx.Module):
  """Pre-LN block: relative attention over [memories; x], then the MLP."""

  def __init__(self, emb_dim, num_heads, mlp_dim, *, qkv_dim, dropout_rate,
               rngs: nnx.Rngs):
    def dense(d_in, d_out):  # As block.Block's MLP.
      return nnx.Linear(d_in, d_out, kernel_init=jax.nn.initializers.xavier_uniform(),
                        bias_init=jax.nn.initializers.normal(1e-6), rngs=rngs)

    self.attention_norm = nnx.LayerNorm(emb_dim, rngs=rngs)
    self.attention = RelativeAttention(emb_dim, num_heads, qkv_dim=qkv_dim, rngs=rngs)
    self.mlp_norm = nnx.LayerNorm(emb_dim, rngs=rngs)
    self.mlp_in = dense(emb_dim, mlp_dim)
    self.mlp_out = dense(mlp_dim, emb_dim)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x, memories, context_valid, *, deterministic, rngs):
    """x [B, L, E], memories [B, K - L, E], context_valid bool [B, K]."""
    drop = lambda y: self.dropout(y, deterministic=deterministic, rngs=rngs)
    context = self.attention_norm(jnp.concatenate([memories.astype(x.dtype), x], 1))
    x_norm = context[:, memories.shape[1]:]
    x = x + drop(self.attention(x_norm, context, context_valid))
    h = drop(jax.nn.gelu(self.mlp_in(self.mlp_norm(x))))
    return x + drop(self.mlp_out(h)), x_norm


_UNSUPPORTED_DEFAULTS = (None, {}, (), False, 0)


class TransformerXL(nnx.Module):
  """Transformer-XL / Compressive Transformer LM head ("transformer_xl").

  Args:
    vocab_size: token ids (task lm: 257).
    max_length: the segment length L the data uses (longest accepted).
    num_layers, emb_dim, num_heads, mlp_dim, qkv_dim, dropout_rate: sizes.
    mem_len: memories per layer attended in training (0 = none).
    eval_mem_len: memories attended when deterministic (default mem_len).
    cmem_len: compressed memories per layer (0 = plain Transformer-XL).
    compression_rate: c of the compressive memory's conv.
    reconstruction_weight: weight of the attention-reconstruction loss.
    batch_size: rows of every call (the streams the memory follows).
    attention, position, attention_kw, layer_overrides: accepted for
      models.build; must be "dense", "relative", empty and None.
    rngs: parameter initialisation.
  """

  def __init__(self, vocab_size: int, max_length: int, *, num_layers: int,
               emb_dim: int, num_heads: int, mlp_dim: int,
               qkv_dim: int | None = None, dropout_rate: float = 0.1,
               mem_len: int = 0, eval_mem_len: int | None = None,
               cmem_len: int = 0, compression_rate: int = 3,
               reconstruction_weight: float = 1.0, batch_size: int | None = None,
               attention: str = "dense", position: str = "relative",
               attention_kw=None, layer_overrides=None, rngs: nnx.Rngs,
               **other_options):
    eval_mem_len = mem_len if eval_mem_len is None else eval_mem_len
    if attention != "dense" or position != "relative" or layer_overrides:
      raise ValueError(
          "transformer_xl uses dense attention with relative positions: set "
          f"model.attention='dense', model.position='relative' and no "
          f"layer_overrides (got {attention!r}, {position!r}, {layer_overrides!r})")
    unsupported = sorted(k for k, v in {**dict(attention_kw or {}), **other_options}.items()
                         if k != "impl" and v not in _UNSUPPORTED_DEFAULTS)
    if unsupported:
      raise ValueError(f"transformer_xl does not support model options {unsupported}")
    if min(mem_len, eval_mem_len, cmem_len) < 0:
      raise ValueError("mem_len, eval_mem_len and cmem_len must be >= 0")
    if cmem_len and (mem_len == 0 or eval_mem_len != mem_len):
      raise ValueError(
          "the compressive memory (cmem_len > 0) needs mem_len > 0 and "
          f"eval_mem_len == mem_len; got mem_len={mem_len}, eval_mem_len={eval_mem_len}")
    self.mem_len, self.eval_mem_len, self.cmem_len = mem_len, eval_mem_len, cmem_len
    self.memory_size = max(mem_len, eval_mem_len)
    stateful = self.memory_size > 0
    if stateful and not batch_size:
      raise ValueError("transformer_xl with memory needs model.batch_size (the "
                       "number of parallel streams = config.train.batch_size)")
    self.batch_size = batch_size if stateful else None
    self.embedder = Embedder(vocab_size, emb_dim, max_length, position="none",
                             dropout_rate=dropout_rate, rngs=rngs)
    self.blocks = nnx.List([
        TransformerXLBlock(emb_dim, num_heads, mlp_dim, qkv_dim=qkv_dim,
                           dropout_rate=dropout_rate, rngs=rngs)
        for _ in range(num_layers)])
    self.final_norm = nnx.LayerNorm(emb_dim, rngs=rngs)
    self.output_projection = nnx.Linear(emb_dim, vocab_size, rngs=rngs)
    zeros = lambda size: jnp.zeros((self.batch_size or 0, size, emb_dim), jnp.float32)
    self.memory = nnx.List([nnx.Cache(zeros(self.memory_size))
                            for _ in range(num_layers)] if stateful else [])
    self.memory_filled = nnx.Cache(jnp.zeros((), jnp.int32))
    if cmem_len:
      self.compressors = nnx.List([
          MemoryCompressor(emb_dim, compression_rate,
                           reconstruction_weight=reconstruction_weight, rngs=rngs)
          for _ in range(num_layers)])
      self.compressed_memory = nnx.List([nnx.Cache(zeros(cmem_len))
                                         for _ in range(num_layers)])
      self.compressed_filled = nnx.Cache(jnp.zeros((), jnp.int32))

  def __call__(self, tokens: jax.Array, *, deterministic: bool,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """int tokens [B, L] -> logits [B, L, vocab]; advances the memory."""
    check_rngs(deterministic, rngs, "TransformerXL")
    batch, length = tokens.shape
    if self.batch_size is not None and batch != self.batch_size:
      raise ValueError(
          f"transformer_xl's memory follows batch_size={self.batch_size} streams"
          f" (config.model.batch_size) but got a batch of {batch} rows: set "
          "config.train.batch_size and config.train.eval_batch_size to it, with "
          "grad_accum_steps=1")
    active = self.eval_mem_len if deterministic else self.mem_len
    x = self.embedder(tokens, deterministic=deterministic, rngs=rngs)
    filled = self.memory_filled[...]
    memory_valid = suffix_valid(active, jnp.minimum(filled, active))
    valid = [memory_valid, jnp.ones((length,), bool)]
    if self.cmem_len:
      compressed_filled = self.compressed_filled[...]
      valid.insert(0, suffix_valid(self.cmem_len, compressed_filled))
      # The L oldest of [memory; segment] leave the memory: a suffix is valid.
      evicted_valid = jnp.concatenate(valid[1:])[:length]
      num_compressed = evicted_valid.reshape(-1, self.compressors[0].compression_rate
                                             ).all(-1).sum()
    context_valid = jnp.concatenate(valid)
    context_valid = jnp.broadcast_to(context_valid, (batch, context_valid.shape[0]))
    for layer, block in enumerate(self.blocks):
      memories = []
      if self.cmem_len:
        memories.append(self.compressed_memory[layer][...])
      if active:
        memories.append(self.memory[layer][...][:, self.memory_size - active:])
      memories = (jnp.concatenate(memories, 1) if memories
                  else jnp.zeros((batch, 0, x.shape[-1]), x.dtype))
      layer_input = jax.lax.stop_gradient(x)
      x, x_norm = block(x, memories, context_valid, deterministic=deterministic,
                        rngs=rngs)
      if self.cmem_len:
        evicted = jnp.concatenate([memories[:, self.cmem_len:].astype(x.dtype),
                                   layer_input], 1)[:, :length]
        compressor = self.compressors[layer]
        if not deterministic:
          compressor.reconstruction_loss(
              self.blocks[layer].attention, self.blocks[layer].attention_norm,
              x_norm, evicted, jnp.broadcast_to(evicted_valid, (batch, length)))
        self.compressed_memory[layer][...] = push(
            self.compressed_memory[layer][...],
            jax.lax.stop_gradient(compressor(evicted)))
      if self.memory_size:
        self.memory[layer][...] = push(self.memory[layer][...], layer_input)
    if self.memory_size:
      self.memory_filled[...] = jnp.minimum(filled + length, self.memory_size)
    if self.cmem_len:
      self.compressed_filled[...] = jnp.minimum(compressed_filled + num_compressed,
                                                self.cmem_len)
    return self.output_projection(self.final_norm(x))

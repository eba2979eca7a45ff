"""Language-model heads: decoder-only and encoder-decoder (Vaswani et al. 2017).

CausalLM:       tokens [B, L] -> causal Encoder (no CLS) -> Dense(vocab)
                -> logits [B, L, vocab]; logits[:, i] sees tokens[:, :i+1] only.
EncoderDecoder: source [B, Ls] -> Encoder -> memory [B, Ls, E],
                memory mask source != 0;
                target [B, Lt] -> causal Encoder cross-attending to memory
                -> Dense(vocab) -> logits [B, Lt, vocab].

CausalLM.generate continues prompts token by token with each mechanism's
incremental state (models/decoding.py: KV cache, ring buffer, recurrent state).

Inputs are taken as given: shifting targets right (teacher forcing) is the
caller's job. Id 0 is padding and is masked as a key, so a start-of-sequence
token must be a nonzero id. Source and target share vocab_size and max_length.
"""

from __future__ import annotations

import jax
from flax import nnx

from efficient_transformers.models import decoding
from efficient_transformers.models.encoder import Encoder


class CausalLM(nnx.Module):
  """Decoder-only LM.

  Args:
    vocab_size, max_length: as Encoder.
    rngs: parameter initialisation.
    **encoder_kw: Encoder's sizes and mechanism (num_layers, emb_dim,
      num_heads, mlp_dim, qkv_dim, attention, attention_kw, dropout_rate,
      position).
  """

  def __init__(self, vocab_size: int, max_length: int, *, rngs: nnx.Rngs,
               **encoder_kw):
    self.decoder = Encoder(vocab_size, max_length, causal=True, rngs=rngs,
                           **encoder_kw)
    self.output_projection = nnx.Linear(self.decoder.emb_dim, vocab_size,
                                        rngs=rngs)

  def __call__(self, tokens: jax.Array, *, deterministic: bool,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """int tokens [B, L] -> logits [B, L, vocab_size]."""
    hidden, _ = self.decoder(tokens, deterministic=deterministic, rngs=rngs)
    return self.output_projection(hidden)

  def generate(self, prompt: jax.Array, *, num_tokens: int,
               rng: jax.Array | None = None, temperature: float = 0.0,
               top_k: int | None = None) -> jax.Array:
    """Greedy (temperature 0) or sampled continuation, token by token with
    per-mechanism incremental state: int prompt [B, P] (real tokens first,
    0-padded at the end) -> int32 [B, P + num_tokens]. See models/decoding.py."""
    return decoding.generate(self, prompt, num_tokens=num_tokens, rng=rng,
                             temperature=temperature, top_k=top_k)


class EncoderDecoder(nnx.Module):
  """Encoder over the source; causal, cross-attending decoder over the target.

  Args:
    vocab_size, max_length: as Encoder, shared by source and target.
    rngs: parameter initialisation.
    **encoder_kw: as CausalLM, used for both stacks.
  """

  def __init__(self, vocab_size: int, max_length: int, *, rngs: nnx.Rngs,
               **encoder_kw):
    self.encoder = Encoder(vocab_size, max_length, rngs=rngs, **encoder_kw)
    self.decoder = Encoder(vocab_size, max_length, causal=True,
                           cross_attention=True, rngs=rngs, **encoder_kw)
    self.output_projection = nnx.Linear(self.decoder.emb_dim, vocab_size,
                                        rngs=rngs)

  def __call__(self, source: jax.Array, target: jax.Array, *,
               deterministic: bool, rngs: nnx.Rngs | None = None) -> jax.Array:
    """int source [B, Ls], target [B, Lt] -> logits [B, Lt, vocab_size]."""
    memory, memory_mask = self.encoder(source, deterministic=deterministic,
                                       rngs=rngs)
    hidden, _ = self.decoder(target, memory=memory, memory_mask=memory_mask,
                             deterministic=deterministic, rngs=rngs)
    return self.output_projection(hidden)

"""Incremental decoding for the causal LM: `generate` and token-by-token logits.

A `CausalLM` (models/lm.py) decodes one token at a time with per-layer
incremental state from `attention.DECODERS`: a KV cache (dense), the current
block (local), ring buffers (sliding_window), the recurrent state (linear,
performer). Per token and per layer, memory and time are those of the state:
O(max_length) for dense, O(block_size), O(window * dilation) and O(m * d)
(features x head_dim) for the others (attention/decode_cache.py and README's
"Generating text").

Design:
- Pure state: the decode states are an explicit pytree carried through one
  `jax.lax.scan` over positions, under `nnx.jit`; the model is only read (no
  nnx.Cache variables, so training never sees decoding state). Dropout is off.
- Prefill is token by token: the prompt runs through the same scan as the
  generated tokens (teacher forcing), so every position takes the same code
  path and the state needs no construction from a parallel pass.
- Step t embeds its token at absolute position t (sinusoidal or learned table
  row t) and runs each pre-LN Block: x += Attention(LN(x)) through the
  mechanism's decoder step, then x += MLP(LN(x)), as Block.__call__ does.
- Prompts: int [batch, P], real tokens first. Shorter prompts are padded with
  id 0 at the end ("right padding"): every example then continues right after
  its own last real token, so example b gets P + num_tokens - len_b new tokens.
  Left padding (0 before a real token) is refused.
- Token id 0 is padding (masked as a key by the parallel model too) and is
  never generated.

Limits (ValueError): models whose blocks are not the standard pre-LN Block
(Mixture-of-Experts FFN, Funnel pooling, cross-attention, CLS), mechanisms
without a decoder, and prompt length + num_tokens above the model's
max_length.
"""

from __future__ import annotations

import functools

import einops
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from efficient_transformers import attention as attention_lib
from efficient_transformers.models.block import Block
from efficient_transformers.models.embedding import sinusoidal_positions


def check_decodable(model) -> None:
  """Raises ValueError unless `model` (a CausalLM) can decode token by token."""
  encoder = getattr(model, "decoder", None)
  if encoder is None or not hasattr(model, "output_projection"):
    raise ValueError(f"decoding needs a CausalLM, got {type(model).__name__}")
  if not encoder.causal or encoder.use_cls:
    raise ValueError("decoding needs a causal decoder without CLS")
  if getattr(encoder, "pool_layers", None):
    raise ValueError("decoding does not support Funnel pooling")
  for i, block in enumerate(encoder.blocks):
    if type(block) is not Block or block.cross_attention is not None:
      raise ValueError(f"decoding supports the standard pre-LN Block without"
                       f" cross-attention; layer {i} is {type(block).__name__}")
    if getattr(block, "moe", None) is not None:
      raise ValueError(
          f"decoding does not support the Mixture-of-Experts FFN (layer {i}):"
          " its token dropping depends on the whole group of tokens")
    try:
      attention_lib.decoder(block.attention.attention)
    except ValueError as e:
      raise ValueError(f"layer {i}: {e}") from None


def _split_heads(layer, x_BxE):
  return einops.rearrange(x_BxE, "b (n h) -> b n h", n=layer.num_heads)


def _attention_step(layer, x_BxE, state, key_mask):
  """One token through an AttentionLayer with its mechanism's decoder."""
  options = layer.mechanism_options(x_BxE[:, None], x_BxE[:, None])
  step = attention_lib.decoder(layer.attention).step
  q_BxNxH = _split_heads(layer, layer.query(x_BxE))
  # shared_qk (Reformer's option of the layer): keys are the queries.
  k_BxNxH = (q_BxNxH if getattr(layer, "shared_qk", False)
             else _split_heads(layer, layer.key(x_BxE)))
  out_BxNxH, state = step(state, q_BxNxH, k_BxNxH,
                          _split_heads(layer, layer.value(x_BxE)),
                          key_mask=key_mask, **options)
  return layer.out(einops.rearrange(out_BxNxH, "b n h -> b (n h)")), state


def _block_step(block, x_BxE, state, key_mask):
  """Block.__call__ for one token (deterministic): attention, then the MLP."""
  attended, state = _attention_step(block.attention, block.attention_norm(x_BxE),
                                    state, key_mask)
  x_BxE = x_BxE + attended
  h = jax.nn.gelu(block.mlp_in(block.mlp_norm(x_BxE)))
  return x_BxE + block.mlp_out(h), state


def _embed(embedder, tokens_B, position):
  """Embedder for one token at absolute `position` (no dropout)."""
  x_BxE = embedder.token_embedding(tokens_B)
  if embedder.position == "sinusoidal":
    table = sinusoidal_positions(embedder.max_length, embedder.emb_dim)
    x_BxE = x_BxE + jnp.asarray(table)[position]
  elif embedder.position == "learned":
    x_BxE = x_BxE + embedder.position_embedding[position]
  elif embedder.position != "none":
    raise ValueError(f"decoding does not support position={embedder.position!r}"
                     " (supported: sinusoidal, learned, none)")
  return x_BxE


def init_decode_state(model, batch: int, max_length: int) -> list:
  """Per-layer empty decode states for `max_length` positions."""
  encoder = model.decoder
  states = []
  for block in encoder.blocks:
    layer = block.attention
    head_dim = layer.query.out_features // layer.num_heads
    dummy = jnp.zeros((batch, 1, encoder.emb_dim), jnp.float32)
    options = layer.mechanism_options(dummy, dummy)
    states.append(attention_lib.decoder(layer.attention).init_state(
        batch, layer.num_heads, head_dim, max_length, jnp.float32, **options))
  return states


def decode_step(model, states: list, tokens_B, position):
  """Feeds tokens_B (int [B]) at `position`: (logits [B, vocab], new states)."""
  encoder = model.decoder
  x_BxE = _embed(encoder.embedder, tokens_B, position)
  key_mask = tokens_B != 0
  new_states = []
  for block, state in zip(encoder.blocks, states):
    x_BxE, state = _block_step(block, x_BxE, state, key_mask)
    new_states.append(state)
  return model.output_projection(encoder.final_norm(x_BxE)), new_states


def _choose(logits_BxV, key, *, temperature: float, top_k: int | None):
  """Greedy (temperature 0) or sampled next tokens; id 0 is never chosen."""
  logits_BxV = logits_BxV.astype(jnp.float32).at[:, 0].set(-jnp.inf)
  if temperature == 0:
    return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
  logits_BxV = logits_BxV / temperature
  if top_k is not None:
    kth_Bx1 = jax.lax.top_k(logits_BxV, top_k)[0][:, -1:]
    logits_BxV = jnp.where(logits_BxV < kth_Bx1, -jnp.inf, logits_BxV)
  return jax.random.categorical(key, logits_BxV).astype(jnp.int32)


@functools.partial(nnx.jit, static_argnames=("temperature", "top_k",
                                             "return_logits"))
def _decode(model, tokens_BxT, num_forced_B, rng, *, temperature, top_k,
            return_logits):
  """Scans positions 0..T-1: position t feeds tokens[:, t] while t < num_forced,
  else the token chosen at t - 1. Returns (fed [B, T], next [B], logits)."""
  batch, length = tokens_BxT.shape
  states = init_decode_state(model, batch, length)

  def step(carry, t):
    states, chosen_B = carry
    fed_B = jnp.where(t < num_forced_B, tokens_BxT[:, t], chosen_B)
    logits_BxV, states = decode_step(model, states, fed_B, t)
    chosen_B = _choose(logits_BxV, jax.random.fold_in(rng, t),
                       temperature=temperature, top_k=top_k)
    return (states, chosen_B), (fed_B, logits_BxV if return_logits else None)

  init = (states, jnp.zeros((batch,), jnp.int32))
  (_, next_B), (fed_TxB, logits_TxBxV) = jax.lax.scan(
      step, init, jnp.arange(length))
  logits = None if logits_TxBxV is None else logits_TxBxV.swapaxes(0, 1)
  return fed_TxB.T, next_B, logits


def _check_length(model, length: int) -> None:
  max_length = model.decoder.embedder.max_length
  if length > max_length:
    raise ValueError(f"decoding {length} positions exceeds the model's"
                     f" max_length {max_length}; ask for fewer tokens")


def decode_logits(model, tokens: jax.Array) -> jax.Array:
  """Logits [B, L, vocab] of int tokens [B, L], computed token by token.

  Equals model(tokens, deterministic=True) (tests/models/test_decoding.py);
  id 0 is padding, as in the parallel forward.
  """
  check_decodable(model)
  tokens = jnp.asarray(tokens, jnp.int32)
  _check_length(model, tokens.shape[1])
  forced = jnp.full(tokens.shape[:1], tokens.shape[1], jnp.int32)
  return _decode(model, tokens, forced, jax.random.key(0), temperature=0.0,
                 top_k=None, return_logits=True)[2]


def prompt_lengths(prompt) -> jax.Array:
  """int32 [B]: real tokens per prompt; ValueError for left or inner padding."""
  real = np.asarray(prompt) != 0
  lengths = real.sum(1)
  if not np.array_equal(real, np.arange(real.shape[1])[None] < lengths[:, None]):
    raise ValueError("prompts must have their real tokens first and padding"
                     " (id 0) only at the end; left padding is not supported")
  if np.any(lengths == 0):
    raise ValueError("every prompt needs at least one real (nonzero) token,"
                     " e.g. a start-of-sequence id")
  return jnp.asarray(lengths, jnp.int32)


def generate(model, prompt, *, num_tokens: int, rng: jax.Array | None = None,
             temperature: float = 0.0, top_k: int | None = None,
             return_logits: bool = False):
  """Continues each prompt by sampling from the LM one token at a time.

  Args:
    model: a CausalLM (check_decodable).
    prompt: int [B, P]; real tokens first, id 0 pads shorter prompts at the end.
    num_tokens: tokens generated after the longest prompt.
    rng: sampling key (needed when temperature > 0).
    temperature: 0 = greedy (argmax); > 0 samples softmax(logits / temperature).
    top_k: when sampling, only from the top_k logits.
    return_logits: also return the logits of every fed position.

  Returns:
    int32 tokens [B, P + num_tokens]: each prompt followed by its continuation
    (which starts right after the prompt's last real token); with
    return_logits, also logits [B, P + num_tokens - 1, vocab], position t
    predicting token t + 1 (they equal model(tokens[:, :-1])).
  """
  check_decodable(model)
  if num_tokens < 1:
    raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
  if temperature < 0:
    raise ValueError(f"temperature must be >= 0, got {temperature}")
  if temperature > 0 and rng is None:
    raise ValueError("sampling (temperature > 0) needs rng, a jax.random key")
  if top_k is not None and not 1 <= top_k < model.output_projection.out_features:
    raise ValueError(f"top_k must be in [1, vocab_size - 1], got {top_k}")
  prompt = np.asarray(prompt)
  if prompt.ndim != 2 or prompt.shape[1] < 1:
    raise ValueError(f"prompt must be int [batch, length >= 1], got {prompt.shape}")
  lengths = prompt_lengths(prompt)
  total = prompt.shape[1] + num_tokens
  _check_length(model, total)
  # Position total - 1 is chosen, never fed: total - 1 decoding steps.
  tokens = jnp.asarray(np.pad(prompt, ((0, 0), (0, num_tokens - 1))), jnp.int32)
  rng = jax.random.key(0) if rng is None else rng
  fed, next_B, logits = _decode(model, tokens, lengths, rng,
                                temperature=float(temperature), top_k=top_k,
                                return_logits=return_logits)
  out = jnp.concatenate([fed, next_B[:, None]], axis=1)
  return (out, logits) if return_logits else out

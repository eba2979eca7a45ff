"""Incremental causal decoding for softmax mechanisms: KV cache, block and ring buffers.

One token at a time, a decoder keeps the keys and values that the next queries
can still attend to, in slots, and attends from the new query to the valid
slots with one float32 softmax (softmax_partials, the same numerics as the
parallel kernels). Registered in `attention.DECODERS` (see attention/__init__.py
for the two-function interface); step t's output equals row t of the
mechanism's parallel `causal=True` output on the whole sequence
(tests/models/test_decoding.py).

Mechanisms, their state per example and head, and the work per token:
  dense:          KV cache of `max_length` slots, filled in order:
                  O(max_length * head_dim) memory and time per token (the whole
                  cache is read; slots not yet filled are masked: static shapes).
  local:          the current block's keys (causal `local` = causal attention
                  inside non-overlapping blocks of `block_size`); the slots are
                  cleared at each block boundary: O(block_size * head_dim).
  sliding_window: `dilation` ring buffers of `window` + 1 slots; ring c holds
                  the last window + 1 keys at positions = c (mod dilation), which
                  are exactly the keys a causal dilated window reaches:
                  O(dilation * window * head_dim) memory,
                  O(window * head_dim) time per token.

State: a dict with "keys", "values" [batch, rings, slots, heads, head_dim] (in
the `dtype` given), "valid" bool [batch, rings, slots] (filled and not
padding) and "position" (int32 scalar: the position of the next token; all
examples of a batch decode the same position).

Options: those of the parallel functions; implementation choices (`impl`,
`q_chunk`, `kv_chunk`) are accepted and ignored (all compute the same function).

Limits: more than `max_length` steps of `dense` silently drop keys (the NNX
side, models/decoding.py, checks lengths before decoding). `pair_mask` is not
supported by the dense decoder (ValueError).
"""

from __future__ import annotations

import jax.numpy as jnp

from efficient_transformers.attention import softmax_partials as sp
from efficient_transformers.attention.sliding_window import check_window_options


def _empty(batch, rings, slots, heads, head_dim, dtype) -> dict:
  return {
      "keys": jnp.zeros((batch, rings, slots, heads, head_dim), dtype),
      "values": jnp.zeros((batch, rings, slots, heads, head_dim), dtype),
      "valid": jnp.zeros((batch, rings, slots), bool),
      "position": jnp.zeros((), jnp.int32),
  }


def _step(state, q_t, k_t, v_t, key_mask, *, ring, slot, clear=False):
  """Writes token (k_t, v_t) into state[ring, slot] and attends q_t to the ring.

  q_t, k_t, v_t: [B, N, H]; key_mask: bool [B] or None; ring, slot: int32
  scalars; clear: bool scalar, invalidate the ring's slots before writing.
  Returns (out_t [B, N, H] in q_t's dtype, new state).
  """
  real = jnp.ones(k_t.shape[:1], bool) if key_mask is None else key_mask
  valid = state["valid"]
  valid = jnp.where(clear, valid.at[:, ring].set(False), valid)
  valid = valid.at[:, ring, slot].set(real)
  keys = state["keys"].at[:, ring, slot].set(k_t.astype(state["keys"].dtype))
  values = state["values"].at[:, ring, slot].set(v_t.astype(state["values"].dtype))
  keys_NxSxH = keys[:, ring].swapaxes(1, 2)      # [B, N, S, H]
  values_NxSxH = values[:, ring].swapaxes(1, 2)
  allowed = valid[:, ring][:, None, None, :]      # [B, 1, 1, S]
  parts = sp.partials(sp.logits(q_t[:, :, None, :], keys_NxSxH), allowed,
                      values_NxSxH)
  out = sp.finish(parts, q_t.dtype)[:, :, 0]
  new_state = {"keys": keys, "values": values, "valid": valid,
               "position": state["position"] + 1}
  return out, new_state


# ----------------------------------------------------------------------------
# dense: KV cache.


def dense_init_decode_state(batch: int, heads: int, head_dim: int,
                            max_length: int, dtype=jnp.float32, *,
                            pair_mask=None, impl=None, q_chunk=None,
                            kv_chunk=None) -> dict:
  """Empty KV cache of `max_length` slots (the module docstring)."""
  del impl, q_chunk, kv_chunk  # every implementation computes the same function
  if pair_mask is not None:
    raise ValueError("dense decoding does not support pair_mask; decode the"
                     " mechanism whose pattern it is instead")
  max_length = sp.check_int("max_length", max_length, 1)
  return _empty(batch, 1, max_length, heads, head_dim, dtype)


def dense_decode_step(state, q_t, k_t, v_t, *, key_mask=None, pair_mask=None,
                      impl=None, q_chunk=None, kv_chunk=None):
  """Appends (k_t, v_t) to the cache and attends q_t to every cached key."""
  del impl, q_chunk, kv_chunk
  if pair_mask is not None:
    raise ValueError("dense decoding does not support pair_mask")
  return _step(state, q_t, k_t, v_t, key_mask, ring=0, slot=state["position"])


# ----------------------------------------------------------------------------
# local: the current block.


def local_init_decode_state(batch: int, heads: int, head_dim: int,
                            max_length: int, dtype=jnp.float32, *,
                            block_size: int = 50, impl=None) -> dict:
  """Empty block buffer of min(block_size, max_length) slots."""
  del impl  # "xla" and "pallas" compute the same function
  block_size = sp.check_int("block_size", block_size, 1)
  slots = min(block_size, sp.check_int("max_length", max_length, 1))
  return _empty(batch, 1, slots, heads, head_dim, dtype)


def local_decode_step(state, q_t, k_t, v_t, *, key_mask=None, block_size: int = 50,
                      impl=None):
  """Causal local attention for one token: clears the buffer at block starts."""
  del impl
  block_size = sp.check_int("block_size", block_size, 1)
  slot = state["position"] % block_size
  return _step(state, q_t, k_t, v_t, key_mask, ring=0, slot=slot, clear=slot == 0)


# ----------------------------------------------------------------------------
# sliding_window: one ring buffer per residue class of the dilation.


def sliding_window_init_decode_state(batch: int, heads: int, head_dim: int,
                                     max_length: int, dtype=jnp.float32, *,
                                     window: int = 256, dilation: int = 1,
                                     impl=None) -> dict:
  """Empty rings: `dilation` rings of window + 1 slots (module docstring)."""
  del max_length, impl  # the state does not grow with the sequence
  window, dilation = check_window_options(window, dilation)
  return _empty(batch, dilation, window + 1, heads, head_dim, dtype)


def sliding_window_decode_step(state, q_t, k_t, v_t, *, key_mask=None,
                               window: int = 256, dilation: int = 1, impl=None):
  """Causal (dilated) sliding window for one token: 0 <= i - j <= window * dilation,
  i - j a multiple of dilation."""
  del impl
  window, dilation = check_window_options(window, dilation)
  position = state["position"]
  ring = position % dilation
  slot = (position // dilation) % (window + 1)
  return _step(state, q_t, k_t, v_t, key_mask, ring=ring, slot=slot)


__all__ = [
    "dense_init_decode_state", "dense_decode_step",
    "local_init_decode_state", "local_decode_step",
    "sliding_window_init_decode_state", "sliding_window_decode_step",
]

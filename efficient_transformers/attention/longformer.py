"""Longformer attention: a sliding window plus symmetric global tokens.

Paper: Beltagy et al. 2020, "Longformer: The Long-Document Transformer", §3.1
  (sliding window, dilation, global attention with separate projections).
Family: fixed patterns + global memory, Tay et al.'s survey.
Complexity: O(L * (window + num_global) * head_dim) time,
  O(L * (window + num_global)) memory.
Exact: yes, equals `dense` with `longformer_pattern` as pair_mask when
  `global_qkv` is not given.
Causal: no. Global tokens attend to, and are attended by, the whole sequence,
  future included; causal=True raises ValueError (a decoder should use
  `sliding_window`, whose causal band is Longformer's autoregressive mode).

Pattern: the first `num_global` positions are global.
  - A non-global query i attends to the keys of its `sliding_window` band
    (window, dilation) and to every global key, in ONE softmax (a global key
    inside the band is counted once).
  - A global query attends to every key (a full row).

Global projections: the paper computes global rows with separate projections
Q_g, K_g, V_g. Pass them as `global_qkv=(q_global, k_global, v_global)`:
q_global [batch, num_global, heads, head_dim] (the global queries), k_global
and v_global [batch, L, heads, head_dim] (every key and value, globally
projected); the global rows then use them, while non-global rows use q, k, v
(including the global tokens' keys, as in the paper). Without `global_qkv` the
global rows use q, k, v. The NNX layer owns Q_g, K_g, V_g
(models/longformer_projections.py).

Options:
  window: keys on each side of the band (default 256, see sliding_window).
  dilation: band dilation (default 1).
  num_global: number of leading global tokens (default 1: the CLS token).
  global_qkv: optional (q_global, k_global, v_global), see above.
  impl: "xla" (default) or "pallas" (the block-sparse kernel over the
    pattern, attention/block_sparse.py; without global_qkv).

Limits: self-attention only (q_len == kv_len); num_global is clipped to the
length; lengths are padded internally as in `sliding_window`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers.attention import block_sparse
from efficient_transformers.attention import softmax_partials as sp
from efficient_transformers.attention.sliding_window import (
    band_pairs, check_window_options, dilated_band_partials)

NUM_GLOBAL = 1  # default number of global tokens (the NNX module shares it)


def _check_options(causal, window, dilation, num_global):
  if causal:
    raise ValueError(
        "longformer cannot be causal: global tokens attend to and are attended"
        " by the whole sequence; for a decoder use 'sliding_window' with"
        " causal=True (Longformer's autoregressive mode)")
  window, dilation = check_window_options(window, dilation)
  return window, dilation, sp.check_int("num_global", num_global, 0)


def _global_inputs(global_qkv, q, k, v, num_global):
  """q_global [B, N, G, H], k_global, v_global [B, N, L, H] (BNTH)."""
  if global_qkv is None:
    return q[..., :num_global, :], k, v
  q_g, k_g, v_g = global_qkv
  want = ((q.shape[0], num_global, q.shape[1], q.shape[3]),
          (k.shape[0], k.shape[2], k.shape[1], k.shape[3]))
  if q_g.shape != want[0] or k_g.shape != want[1] or v_g.shape != want[1]:
    raise ValueError(
        "global_qkv must be (q_global [batch, num_global, heads, head_dim],"
        " k_global and v_global [batch, L, heads, head_dim]) ="
        f" ({want[0]}, {want[1]}, {want[1]}); got"
        f" ({q_g.shape}, {k_g.shape}, {v_g.shape})")
  return tuple(jnp.swapaxes(x, 1, 2) for x in (q_g, k_g, v_g))


def longformer(q, k, v, *, mask=None, causal=False, window=256, dilation=1,
               num_global=NUM_GLOBAL, global_qkv=None, impl="xla"):
  """Longformer attention, BTNH layout (see the module docstring)."""
  window, dilation, num_global = _check_options(causal, window, dilation, num_global)
  sp.self_attention_inputs("longformer", q, k, v, mask)  # checks, before tracing
  num_global = min(num_global, q.shape[1])
  if block_sparse.check_impl("longformer", impl) == "pallas":
    if global_qkv is not None:
      raise ValueError("longformer impl='pallas' computes one softmax over the"
                       " pattern with q, k, v: global_qkv (separate global"
                       " projections) needs impl='xla'")
    return block_sparse.attend("longformer", longformer_pattern, q, k, v,
                               mask=mask, causal=causal, window=window,
                               dilation=dilation, num_global=num_global)
  if global_qkv is not None:
    _global_inputs(global_qkv, *(jnp.swapaxes(x, 1, 2) for x in (q, k, v)), num_global)
  return _longformer(q, k, v, mask, global_qkv, window=window, dilation=dilation,
                     num_global=num_global)


@functools.partial(jax.jit, static_argnames=("window", "dilation", "num_global"))
def _longformer(q, k, v, mask, global_qkv, *, window, dilation, num_global):
  q_t, k_t, v_t, ok = sp.self_attention_inputs("longformer", q, k, v, mask)
  length = q.shape[1]
  # Band keys exclude the global positions: those are the global part below.
  band_ok = ok & (np.arange(length) >= num_global)
  rows = dilated_band_partials(q_t, k_t, v_t, band_ok, window=window,
                               dilation=dilation, causal=False)
  if num_global == 0:
    return sp.finish(rows, q.dtype).swapaxes(1, 2)
  # Every row attends to the global keys (its own projections: K_s, V_s).
  global_keys = sp.partials(
      sp.logits(q_t, k_t[..., :num_global, :]), ok[..., None, :num_global],
      v_t[..., :num_global, :])
  out = sp.finish(sp.merge(rows, global_keys), q.dtype)
  # Global rows are full rows, with the global projections if given.
  q_g, k_g, v_g = _global_inputs(global_qkv, q_t, k_t, v_t, num_global)
  global_rows = sp.finish(
      sp.partials(sp.logits(q_g, k_g), ok[..., None, :], v_g), q.dtype)
  out = jnp.concatenate([global_rows, out[..., num_global:, :]], axis=-2)
  return out.swapaxes(1, 2)


def longformer_pattern(q_len: int, kv_len: int, *, causal: bool = False,
                       window: int = 256, dilation: int = 1,
                       num_global: int = NUM_GLOBAL,
                       global_qkv=None) -> np.ndarray:
  """bool [1, L, L]: the band plus the first num_global rows and columns."""
  del global_qkv  # changes the values of the global rows, not the pairs
  sp.check_same_length("longformer", q_len, kv_len)
  window, dilation, num_global = _check_options(causal, window, dilation, num_global)
  pairs = band_pairs(q_len, causal=False, window=window, dilation=dilation)
  pairs[:num_global, :] = True
  pairs[:, :num_global] = True
  return pairs[None]

"""Sliding-window (banded) attention, optionally dilated.

Paper: Beltagy et al. 2020, "Longformer: The Long-Document Transformer", §3.1
  ("sliding window" and "dilated sliding window"); the band of Child et al.
  2019's local component and of Parmar et al. 2018.
Family: fixed patterns (sliding window), Tay et al.'s survey.
Complexity: O(L * window * head_dim) time, O(L * window) memory (each query
  block of `window` tokens attends to its own and its two neighbour blocks).
Exact: yes, equals `dense` with `sliding_window_pattern` as pair_mask.
Causal: yes (left half of the band).

Pattern (i = query position, j = key position, r = i - j):
  r is a multiple of `dilation` and |r| <= window * dilation;
  causal: additionally r >= 0.
So `window` counts the keys on each side (one-sided, like allenai's
`attention_window`; the full band has 2 * window + 1 keys), and a dilated
window has gaps of dilation - 1 tokens (Longformer's offsets ±d, ±2d, ...,
±w·d). dilation 1 is the contiguous band |i - j| <= window.

Algorithm: a dilation d splits the sequence into d interleaved residue classes
(positions p ≡ c mod d); a dilated window is the contiguous band of `window`
inside each class, so the classes become a batch axis. The band is computed on
blocks of min(window, L) tokens: query block b against key blocks b-1, b, b+1
(causal: b-1, b), masked to the band, as dense einsums.

Options:
  window: keys on each side (default 256: LRA's sliding_window_size 512 split
    over two sides).
  dilation: gap between attended keys (default 1).
  impl: "xla" (default) or "pallas" (the block-sparse kernel over the
    pattern, attention/block_sparse.py).

Limits: self-attention only (q_len == kv_len). Lengths that are not a multiple
of the block or of dilation are padded internally (padded keys masked, padded
queries dropped). window >= L - 1 (with dilation 1) is full attention.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers.attention import block_sparse
from efficient_transformers.attention import softmax_partials as sp


def _neighbour(x, offset: int, axis: int):
  """Block b of the result is block b + offset of x along `axis` (zeros outside)."""
  if offset == 0:
    return x
  n = x.shape[axis]
  take = lambda start, stop: jax.lax.slice_in_dim(x, start, stop, axis=axis)
  zeros = jnp.zeros_like(take(0, abs(offset)))
  if offset < 0:
    return jnp.concatenate([zeros, take(0, n + offset)], axis)
  return jnp.concatenate([take(offset, n), zeros], axis)


def band_partials(q, k, v, key_ok, *, window: int, causal: bool) -> sp.Partials:
  """Partials of the contiguous band |i - j| <= window (causal: 0 <= i - j <= window).

  q, k, v: [..., L, H]; key_ok: bool broadcastable to [..., L].
  """
  length, head_dim = q.shape[-2], q.shape[-1]
  block = min(max(window, 1), length)
  num_blocks = -(-length // block)
  padded = num_blocks * block
  offsets = (0,) if num_blocks == 1 else ((-1, 0) if causal else (-1, 0, 1))

  def blocks(x, value=0):  # [..., L, H] -> [..., nb, B, H]
    x = sp.pad_axis(x, -2, padded, value)
    return x.reshape(*x.shape[:-2], num_blocks, block, x.shape[-1])

  def neighbours(x_b):  # [..., nb, B, H] -> [..., nb, len(offsets) * B, H]
    return jnp.concatenate([_neighbour(x_b, o, x_b.ndim - 3) for o in offsets], -2)

  q_b = blocks(q)
  k_w, v_w = neighbours(blocks(k)), neighbours(blocks(v))
  ok_w = neighbours(blocks(key_ok[..., None], False))[..., 0]  # [..., nb, W]
  rel = (np.arange(len(offsets) * block) + offsets[0] * block)[None, :] - np.arange(block)[:, None]
  band = (rel >= -window) & (rel <= (0 if causal else window))  # rel = j - i
  parts = sp.partials(sp.logits(q_b, k_w), band & ok_w[..., None, :], v_w)
  acc = parts.acc.reshape(*parts.acc.shape[:-3], padded, head_dim)[..., :length, :]
  flat = lambda x: x.reshape(*x.shape[:-2], padded)[..., :length]
  return sp.Partials(acc, flat(parts.row_max), flat(parts.row_sum))


def dilated_band_partials(q, k, v, key_ok, *, window: int, dilation: int,
                          causal: bool) -> sp.Partials:
  """Partials of the dilated band (module docstring); q, k, v [..., L, H]."""
  if dilation == 1:
    return band_partials(q, k, v, key_ok, window=window, causal=causal)
  length, head_dim = q.shape[-2], q.shape[-1]
  padded = -(-length // dilation) * dilation

  def classes(x, value=0):  # [..., L, H] -> [..., d, L/d, H]: residue classes
    x = sp.pad_axis(x, -2, padded, value)
    return x.reshape(*x.shape[:-2], padded // dilation, dilation, x.shape[-1]).swapaxes(-3, -2)

  ok = classes(jnp.broadcast_to(key_ok, (*key_ok.shape[:-1], length))[..., None], False)
  parts = band_partials(classes(q), classes(k), classes(v), ok[..., 0],
                        window=window, causal=causal)

  def unclass(x):  # [..., d, L/d, (H)] -> [..., L, (H)]
    if x.ndim == parts.acc.ndim:
      return x.swapaxes(-3, -2).reshape(*x.shape[:-3], padded, head_dim)[..., :length, :]
    return x.swapaxes(-2, -1).reshape(*x.shape[:-2], padded)[..., :length]

  return sp.Partials(*(unclass(x) for x in parts))


def check_window_options(window, dilation) -> tuple[int, int]:
  return sp.check_int("window", window, 0), sp.check_int("dilation", dilation, 1)


def sliding_window(q, k, v, *, mask=None, causal=False, window=256, dilation=1,
                   impl="xla"):
  """Sliding-window attention, BTNH layout (see the module docstring)."""
  window, dilation = check_window_options(window, dilation)
  sp.self_attention_inputs("sliding_window", q, k, v, mask)  # checks, before tracing
  if block_sparse.check_impl("sliding_window", impl) == "pallas":
    return block_sparse.attend("sliding_window", sliding_window_pattern, q, k, v,
                               mask=mask, causal=causal, window=window,
                               dilation=dilation)
  return _sliding_window(q, k, v, mask, causal=bool(causal), window=window,
                         dilation=dilation)


@functools.partial(jax.jit, static_argnames=("causal", "window", "dilation"))
def _sliding_window(q, k, v, mask, *, causal, window, dilation):
  q_t, k_t, v_t, ok = sp.self_attention_inputs("sliding_window", q, k, v, mask)
  parts = dilated_band_partials(q_t, k_t, v_t, ok, window=window,
                                dilation=dilation, causal=causal)
  return sp.finish(parts, q.dtype).swapaxes(1, 2)


def band_pairs(length: int, *, causal: bool, window: int, dilation: int) -> np.ndarray:
  """bool [L, L]: the (dilated) band of the module docstring."""
  pos = np.arange(length)
  rel = pos[:, None] - pos[None, :]  # i - j
  pairs = (rel % dilation == 0) & (np.abs(rel) <= window * dilation)
  if causal:
    pairs &= rel >= 0
  return pairs


def sliding_window_pattern(q_len: int, kv_len: int, *, causal: bool = False,
                           window: int = 256, dilation: int = 1) -> np.ndarray:
  """bool [1, L, L]: the pairs `sliding_window` attends."""
  sp.check_same_length("sliding_window", q_len, kv_len)
  window, dilation = check_window_options(window, dilation)
  return band_pairs(q_len, causal=causal, window=window, dilation=dilation)[None]

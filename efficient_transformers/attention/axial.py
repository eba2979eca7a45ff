"""Axial attention (Ho et al. 2019, "Axial Attention in Multidimensional Transformers").

Family (Tay et al.): fixed patterns (axial / factorised).
The sequence is a grid of `shape = (height, width)` positions flattened in
raster order (its length must equal height * width). One call attends along
one axis only:
- axis=1 (row attention, along the width): position (r, c) sees (r, c') for
  every c'; causal: c' <= c (the Axial Transformer's masked row layers);
- axis=0 (column attention, along the height): (r, c) sees (r', c) for every
  r'; causal: r' <= r (its masked column layers).
Both causal variants are raster-order causal (key position <= query position).
A model alternates axes across layers (the encoder's `layer_overrides`, e.g.
({"axis": 0}, {"axis": 1})); two layers give every position a path to every
other, and the Axial Transformer's full causal receptive field needs its
shift-down/shift-right construction, which is not an attention function.
Complexity: O(n * height * head_dim) (axis 0) or O(n * width * head_dim)
  (axis 1) time, and O(n * height) or O(n * width) memory: O(n * sqrt(n)) for a
  square grid.
Exact: yes (equals dense with `axial_pattern`). Self-attention only.
Options:
  shape: (height, width) with height * width == sequence length; default
    None: `grid(length)`, the near-square grid (height <= width) of the
    sequence (2000 -> 40 x 50, 784 -> 28 x 28); a length with no grid but
    1 x length (a prime) needs an explicit shape.
  axis: 0 (columns) or 1 (rows); default 1.
  impl: "xla" (default) or "pallas" (the block-sparse kernel over the
    pattern, attention/block_sparse.py; with axis=0 every raster-order tile
    is partial, so it computes about as many tiles as dense).
"""

from __future__ import annotations

import math

import numpy as np

from efficient_transformers.attention import block_sparse, blocked
from efficient_transformers.attention.shapes import check_qkv


def grid(length: int) -> tuple[int, int]:
  """The near-square (height, width), height <= width, with height * width ==
  length: the default `shape` of a sequence of `length` positions."""
  height = max(1, math.isqrt(length))
  while length % height:
    height -= 1
  return height, length // height


def _check_options(length, shape, axis):
  if shape is None:
    shape = grid(length)
    if shape[0] == 1 and length > 3:
      raise ValueError(f"axial: length {length} has no 2-D grid but 1 x {length};"
                       " pass shape=(height, width)")
  height, width = (int(s) for s in shape)
  if height * width != length:
    raise ValueError(f"axial: length {length} != height * width of shape {shape}")
  if axis not in (0, 1):
    raise ValueError(f"axial: axis must be 0 (columns) or 1 (rows), got {axis}")
  return height, width


def axial(q, k, v, *, mask=None, causal=False, shape=None, axis=1, impl="xla"):
  """Attention along one axis of a 2-D grid, BTNH layout (see the module docstring)."""
  check_qkv(q, k, v)
  blocked.require_self_attention("axial", q, k)
  batch, length = q.shape[:2]
  height, width = _check_options(length, shape, axis)
  if block_sparse.check_impl("axial", impl) == "pallas":
    return block_sparse.attend("axial", axial_pattern, q, k, v, mask=mask,
                               causal=causal, shape=(height, width), axis=axis)

  def grid(x):  # [B, L, ...] -> [B, lines, line, ...], lines along `axis`
    x = x.reshape((batch, height, width) + x.shape[2:])
    return x.swapaxes(1, 2) if axis == 0 else x

  line = height if axis == 0 else width
  real_BxGxT = grid(blocked.key_mask(mask, batch, length))
  allowed = real_BxGxT[:, :, None, None, :]
  if causal:
    allowed = allowed & np.tril(np.ones((line, line), bool))
  out = blocked.attend(grid(q), grid(k), grid(v), allowed)  # [B, G, T, N, H]
  if axis == 0:
    out = out.swapaxes(1, 2)
  return out.reshape(q.shape[:2] + out.shape[3:]).astype(q.dtype)


def axial_pattern(q_len, kv_len, *, causal=False, shape=None, axis=1):
  """bool [1, q_len, kv_len]: the pairs axial attends."""
  if q_len != kv_len:
    raise ValueError(f"axial is self-attention only: {q_len} != {kv_len}")
  _, width = _check_options(q_len, shape, axis)
  i = np.arange(q_len)[:, None]
  j = np.arange(kv_len)[None, :]
  (ri, ci), (rj, cj) = divmod(i, width), divmod(j, width)
  allowed = (ci == cj) if axis == 0 else (ri == rj)
  if causal:
    allowed = allowed & (j <= i)
  return allowed[None]

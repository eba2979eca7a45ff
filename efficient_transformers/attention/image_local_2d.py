"""Image Transformer 2-D local attention (Parmar et al. 2018, "Image Transformer").

Family (Tay et al.): fixed patterns (blockwise / local memory).
The sequence is an image of `shape = (height, width)` positions flattened in
raster order (its length must equal height * width). The image is cut into
query blocks of `query_shape = (hq, wq)`; each block attends to a memory that
extends it by `memory_flange = (hf, wf)`: hf rows above it (and, when not
causal, hf rows below) and wf columns left and right of it, clipped at the
image border. Query (r, c) in block (R, C) sees key (r', c') iff
  R*hq - hf <= r' < R*hq + hq (+ hf when not causal),
  C*wq - wf <= c' < C*wq + wq + wf,
  and, when causal, r' * width + c' <= r * width + c (raster order).
Complexity: O(n * (hq + 2hf) * (wq + 2wf) * head_dim) time, O(n * memory)
  space: linear in n = height * width.
Exact: yes (equals dense with `image_local_2d_pattern`). Self-attention only.
Causal order (a deliberate difference from the paper and t2t): t2t's
  `masked_local_attention_2d` generates in *block-raster* order (blocks in raster
  order, raster order inside a block), so a query also sees the left flange
  rows below it and never the right flange of its own block rows. This
  function follows the attention contract instead: the sequence is in raster
  order and causal means key position <= query position, restricted to the
  memory above. The two agree when query blocks span whole rows (wq >= width)
  and always when causal=False (the unmasked encoder variant).
Options:
  shape: (height, width) of the image; required.
  query_shape: (hq, wq), default (8, 16) (t2t `masked_local_attention_2d`
    defaults; `imagetransformer2d_base` uses (16, 16)).
  memory_flange: (hf, wf), default (8, 16) (t2t defaults; (16, 32) in
    `imagetransformer2d_base`).
  impl: "xla" (default) or "pallas" (the block-sparse kernel over the
    pattern, attention/block_sparse.py).
Limits: height and width need not be multiples of the query block: the image
  is padded internally at the bottom and right (padded keys masked, padded
  queries dropped). A flange that is not a multiple of the block gathers whole
  neighbour blocks and masks the positions beyond the flange.
"""

from __future__ import annotations

import numpy as np

from efficient_transformers.attention import block_sparse, blocked
from efficient_transformers.attention.shapes import check_qkv


def _check_options(length, shape, query_shape, memory_flange):
  if shape is None:
    raise ValueError("image_local_2d needs shape=(height, width)")
  (height, width), (hq, wq), (hf, wf) = (
      tuple(int(s) for s in x) for x in (shape, query_shape, memory_flange))
  if height * width != length:
    raise ValueError(
        f"image_local_2d: length {length} != height * width of shape {shape}")
  if min(hq, wq) < 1 or min(hf, wf) < 0:
    raise ValueError(
        f"image_local_2d needs query_shape >= 1 and memory_flange >= 0, got"
        f" {query_shape}, {memory_flange}")
  return (height, width), (hq, wq), (hf, wf)


def _axis_pairs(size, block, flange, after_flange):
  """numpy along one image axis: query positions [C, b], key positions [C, M]
  (-1 = none) and allowed [C, M] (inside the image and the flange)."""
  num_flange_blocks = -(-flange // block)
  after = num_flange_blocks if after_flange else 0
  q_pos = np.arange(-(-size // block) * block).reshape(-1, block)
  k_pos = blocked.neighbours(q_pos, num_flange_blocks, after, axis=0, value=-1)
  start = q_pos[:, :1]
  end = start + block + (flange if after_flange else 0)
  ok = (k_pos >= np.maximum(start - flange, 0)) & (k_pos < np.minimum(end, size))
  return num_flange_blocks, after, q_pos, k_pos, ok


def _geometry(shape, query_shape, memory_flange, causal):
  """Gather sizes and allowed pairs [Cr, Cc, hq * wq, Mr * Mc] (numpy)."""
  (height, width), (hq, wq), (hf, wf) = shape, query_shape, memory_flange
  rb, ra, qr, kr, row_ok = _axis_pairs(height, hq, hf, not causal)
  cb, ca, qc, kc, col_ok = _axis_pairs(width, wq, wf, True)
  # Axes: [Cr, Cc, hq, wq, Mr, Mc].
  ok = row_ok[:, None, None, None, :, None] & col_ok[None, :, None, None, None, :]
  if causal:
    q_flat = qr[:, None, :, None, None, None] * width + qc[None, :, None, :, None, None]
    k_flat = kr[:, None, None, None, :, None] * width + kc[None, :, None, None, None, :]
    ok = ok & (k_flat <= q_flat)
  ok = np.broadcast_to(ok, (qr.shape[0], qc.shape[0], hq, wq) + ok.shape[-2:])
  return (rb, ra, cb, ca), ok.reshape(ok.shape[:2] + (hq * wq, -1))


def image_local_2d(q, k, v, *, mask=None, causal=False, shape=None,
                   query_shape=(8, 16), memory_flange=(8, 16), impl="xla"):
  """2-D local attention, BTNH layout (see the module docstring)."""
  check_qkv(q, k, v)
  blocked.require_self_attention("image_local_2d", q, k)
  batch, length = q.shape[:2]
  shape, query_shape, memory_flange = _check_options(
      length, shape, query_shape, memory_flange)
  if block_sparse.check_impl("image_local_2d", impl) == "pallas":
    return block_sparse.attend(
        "image_local_2d", image_local_2d_pattern, q, k, v, mask=mask,
        causal=causal, shape=shape, query_shape=query_shape,
        memory_flange=memory_flange)
  (height, width), (hq, wq) = shape, query_shape
  (rb, ra, cb, ca), geometry = _geometry(shape, query_shape, memory_flange, causal)

  def memory(x, value=0):  # [B, L, ...] -> [B, Cr, Cc, Mr * Mc, ...]
    x = x.reshape((batch, height, width) + x.shape[2:])
    x = blocked.neighbours(blocked.to_blocks(x, hq, 1, value), rb, ra, 1, value)
    x = blocked.neighbours(blocked.to_blocks(x, wq, 3, value), cb, ca, 3, value)
    x = x.swapaxes(2, 3)  # [B, Cr, Cc, Mr, Mc, ...]
    return x.reshape(x.shape[:3] + (-1,) + x.shape[5:])

  q_img = q.reshape((batch, height, width) + q.shape[2:])
  q_blocks = blocked.to_blocks(blocked.to_blocks(q_img, hq, 1), wq, 3).swapaxes(2, 3)
  q_BxCrxCcxQxNxH = q_blocks.reshape(q_blocks.shape[:3] + (hq * wq,) + q.shape[2:])
  real = memory(blocked.key_mask(mask, batch, length), False)
  allowed = real[:, :, :, None, None, :] & geometry[None, :, :, None]
  out = blocked.attend(q_BxCrxCcxQxNxH, memory(k), memory(v), allowed)
  out = out.reshape(out.shape[:3] + (hq, wq) + out.shape[4:]).swapaxes(2, 3)
  out = out.reshape((batch, out.shape[1] * hq, out.shape[3] * wq) + out.shape[5:])
  out = out[:, :height, :width].reshape(q.shape[:2] + out.shape[3:])
  return out.astype(q.dtype)


def image_local_2d_pattern(q_len, kv_len, *, causal=False, shape=None,
                           query_shape=(8, 16), memory_flange=(8, 16)):
  """bool [1, q_len, kv_len]: the pairs image_local_2d attends."""
  if q_len != kv_len:
    raise ValueError(f"image_local_2d is self-attention only: {q_len} != {kv_len}")
  (_, width), (hq, wq), (hf, wf) = _check_options(
      q_len, shape, query_shape, memory_flange)
  i = np.arange(q_len)[:, None]
  j = np.arange(kv_len)[None, :]
  (ri, ci), (rj, cj) = divmod(i, width), divmod(j, width)
  row0, col0 = ri // hq * hq, ci // wq * wq
  allowed = (rj >= row0 - hf) & (rj < row0 + hq + (0 if causal else hf))
  allowed &= (cj >= col0 - wf) & (cj < col0 + wq + wf)
  if causal:
    allowed &= j <= i
  return allowed[None]

"""Image Transformer 1-D local attention (Parmar et al. 2018, "Image Transformer").

Family (Tay et al.): fixed patterns (blockwise / local memory).
The sequence (an image flattened in raster order, or any sequence) is cut into
query blocks of `query_block_size` positions. Each query block attends to a
memory made of the block itself plus a flange of `memory_flange` positions:
- causal=True (the paper's decoder, t2t `masked_local_attention_1d`): the
  flange lies before the block only, and query i sees key j iff
  block_start(i) - memory_flange <= j <= i. With the default flange equal to
  the block, this is t2t's "current block plus the previous block".
- causal=False (t2t's unmasked `local_attention_1d`): the flange lies on both
  sides: block_start(i) - memory_flange <= j < block_end(i) + memory_flange.
Complexity: O(n * (query_block_size + 2 * memory_flange) * head_dim) time and
  O(n * (query_block_size + 2 * memory_flange)) memory: linear in n.
Exact: yes (equals dense with `image_local_1d_pattern`). Self-attention only
  (q_len == kv_len).
Options:
  query_block_size: positions per query block (t2t `block_length`, default 256).
  memory_flange: positions of memory on each side of the block (before it only
    when causal); default None = query_block_size. t2t's `imagetransformer_base`
    uses block_length 256 and block_width (unmasked flange) 128.
  impl: "xla" (default) or "pallas" (the block-sparse kernel over the
    pattern, attention/block_sparse.py).
Limits: a length that is not a multiple of query_block_size is padded
  internally at the end (padded keys are masked, padded queries dropped), so the
  last block is shorter. The flange need not be a multiple of the block: whole
  neighbour blocks are gathered and the positions beyond the flange masked.
Differences from t2t: t2t detects padding from all-zero keys; here only the
  explicit `mask` does. t2t collapses to one block when n < 2 * block_length;
  here the blocks are always as given (dense is the query_block_size >= n case).
"""

from __future__ import annotations

import numpy as np

from efficient_transformers.attention import block_sparse, blocked
from efficient_transformers.attention.shapes import check_qkv


def _check_options(query_block_size, memory_flange):
  if memory_flange is None:
    memory_flange = query_block_size
  if int(query_block_size) < 1 or int(memory_flange) < 0:
    raise ValueError(
        "image_local_1d needs query_block_size >= 1 and memory_flange >= 0, got"
        f" {query_block_size}, {memory_flange}")
  return int(query_block_size), int(memory_flange)


def _block_pairs(length, block, flange, causal):
  """numpy: key positions [C, M] (-1 = none) and allowed pairs [C, Q, M]."""
  num_flange_blocks = -(-flange // block)
  after = 0 if causal else num_flange_blocks
  q_pos = np.arange(-(-length // block) * block).reshape(-1, block)
  k_pos = blocked.neighbours(q_pos, num_flange_blocks, after, axis=0, value=-1)
  start = q_pos[:, :1, None] - flange
  allowed = (k_pos[:, None, :] >= np.maximum(start, 0)) & (k_pos[:, None, :] < length)
  if causal:
    allowed = allowed & (k_pos[:, None, :] <= q_pos[:, :, None])
  else:
    allowed = allowed & (k_pos[:, None, :] < q_pos[:, :1, None] + block + flange)
  return num_flange_blocks, after, allowed


def image_local_1d(q, k, v, *, mask=None, causal=False, query_block_size=256,
                   memory_flange=None, impl="xla"):
  """1-D local attention, BTNH layout (see the module docstring)."""
  check_qkv(q, k, v)
  blocked.require_self_attention("image_local_1d", q, k)
  block, flange = _check_options(query_block_size, memory_flange)
  if block_sparse.check_impl("image_local_1d", impl) == "pallas":
    return block_sparse.attend(
        "image_local_1d", image_local_1d_pattern, q, k, v, mask=mask,
        causal=causal, query_block_size=block, memory_flange=flange)
  batch, length = q.shape[:2]
  before, after, geometry_CxQxM = _block_pairs(length, block, flange, causal)
  gather = lambda x, value=0: blocked.neighbours(
      blocked.to_blocks(x, block, value=value), before, after, value=value)
  q_BxCxQxNxH = blocked.to_blocks(q, block)
  k_BxCxMxNxH, v_BxCxMxNxH = gather(k), gather(v)
  real_BxCxM = gather(blocked.key_mask(mask, batch, length), False)
  allowed = real_BxCxM[:, :, None, None, :] & geometry_CxQxM[None, :, None]
  out = blocked.attend(q_BxCxQxNxH, k_BxCxMxNxH, v_BxCxMxNxH, allowed)
  out = out.reshape((batch, -1) + out.shape[3:])[:, :length]
  return out.astype(q.dtype)


def image_local_1d_pattern(q_len, kv_len, *, causal=False, query_block_size=256,
                           memory_flange=None):
  """bool [1, q_len, kv_len]: the pairs image_local_1d attends."""
  if q_len != kv_len:
    raise ValueError(f"image_local_1d is self-attention only: {q_len} != {kv_len}")
  block, flange = _check_options(query_block_size, memory_flange)
  i = np.arange(q_len)[:, None]
  j = np.arange(kv_len)[None, :]
  start = i // block * block
  allowed = j >= start - flange
  allowed &= (j <= i) if causal else (j < start + block + flange)
  return allowed[None]

"""Host-side block layouts: from an element pattern to the tables a block-sparse kernel reads.

A fixed attention pattern (`attention.pattern(name, ...)`: bool
[heads or 1, q_len, kv_len]) is cut into tiles of [block_q, block_k]. A tile is
empty (no pair attends: skipped), full (every pair attends: no element mask) or
partial (some pairs: its [block_q, block_k] element mask is kept). The kernel
only visits non-empty tiles, so its work is proportional to their number.

Tables (`BlockLayout`), per head h of the pattern (H = heads or 1):
  counts        int32 [H, nq]           non-empty kv blocks of query block i;
  kv_index      int32 [H, nq, C]        their kv block ids, ascending; slots past
                                        the count repeat the last id (a TPU
                                        index_map then fetches nothing new);
  mask_index    int32 [H, nq, C]        -1 = full tile, else an index into masks;
  and the transposed tables for the dK/dV pass (per kv block, the query
  blocks that see it): q_counts [H, nk], q_index, q_mask_index [H, nk, Ct];
  masks         bool  [P, block_q, block_k]: the distinct partial-tile masks
                (P >= 1; entry 0 is all True and is what full tiles point to
                on backends that always read a mask).
C and Ct are rounded up to a power of two (GPU kernels load power-of-two
vectors); nq = ceil(q_len / block_q), nk = ceil(kv_len / block_k): a ragged
last block is padded with pairs that never attend.

`expand(layout)` rebuilds the element pattern (the exactness check of the
tests). This module is NumPy only: kernels/ never imports attention/; the
caller builds the pattern.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class BlockLayout:
  """Block tables of one pattern; see the module docstring."""
  q_len: int
  kv_len: int
  block_q: int
  block_k: int
  counts: np.ndarray
  kv_index: np.ndarray
  mask_index: np.ndarray
  q_counts: np.ndarray
  q_index: np.ndarray
  q_mask_index: np.ndarray
  masks: np.ndarray

  @property
  def heads(self) -> int:
    return self.counts.shape[0]

  @property
  def num_q_blocks(self) -> int:
    return self.counts.shape[1]

  @property
  def num_kv_blocks(self) -> int:
    return self.q_counts.shape[1]

  @property
  def num_computed_blocks(self) -> int:
    """Non-empty tiles summed over the pattern's heads (the kernel's work)."""
    return int(self.counts.sum())

  @property
  def density(self) -> float:
    """Fraction of the tiles that are computed."""
    return self.num_computed_blocks / (self.counts.size * self.num_kv_blocks)


def _next_power_of_2(n: int) -> int:
  return 1 << max(0, int(n) - 1).bit_length()


def _tables(nonempty, partial_id):
  """Row tables of bool nonempty [H, R, S] and int partial_id [H, R, S] (-1 = full)."""
  heads, rows, _ = nonempty.shape
  counts = nonempty.sum(-1).astype(np.int32)
  width = _next_power_of_2(max(int(counts.max(initial=0)), 1))
  index = np.zeros((heads, rows, width), np.int32)
  mask_index = np.full((heads, rows, width), -1, np.int32)
  h, r, s = np.nonzero(nonempty)  # row-major: ascending s within each (h, r)
  starts = np.concatenate([[0], np.cumsum(counts.ravel())[:-1]])
  slot = np.arange(h.size) - np.repeat(starts, counts.ravel())
  index[h, r, slot] = s
  mask_index[h, r, slot] = partial_id[h, r, s]
  # Pad each row with its last id (0 for empty rows) and that tile's mask id.
  last = np.maximum(counts - 1, 0)[..., None]
  pad = np.arange(width)[None, None, :] >= counts[..., None]
  index = np.where(pad, np.take_along_axis(index, last, -1), index)
  mask_index = np.where(pad, np.take_along_axis(mask_index, last, -1), mask_index)
  return counts, index, mask_index


def build_layout(pattern, block_q: int, block_k: int) -> BlockLayout:
  """Block tables of a bool element pattern [heads or 1, q_len, kv_len]."""
  pattern = np.asarray(pattern, bool)
  if pattern.ndim == 2:
    pattern = pattern[None]
  if pattern.ndim != 3:
    raise ValueError("pattern must be bool [heads or 1, q_len, kv_len] (the output"
                     f" of attention.pattern), got shape {pattern.shape}")
  if block_q < 1 or block_k < 1:
    raise ValueError(f"block_q and block_k must be >= 1, got {block_q}, {block_k}")
  heads, q_len, kv_len = pattern.shape
  nq, nk = -(-q_len // block_q), -(-kv_len // block_k)
  padded = np.zeros((heads, nq * block_q, nk * block_k), bool)
  padded[:, :q_len, :kv_len] = pattern
  tiles = padded.reshape(heads, nq, block_q, nk, block_k).transpose(0, 1, 3, 2, 4)
  nonempty = tiles.any((3, 4))
  full = tiles.all((3, 4))
  partial = nonempty & ~full
  # Distinct partial masks (causal diagonals, band edges repeat a lot).
  flat = tiles[partial].reshape(-1, block_q * block_k)
  masks = np.ones((1, block_q, block_k), bool)
  partial_id = np.full(nonempty.shape, -1, np.int32)
  if flat.shape[0]:
    unique, inverse = np.unique(np.packbits(flat, axis=1), axis=0, return_inverse=True)
    unique_masks = np.unpackbits(unique, axis=1, count=block_q * block_k).astype(bool)
    masks = np.concatenate([masks, unique_masks.reshape(-1, block_q, block_k)])
    partial_id[partial] = 1 + inverse.reshape(-1).astype(np.int32)
  counts, kv_index, mask_index = _tables(nonempty, partial_id)
  q_counts, q_index, q_mask_index = _tables(
      nonempty.transpose(0, 2, 1), partial_id.transpose(0, 2, 1))
  return BlockLayout(q_len, kv_len, block_q, block_k, counts, kv_index,
                     mask_index, q_counts, q_index, q_mask_index, masks)


def expand(layout: BlockLayout, *, transposed: bool = False) -> np.ndarray:
  """bool [heads or 1, q_len, kv_len]: the element pattern the tables describe.

  transposed=True reads the dK/dV tables (per kv block) instead of the rows.
  """
  bq, bk = layout.block_q, layout.block_k
  heads, nq, nk = layout.heads, layout.num_q_blocks, layout.num_kv_blocks
  out = np.zeros((heads, nq, nk, bq, bk), bool)
  counts, index, mask_index = ((layout.q_counts, layout.q_index, layout.q_mask_index)
                               if transposed else
                               (layout.counts, layout.kv_index, layout.mask_index))
  h, r, slot = np.nonzero(np.arange(index.shape[-1]) < counts[..., None])
  other = index[h, r, slot]
  tile = np.where((mask_index[h, r, slot] < 0)[:, None, None], True,
                  layout.masks[np.maximum(mask_index[h, r, slot], 0)])
  if transposed:
    out[h, other, r] = tile
  else:
    out[h, r, other] = tile
  out = out.transpose(0, 1, 3, 2, 4).reshape(heads, nq * bq, nk * bk)
  return out[:, :layout.q_len, :layout.kv_len]

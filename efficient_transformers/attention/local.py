"""Local (block) attention: non-overlapping blocks that attend only within themselves.

Paper: Liu et al. 2018, "Generating Wikipedia by Summarizing Long Sequences"
  (the "local attention" layers of T-DMCA); LRA's "Local Attention" baseline
  (Tay et al. 2021, App. B.1: "non-overlapping blocks").
Family: fixed patterns (blockwise), Tay et al.'s survey.
Complexity: O(L * block_size * head_dim) time, O(L * block_size) memory.
Exact: yes, equals `dense` with `local_pattern` as pair_mask.
Causal: yes, causal inside each block (query i sees keys of its block with j <= i).

Options:
  block_size: tokens per block (default 50, LRA's default).
  impl: "xla" (default) or "pallas" (the block-sparse kernel over
    `local_pattern`, attention/block_sparse.py).

Limits: self-attention only (q_len == kv_len). A length that is not a multiple
of block_size is padded internally: the last block is shorter (its padded keys
are masked, its padded queries dropped). block_size >= length is full
attention.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from efficient_transformers.attention import block_sparse
from efficient_transformers.attention import softmax_partials as sp


def block_partials(q, k, v, key_ok, *, block_size: int, causal: bool) -> sp.Partials:
  """Partials of attention inside blocks of `block_size`.

  q, k, v: [..., L, H]; key_ok: bool broadcastable to [..., L].
  Returns Partials over [..., L].
  """
  length, head_dim = q.shape[-2], q.shape[-1]
  block = min(block_size, length)
  num_blocks = -(-length // block)
  padded = num_blocks * block

  def blocks(x, value=0):  # [..., L, H] -> [..., nb, B, H]
    x = sp.pad_axis(x, -2, padded, value)
    return x.reshape(*x.shape[:-2], num_blocks, block, x.shape[-1])

  q_b, k_b, v_b = blocks(q), blocks(k), blocks(v)
  ok_b = blocks(key_ok[..., None], False)[..., 0]  # [..., nb, B]
  allowed = ok_b[..., None, :]
  if causal:
    allowed = allowed & np.tril(np.ones((block, block), bool))
  parts = sp.partials(sp.logits(q_b, k_b), allowed, v_b)
  acc = parts.acc.reshape(*parts.acc.shape[:-3], padded, head_dim)[..., :length, :]
  flat = lambda x: x.reshape(*x.shape[:-2], padded)[..., :length]
  return sp.Partials(acc, flat(parts.row_max), flat(parts.row_sum))


def local(q, k, v, *, mask=None, causal=False, block_size=50, impl="xla"):
  """Block-local attention, BTNH layout (see the module docstring)."""
  block_size = sp.check_int("block_size", block_size, 1)
  sp.self_attention_inputs("local", q, k, v, mask)  # checks, before tracing
  if block_sparse.check_impl("local", impl) == "pallas":
    return block_sparse.attend("local", local_pattern, q, k, v, mask=mask,
                               causal=causal, block_size=block_size)
  return _local(q, k, v, mask, causal=bool(causal), block_size=block_size)


@functools.partial(jax.jit, static_argnames=("causal", "block_size"))
def _local(q, k, v, mask, *, causal, block_size):
  q_t, k_t, v_t, ok = sp.self_attention_inputs("local", q, k, v, mask)
  parts = block_partials(q_t, k_t, v_t, ok, block_size=block_size, causal=causal)
  return sp.finish(parts, q.dtype).swapaxes(1, 2)


def local_pattern(q_len: int, kv_len: int, *, causal: bool = False,
                  block_size: int = 50) -> np.ndarray:
  """bool [1, L, L]: i and j in the same block of block_size (and j <= i if causal)."""
  sp.check_same_length("local", q_len, kv_len)
  block_size = sp.check_int("block_size", block_size, 1)
  pos = np.arange(q_len)
  pairs = (pos[:, None] // block_size) == (pos[None, :] // block_size)
  if causal:
    pairs &= pos[None, :] <= pos[:, None]
  return pairs[None]

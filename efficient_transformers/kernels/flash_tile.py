"""Flash-attention tile math shared by the block-sparse kernels' backends.

One [block_q, block_k] tile of FlashAttention-2 (Dao 2023): the online-softmax
forward step and the dQ and dK/dV backward steps, in float32 whatever the
input dtype (matmul operands keep the input dtype, as every flash kernel
does). Vectors over query rows (m, l, lse, delta) are columns [block_q, 1]:
that shape lowers on Triton and Mosaic TPU. `allowed` is a bool tile, or None
for a tile in which every pair attends (no masking at all).

Numerics as attention/dense_chunked.py: masked logits are MASK_VALUE (a large
finite negative: exp underflows to exactly 0, never inf - inf), masked
probabilities are set to 0, and a row with nothing to attend to keeps l = 0:
output 0, lse 0, zero gradients.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

# Same value as attention/masks.py (kernels/ does not import attention/).
MASK_VALUE = -0.7 * float(jnp.finfo(jnp.float32).max)


class Config(NamedTuple):
  """Static settings of one kernel call (block_sparse_attention builds it)."""
  backend: str
  interpret: bool
  scale: float
  head_stride: int  # 1: one layout per head; 0: one layout shared by all heads
  key_padding: bool = True  # False: no mask was given, padding is never read
  num_warps: int = 4
  num_stages: int = 2


def _dot(a, b):
  return jnp.dot(a, b, preferred_element_type=jnp.float32)


def _dot_t(a, b):  # a @ b.T
  return jax.lax.dot_general(a, b, (((1,), (1,)), ((), ())),
                             preferred_element_type=jnp.float32)


def _where(allowed, x, other):
  """jnp.where, or x itself for a tile without any masked pair (allowed=None)."""
  return x if allowed is None else jnp.where(allowed, x, other)


def _logits(q, k, allowed, scale):
  return _where(allowed, _dot_t(q, k) * scale, MASK_VALUE)


def forward_tile(q, k, v, allowed, scale, m, l, acc):
  """One online-softmax step: the [block_q, block_k] tile of keys k, values v."""
  s = _logits(q, k, allowed, scale)
  m_new = jnp.maximum(m, s.max(axis=1, keepdims=True))
  p = _where(allowed, jnp.exp(s - m_new), 0.0)
  correction = jnp.exp(m - m_new)
  l = l * correction + p.sum(axis=1, keepdims=True)
  acc = acc * correction + _dot(p.astype(v.dtype), v)
  return m_new, l, acc


def forward_init(block_q, head_dim):
  return (jnp.full((block_q, 1), MASK_VALUE, jnp.float32),
          jnp.zeros((block_q, 1), jnp.float32),
          jnp.zeros((block_q, head_dim), jnp.float32))


def forward_finish(m, l, acc):
  """Output (zeros for empty rows) and log-sum-exp (0 for empty rows)."""
  nonempty = l > 0
  safe_l = jnp.where(nonempty, l, 1.0)
  return acc / safe_l, jnp.where(nonempty, m + jnp.log(safe_l), 0.0)


def _probs_and_dlogits(q, k, v, d_out, lse, delta, allowed, scale):
  p = _where(allowed, jnp.exp(_logits(q, k, allowed, scale) - lse), 0.0)
  ds = p * (_dot_t(d_out, v) - delta)
  return p, ds


def dq_tile(q, k, v, d_out, lse, delta, allowed, scale, dq):
  _, ds = _probs_and_dlogits(q, k, v, d_out, lse, delta, allowed, scale)
  return dq + _dot(ds.astype(k.dtype), k) * scale


def dkv_tile(q, k, v, d_out, lse, delta, allowed, scale, dk, dv):
  p, ds = _probs_and_dlogits(q, k, v, d_out, lse, delta, allowed, scale)
  dv = dv + _dot(p.astype(d_out.dtype).T, d_out)
  dk = dk + _dot(ds.astype(q.dtype).T, q) * scale
  return dk, dv

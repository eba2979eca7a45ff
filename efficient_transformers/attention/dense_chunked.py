"""Exact dense attention that never holds the [q_len, kv_len] score matrix.

The `impl="chunked"` implementation of `dense` (see dense.py): the online
softmax of Milakov & Gimelshein 2018 and Rabe & Staats 2021 ("Self-attention
does not need O(n^2) memory"), with the backward pass of FlashAttention-2
(Dao 2023) written in jax.lax:

- forward: for each chunk of `q_chunk` queries, loop over chunks of `kv_chunk`
  keys keeping a running max `m`, normaliser `l` and accumulator `acc` in
  float32 (`softmax_partials.Partials`, merged chunk by chunk with
  `softmax_partials.merge`, the same merge the fixed sparse patterns use);
  save only the output and the log-sum-exp `lse = m + log(l)`;
- backward (custom VJP): for each key chunk, loop over the query chunks that
  can see it, recompute `p = exp(s - lse)` and accumulate dK, dV for that
  chunk and dQ for every query chunk (dS = p * (dP - rowsum(dO * O))).

Complexity: O(q_len * kv_len * head_dim) time (about half with `causal`, since
chunks wholly in the future are skipped); O((q_len + kv_len) * head_dim) memory
plus one [q_chunk, kv_chunk] score tile per batch element and head.
Exact: yes (equal to `impl="xla"` up to float32 rounding). Causal: yes, aligned
at the sequence ends like every mechanism (masks.py). Key padding: yes. Rows
with no key to attend to return zeros (their `l` is 0) and get zero gradients.
Lengths need not be multiples of the chunks: the inputs are padded internally
(padded keys are masked; padded queries are dropped).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from efficient_transformers.attention import masks, softmax_partials

DEFAULT_Q_CHUNK = 512
DEFAULT_KV_CHUNK = 512


def _pad_to(x, multiple, axis):
  pad = -x.shape[axis] % multiple
  if not pad:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, pad)
  return jnp.pad(x, widths)


def _chunk(x, index, size, axis):
  return jax.lax.dynamic_slice_in_dim(x, index * size, size, axis)


class _Problem:
  """Static sizes and the per-tile mask of one chunked attention call."""

  def __init__(self, q_len, kv_len, q_chunk, kv_chunk, causal):
    self.q_len, self.kv_len, self.causal = q_len, kv_len, causal
    self.qc, self.kc = min(q_chunk, q_len), min(kv_chunk, kv_len)
    self.num_q = -(-q_len // self.qc)
    self.num_kv = -(-kv_len // self.kc)
    self.offset = kv_len - q_len  # causal: query i sees keys j <= i + offset

  def kv_chunks_for(self, i):
    """Exclusive end of the kv chunks query chunk i can see."""
    if not self.causal:
      return self.num_kv
    last_pos = i * self.qc + self.qc - 1 + self.offset
    return jnp.clip(jnp.floor_divide(last_pos, self.kc) + 1, 0, self.num_kv)

  def first_q_chunk_for(self, j):
    """First query chunk that can see kv chunk j."""
    if not self.causal:
      return 0
    return jnp.clip(jnp.floor_divide(j * self.kc - self.offset, self.qc), 0, self.num_q)

  def allowed(self, key_mask_BxK, i, j):
    """bool [B, 1, qc, kc]: the allowed (query, key) pairs of tile (i, j)."""
    k_pos = j * self.kc + jnp.arange(self.kc)
    allowed = key_mask_BxK[:, None, None, :] & (k_pos < self.kv_len)[None, None, None, :]
    if self.causal:
      q_pos = i * self.qc + jnp.arange(self.qc)
      allowed = allowed & (k_pos[None, :] <= q_pos[:, None] + self.offset)[None, None]
    return allowed


def _scores(q_BxNxQxH, k_BxNxKxH, scale):
  return jnp.einsum("bnqh,bnkh->bnqk", q_BxNxQxH, k_BxNxKxH,
                    preferred_element_type=jnp.float32) * scale


def _forward(q, k, v, mask, problem: _Problem):
  """q [B,N,Tq',H], k/v [B,N,Tk',H] (padded), mask [B,Tk'] -> out f32, lse."""
  batch, heads, _, head_dim = q.shape
  scale = 1.0 / math.sqrt(head_dim)
  qc, kc = problem.qc, problem.kc

  def q_chunk(i):
    q_i = _chunk(q, i, qc, 2)

    def kv_step(j, carry):  # the online softmax: merge in one more key chunk
      s = _scores(q_i, _chunk(k, j, kc, 2), scale)
      allowed = problem.allowed(_chunk(mask, j, kc, 1), i, j)
      return softmax_partials.merge(
          carry, softmax_partials.partials(s, allowed, _chunk(v, j, kc, 2)))

    init = softmax_partials.Partials(
        acc=jnp.zeros((batch, heads, qc, v.shape[-1]), jnp.float32),
        row_max=jnp.full((batch, heads, qc), masks.MASK_VALUE, jnp.float32),
        row_sum=jnp.zeros((batch, heads, qc), jnp.float32))
    total = jax.lax.fori_loop(0, problem.kv_chunks_for(i), kv_step, init)
    out = softmax_partials.finish(total, jnp.float32)  # empty rows: zeros
    nonempty = total.row_sum > 0
    lse = jnp.where(nonempty, total.row_max + jnp.log(jnp.where(nonempty, total.row_sum, 1.0)), 0.0)
    return out, lse

  out_CxBxNxQxH, lse_CxBxNxQ = jax.lax.map(q_chunk, jnp.arange(problem.num_q))
  out = jnp.moveaxis(out_CxBxNxQxH, 0, 2).reshape(batch, heads, -1, v.shape[-1])
  lse = jnp.moveaxis(lse_CxBxNxQ, 0, 2).reshape(batch, heads, -1)
  return out, lse


def _backward(q, k, v, mask, out, lse, d_out, problem: _Problem):
  """FlashAttention-2 backward over key chunks; returns dq, dk, dv (float32)."""
  head_dim = q.shape[-1]
  scale = 1.0 / math.sqrt(head_dim)
  qc, kc = problem.qc, problem.kc
  delta = jnp.sum(d_out * out, axis=-1)  # [B, N, Tq']: rowsum(dO * O)

  def kv_chunk(dq, j):
    k_j = _chunk(k, j, kc, 2)
    v_j = _chunk(v, j, kc, 2).astype(jnp.float32)
    mask_j = _chunk(mask, j, kc, 1)

    def q_step(i, carry):
      dk_j, dv_j, dq = carry
      q_i = _chunk(q, i, qc, 2)
      d_out_i = _chunk(d_out, i, qc, 2)
      s = _scores(q_i, k_j, scale)
      allowed = problem.allowed(mask_j, i, j)
      p = jnp.where(allowed, jnp.exp(s - _chunk(lse, i, qc, 2)[..., None]), 0.0)
      dv_j = dv_j + jnp.einsum("bnqk,bnqh->bnkh", p, d_out_i)
      dp = jnp.einsum("bnqh,bnkh->bnqk", d_out_i, v_j)
      ds = p * (dp - _chunk(delta, i, qc, 2)[..., None]) * scale
      dk_j = dk_j + jnp.einsum("bnqk,bnqh->bnkh", ds, q_i.astype(jnp.float32))
      dq_i = _chunk(dq, i, qc, 2) + jnp.einsum(
          "bnqk,bnkh->bnqh", ds, k_j.astype(jnp.float32))
      dq = jax.lax.dynamic_update_slice_in_dim(dq, dq_i, i * qc, 2)
      return dk_j, dv_j, dq

    init = (jnp.zeros(k_j.shape, jnp.float32), jnp.zeros(v_j.shape, jnp.float32), dq)
    dk_j, dv_j, dq = jax.lax.fori_loop(
        problem.first_q_chunk_for(j), problem.num_q, q_step, init)
    return dq, (dk_j, dv_j)

  dq, (dk_CxBxNxKxH, dv_CxBxNxKxH) = jax.lax.scan(
      kv_chunk, jnp.zeros(q.shape, jnp.float32), jnp.arange(problem.num_kv))
  unchunk = lambda x: jnp.moveaxis(x, 0, 2).reshape(*k.shape[:2], -1, x.shape[-1])
  return dq, unchunk(dk_CxBxNxKxH), unchunk(dv_CxBxNxKxH)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _attention(q, k, v, mask, problem):
  return _forward(q, k, v, mask, problem)[0]


def _attention_fwd(q, k, v, mask, problem):
  out, lse = _forward(q, k, v, mask, problem)
  return out, (q, k, v, mask, out, lse)


def _attention_bwd(problem, residuals, d_out):
  q, k, v, mask, out, lse = residuals
  dq, dk, dv = _backward(q, k, v, mask, out, lse, d_out.astype(jnp.float32), problem)
  return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None


_attention.defvjp(_attention_fwd, _attention_bwd)


def dense_chunked(q, k, v, *, mask=None, causal=False, q_chunk=DEFAULT_Q_CHUNK,
                  kv_chunk=DEFAULT_KV_CHUNK):
  """Chunked exact attention; BTNH in and out (see the module docstring)."""
  batch, q_len, _, _ = q.shape
  kv_len = k.shape[1]
  if q_chunk < 1 or kv_chunk < 1:
    raise ValueError(f"q_chunk and kv_chunk must be >= 1, got {q_chunk}, {kv_chunk}")
  problem = _Problem(q_len, kv_len, q_chunk, kv_chunk, causal)
  if mask is None:
    mask = jnp.ones((batch, kv_len), bool)
  elif mask.shape != (batch, kv_len):
    raise ValueError(f"mask must be bool [batch, kv_len] = {(batch, kv_len)}, got {mask.shape}")
  to_bnth = lambda x, size: _pad_to(jnp.swapaxes(x, 1, 2), size, 2)
  out_BxNxTxH = _attention(to_bnth(q, problem.qc), to_bnth(k, problem.kc),
                           to_bnth(v, problem.kc),
                           _pad_to(mask.astype(bool), problem.kc, 1), problem)
  return jnp.swapaxes(out_BxNxTxH[:, :, :q_len], 1, 2).astype(q.dtype)

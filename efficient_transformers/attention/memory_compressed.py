"""Memory-compressed attention (Liu et al. 2018, "Generating Wikipedia by
Summarizing Long Sequences", the M layers of T-DMCA).

Family (Tay et al.): fixed patterns / downsampling of the memory.
Keys and values are shortened by a strided convolution with kernel = stride =
`compression` (c) over the length axis; queries are untouched:
  slot s = sum_t x[s*c + t] @ W[t, head]   (x = k or v, t < c)
with per-head weights `compress_k`, `compress_v` [c, heads, head_dim, head_dim]
(the NNX layer owns them: models/memory_compressed_conv.py). Without weights
the slot is the mean of its real keys/values, Mesh-TF's parameter-free
`compress_mean` variant.
Padding: padded keys/values are zeroed before compressing, a slot is real iff
  it holds at least one real key, and the mean divides by the real count; so
  padded keys never influence the output. A length that is not a multiple of c
  is padded internally at the end the same way.
Causal: query i (at absolute position i + kv_len - q_len) sees slot s only when
  the whole slot is in its past: min(s*c + c - 1, kv_len - 1) <= i
  (Mesh-TF's rule; a partial last slot ends at the last key). Rows with
  no visible slot (the first c - 1 positions) return zeros, per the attention
  contract. The alternatives are t2t's prepended first token (memory =
  [x_0, slots], so every query sees at least token 0) and Mesh-TF's extra zero
  logit (a null key); neither is used here.
Complexity: O(q_len * kv_len / c * head_dim) time and O(q_len * kv_len / c)
  memory: quadratic, divided by c (the survey's O(N_c^2)).
Exact: no fixed pattern over the original keys (not in PATTERNS); c = 1 with
  no weights equals dense. Supports q_len != kv_len (cross-attention).
Differences from t2t: t2t compresses the layer input x (before the K/V
  projections) with a full-width Conv2D that mixes heads; here the projected
  keys and values are compressed per head, which keeps the mechanism a
  function of (q, k, v).
Options:
  compression: c (default 3, the paper's and t2t's).
  compress_k, compress_v: optional conv weights [c, heads, head_dim, head_dim];
    both or neither.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from efficient_transformers.attention import blocked, masks
from efficient_transformers.attention.shapes import check_qkv


def _compress(x_BxSxCxNxH, real_BxSxC, weights):
  """[B, S, c, N, H] -> [B, S, N, H] (float32) by conv weights or real mean."""
  x = jnp.where(real_BxSxC[..., None, None], x_BxSxCxNxH.astype(jnp.float32), 0.0)
  if weights is None:
    count = jnp.maximum(real_BxSxC.sum(-1), 1).astype(jnp.float32)
    return x.sum(2) / count[:, :, None, None]
  return jnp.einsum("bscnh,cnhd->bsnd", x, weights.astype(jnp.float32))


def compress(x, mask, compression, weights=None):
  """Compressed [B, ceil(T/c), N, H] (float32) and slot mask [B, ceil(T/c)]."""
  real_BxT = blocked.key_mask(mask, x.shape[0], x.shape[1])
  real_BxSxC = blocked.to_blocks(real_BxT, compression, value=False)
  x_BxSxCxNxH = blocked.to_blocks(x, compression)
  return _compress(x_BxSxCxNxH, real_BxSxC, weights), real_BxSxC.any(-1)


def memory_compressed(q, k, v, *, mask=None, causal=False, compression=3,
                      compress_k=None, compress_v=None):
  """Memory-compressed attention, BTNH layout (see the module docstring)."""
  check_qkv(q, k, v)
  c = int(compression)
  if c < 1:
    raise ValueError(f"memory_compressed needs compression >= 1, got {compression}")
  if (compress_k is None) != (compress_v is None):
    raise ValueError("memory_compressed: give both compress_k and compress_v, or neither")
  heads, head_dim = k.shape[2], k.shape[3]
  for name, w in (("compress_k", compress_k), ("compress_v", compress_v)):
    if w is not None and w.shape != (c, heads, head_dim, head_dim):
      raise ValueError(
          f"memory_compressed {name} must be [compression, heads, head_dim,"
          f" head_dim] = {(c, heads, head_dim, head_dim)}, got {w.shape}")
  q_len, kv_len = q.shape[1], k.shape[1]
  k_BxSxNxH, real_BxS = compress(k, mask, c, compress_k)
  v_BxSxNxH, _ = compress(v, mask, c, compress_v)
  logits = jnp.einsum("bqnh,bsnh->bnqs", q.astype(jnp.float32), k_BxSxNxH)
  logits = logits / math.sqrt(head_dim)
  allowed = real_BxS[:, None, None, :]
  if causal:
    # The last slot may be partial: it ends at the last key.
    slot_end = jnp.minimum(jnp.arange(k_BxSxNxH.shape[1]) * c + c - 1, kv_len - 1)
    q_pos = jnp.arange(q_len) + (kv_len - q_len)
    allowed = allowed & (slot_end[None, :] <= q_pos[:, None])
  logits = jnp.where(allowed, logits, masks.MASK_VALUE)
  weights = jnp.where(allowed, jax.nn.softmax(logits, axis=-1), 0.0)
  out = jnp.einsum("bnqs,bsnh->bqnh", weights, v_BxSxNxH)
  return out.astype(q.dtype)

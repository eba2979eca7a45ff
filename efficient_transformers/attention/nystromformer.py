"""Nystromformer: softmax attention through the Nystrom method with landmarks.

Paper: Xiong et al. 2021, "Nystromformer: A Nystrom-Based Algorithm for
  Approximating Self-Attention" (not in Tay et al.'s survey; low rank family).
Complexity: O(L * m * d + m^3) time, O(L * m + m^2) memory for m landmarks.
Exact: no; approximates softmax(Q K^T / sqrt(d)) V by
    softmax(Q K~^T) pinv(softmax(Q~ K~^T)) softmax(Q~ K^T) V
  (scaled by 1/sqrt(d)), with landmarks Q~, K~ the means of m contiguous
  segments of Q and K. With one token per landmark (m >= length) and enough
  pseudo-inverse iterations it equals dense attention (tested).
Causal: no (landmarks mix future positions): `causal=True` raises.

Details:
- Lengths that are not a multiple of m are padded internally: segments have
  ceil(L / m) positions and the means count real positions only. Padded keys
  never enter a landmark or a softmax; landmarks of empty segments are masked
  out (their rows and columns of the m x m kernel are zero, and the iterative
  pseudo-inverse keeps them zero). When q_len == kv_len the key mask also
  marks padded queries (self-attention), which then do not enter the query
  landmarks.
- Moore-Penrose pseudo-inverse by the paper's iteration
  Z <- Z (13 I - A Z (15 I - A Z (7 I - A Z))) / 4, from
  Z0 = A^T / (max column sum * max row sum) of each (batch, head) matrix
  (the official code takes the maxima over the whole batch, coupling examples).
- Optional depthwise convolution skip on the values (official code: kernel 33
  along the length, one filter per head), added to the output; self-attention
  only. Padded values are zeroed first.

Options:
  num_landmarks: m (default 64).
  pinv_iterations: default 6.
  conv_kernel: optional [heads, kernel_size] (odd kernel_size) conv weights.
  (conv_kernel_size is an option of the NNX layer, models/nystrom_conv.py,
  which the layer does not pass here.)
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from efficient_transformers.attention import masks
from efficient_transformers.attention.shapes import check_qkv


def segment_means(x, real, num_segments):
  """x [B, L, N, d], real bool [B, L] -> means [B, m, N, d], valid bool [B, m]."""
  batch, length = x.shape[:2]
  size = -(-length // num_segments)
  pad = num_segments * size - length
  x = jnp.where(real[:, :, None, None], x, 0.0)
  x = jnp.pad(x, [(0, 0), (0, pad), (0, 0), (0, 0)])
  counts = jnp.pad(real.astype(jnp.float32), [(0, 0), (0, pad)])
  counts = counts.reshape(batch, num_segments, size).sum(-1)
  sums = x.reshape((batch, num_segments, size) + x.shape[2:]).sum(2)
  return sums / jnp.maximum(counts, 1.0)[:, :, None, None], counts > 0


def _masked_softmax(logits, allowed):
  logits = jnp.where(allowed, logits, masks.MASK_VALUE)
  return jnp.where(allowed, jax.nn.softmax(logits, axis=-1), 0.0)


def iterative_pinv(a, num_iterations):
  """Moore-Penrose pseudo-inverse of a [..., m, m] by the Nystromformer iteration."""
  eye = jnp.eye(a.shape[-1], dtype=a.dtype)
  col = jnp.abs(a).sum(-2).max(-1)[..., None, None]
  row = jnp.abs(a).sum(-1).max(-1)[..., None, None]
  z = jnp.swapaxes(a, -1, -2) / jnp.maximum(col * row, 1e-30)
  for _ in range(num_iterations):
    az = a @ z
    z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
  return z


def depthwise_conv(v, conv_kernel):
  """v [B, L, N, d], conv_kernel [N, K] -> [B, L, N, d] ('same' padding).

  out[:, l, n] = sum_j conv_kernel[n, j] * v[:, l + j - K // 2, n] as K
  shifted multiply-adds, which XLA fuses into one pass over v (and its
  transpose, for the gradient, into one more). A grouped `conv_general_dilated`
  with one channel per head ran at ~0.1 GFLOP/s on XLA:CPU (0.6 s at 4K).
  """
  heads, size = conv_kernel.shape
  if size % 2 != 1:
    raise ValueError(f"conv_kernel size must be odd, got {size}")
  length = v.shape[1]
  half = size // 2
  padded = jnp.pad(v, [(0, 0), (half, half), (0, 0), (0, 0)])
  weights_KxN = jnp.swapaxes(conv_kernel.astype(v.dtype), 0, 1)
  out = padded[:, 0:length] * weights_KxN[0][:, None]
  for j in range(1, size):
    out = out + padded[:, j:j + length] * weights_KxN[j][:, None]
  return out


def nystromformer(q, k, v, *, mask=None, causal=False, num_landmarks: int = 64,
                  pinv_iterations: int = 6, conv_kernel=None):
  """Nystrom attention, BTNH layout; see the module docstring."""
  check_qkv(q, k, v)
  if causal:
    raise ValueError("nystromformer cannot be causal: its landmarks mix future"
                     " positions")
  batch, q_len, _, head_dim = q.shape
  kv_len = k.shape[1]
  if mask is not None:
    masks.allowed_pairs(batch, q_len, kv_len, mask=mask)  # checks the shape
  if conv_kernel is not None:
    conv_kernel = jnp.asarray(conv_kernel, jnp.float32)
    if q_len != kv_len:
      raise ValueError("nystromformer's conv_kernel skip needs q_len == kv_len")
    if conv_kernel.shape[-1] % 2 != 1:
      raise ValueError(f"conv_kernel size must be odd, got {conv_kernel.shape}")
  return _nystromformer(q, k, v, mask, conv_kernel, num_landmarks=num_landmarks,
                        pinv_iterations=pinv_iterations)


@functools.partial(jax.jit, static_argnames=("num_landmarks", "pinv_iterations"))
def _nystromformer(q, k, v, mask, conv_kernel, *, num_landmarks, pinv_iterations):
  batch, q_len, _, head_dim = q.shape
  kv_len = k.shape[1]
  key_real = jnp.ones((batch, kv_len), bool) if mask is None else mask
  query_real = key_real if (mask is not None and q_len == kv_len) else (
      jnp.ones((batch, q_len), bool))
  q32 = q.astype(jnp.float32) / math.sqrt(head_dim)
  k32 = k.astype(jnp.float32)
  v32 = jnp.where(key_real[:, :, None, None], v.astype(jnp.float32), 0.0)
  q_land, q_valid = segment_means(q32, query_real, num_landmarks)
  k_land, k_valid = segment_means(k32, key_real, num_landmarks)
  k_valid_ = k_valid[:, None, None, :]
  q_valid_ = q_valid[:, None, :, None]
  # The [L, m] products run heads first ([B, N, L, d]: batch axes leading, so
  # XLA adds no transposes around them); the landmarks are small.
  heads_first = lambda x: jnp.swapaxes(x, 1, 2)
  q_land, k_land = heads_first(q_land), heads_first(k_land)
  kernel_1 = _masked_softmax(
      jnp.einsum("bnqh,bnmh->bnqm", heads_first(q32), k_land), k_valid_)
  kernel_2 = _masked_softmax(jnp.einsum("bnmh,bnlh->bnml", q_land, k_land),
                             k_valid_ & q_valid_)
  kernel_3 = _masked_softmax(jnp.einsum("bnmh,bnkh->bnmk", q_land, heads_first(k32)),
                             key_real[:, None, None, :] & q_valid_)
  landmark_values = jnp.einsum("bnmk,bnkh->bnmh", kernel_3, heads_first(v32))
  landmark_values = iterative_pinv(kernel_2, pinv_iterations) @ landmark_values
  out = heads_first(jnp.einsum("bnqm,bnmh->bnqh", kernel_1, landmark_values))
  if conv_kernel is not None:
    out = out + depthwise_conv(v32, conv_kernel)
  return out.astype(q.dtype)

"""Linformer: keys and values projected along the length to k rows.

Paper: Wang et al. 2020, "Linformer: Self-Attention with Linear Complexity".
Family: low rank (Tay et al.'s survey).
Complexity: O(L * k * d) time, O(L * k) memory (k = projected length).
Exact: no; with k = kv_len and identity projections it is dense attention.
Causal: no (the projections mix future positions): `causal=True` raises.

    head = softmax(Q (E^T K)^T / sqrt(d)) (F^T V),  E = proj_k, F = proj_v

Padding: padded keys and values are zeroed before the projection, so they
contribute nothing (fairseq and the original LRA code let them leak). A
projected key r whose projection column proj_k[:, r] is zero at every real
position (no support on real tokens) is left out of the softmax: it holds no
information, yet with exp(0) it would still take softmax mass. So with
identity projections (k = kv_len) Linformer with key padding equals dense
attention with the same padding (tests), and projections that are dense on
the real positions (learned, random) are unchanged, bit for bit. A row with
no projected key left (every key padding) returns zeros.

Options:
  proj_k, proj_v: [kv_len, k] (shared across heads, the paper's "headwise"
    sharing) or [heads, kv_len, k]. Key-value sharing passes the same array
    twice; layerwise sharing is the NNX layer's business
    (models/low_rank_projections.py), which also slices [max_length, k]
    parameters to kv_len.
  (low_rank, share_kv, share_heads are options of the NNX layer, which the
  layer does not pass here.)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from efficient_transformers.attention import masks
from efficient_transformers.attention.shapes import check_qkv


def _project(x, proj, name):
  length, heads = x.shape[1], x.shape[2]
  proj = jnp.asarray(proj)
  if proj.ndim == 2 and proj.shape[0] == length:
    return jnp.einsum("btnh,tr->brnh", x, proj.astype(jnp.float32))
  if proj.ndim == 3 and proj.shape[:2] == (heads, length):
    return jnp.einsum("btnh,ntr->brnh", x, proj.astype(jnp.float32))
  raise ValueError(
      f"{name} must be [kv_len, k] or [heads, kv_len, k] with kv_len={length},"
      f" heads={heads}; got {proj.shape} (slice longer projections to kv_len)")


def _supported(proj, mask, batch, heads):
  """bool [B, N, 1, k]: projected row r draws on some real position."""
  length = proj.shape[-2]
  real = (jnp.ones((batch, length), jnp.float32) if mask is None
          else mask.astype(jnp.float32))
  weight = jnp.abs(jax.lax.stop_gradient(jnp.asarray(proj, jnp.float32)))
  if weight.ndim == 2:
    mass_BxR = jnp.einsum("bt,tr->br", real, weight)
    return (mass_BxR > 0)[:, None, None, :]
  return (jnp.einsum("bt,ntr->bnr", real, weight) > 0)[:, :, None, :]


def linformer(q, k, v, *, mask=None, causal=False, proj_k, proj_v):
  """Linformer attention, BTNH layout; see the module docstring."""
  check_qkv(q, k, v)
  if causal:
    raise ValueError("linformer cannot be causal: its projections mix future"
                     " positions")
  k32, v32 = k.astype(jnp.float32), v.astype(jnp.float32)
  if mask is not None:
    masks.allowed_pairs(k.shape[0], q.shape[1], k.shape[1], mask=mask)  # checks
    real = mask[:, :, None, None]
    k32, v32 = jnp.where(real, k32, 0.0), jnp.where(real, v32, 0.0)
  k_BxRxNxH = _project(k32, proj_k, "proj_k")
  v_BxRxNxH = _project(v32, proj_v, "proj_v")
  logits_BxNxQxR = jnp.einsum("bqnh,brnh->bnqr", q.astype(jnp.float32),
                              k_BxRxNxH) / math.sqrt(q.shape[-1])
  supported = _supported(proj_k, mask, k.shape[0], k.shape[2])
  logits_BxNxQxR = jnp.where(supported, logits_BxNxQxR, masks.MASK_VALUE)
  weights = jax.nn.softmax(logits_BxNxQxR, axis=-1)
  weights = jnp.where(supported.any(-1, keepdims=True), weights, 0.0)
  out = jnp.einsum("bnqr,brnh->bqnh", weights, v_BxRxNxH)
  return out.astype(q.dtype)

"""Linear Transformer: attention through a positive feature map, no softmax.

Paper: Katharopoulos et al. 2020, "Transformers are RNNs: Fast Autoregressive
  Transformers with Linear Attention".
Family: kernel methods (Tay et al.'s survey, "kernels").
Complexity: O(L * m * d) time, O(L * m + m * d) memory (m = feature size, equal
  to head_dim for elu+1). Causal: chunked prefix sums, a `lax.scan` over chunks
  of `chunk_size` that carries the running m x d state and uses the masked
  quadratic form inside each chunk: O(L * (C + m) + (L / C) * m * d) memory,
  never an [L, m, d] cumulative sum.
Exact: no (a different kernel from softmax); it is exactly the quadratic form
  phi(Q) phi(K)^T V / normaliser, which the tests check in all three forms
  (bidirectional or masked quadratic, chunked prefix sums, recurrent steps).
Causal: yes (aligned at the sequence ends, as in masks.py), plus the RNN form
  `recurrent_step` for decoding with O(1) state per token (registered in
  `attention.DECODERS` as `linear_init_decode_state` / `linear_decode_step`).

    out_i = phi(q_i)^T S / (phi(q_i)^T z + eps),  S = sum_j phi(k_j) v_j^T,
    z = sum_j phi(k_j); over j <= i when causal.

As in the paper, phi is applied to the raw q and k (no 1/sqrt(head_dim)), and
eps (1e-6) sits in the denominator. Padded keys get phi(k) = 0, so they add
nothing (the original LRA code ignored the mask). A query with no visible key
returns zeros.

Options:
  feature_map: "elu_plus_one" (default), "relu", or any callable mapping
    [..., head_dim] to non-negative [..., m].
  chunk_size: causal chunk length C (default 64); lengths need not divide it.
  eps: denominator stabiliser (default 1e-6).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from efficient_transformers.attention import masks
from efficient_transformers.attention.shapes import check_qkv

FEATURE_MAPS: dict[str, Callable] = {
    "elu_plus_one": lambda x: jax.nn.elu(x) + 1.0,
    "relu": jax.nn.relu,
}


def feature_map_fn(feature_map) -> Callable:
  if callable(feature_map):
    return feature_map
  if feature_map not in FEATURE_MAPS:
    raise ValueError(f"unknown feature_map {feature_map!r}; valid: "
                     f"{', '.join(FEATURE_MAPS)} or a callable")
  return FEATURE_MAPS[feature_map]


def causal_linear_attention(phi_q, phi_k, v, *, key_log_scale=None,
                            chunk_size: int = 64):
  """Chunked causal prefix sums; returns (numerator, denominator), float32.

  phi_q [B, T, N, m], phi_k [B, T, N, m], v [B, T, N, d] (aligned: pair (i, j)
  allowed iff j <= i). The weight of pair (i, j) is
  phi_q[i] . phi_k[j] * exp(s_j - M_i) with s = key_log_scale [B, T, N]
  (absent: 0) and M_i = max_{j <= i} s_j: a causal stabiliser (Performer) that
  depends on past keys only. Every exponent is <= 0. Returns num [B, T, N, d]
  and den [B, T, N].
  """
  batch, length, heads, m = phi_q.shape
  chunk = max(1, min(chunk_size, length))
  num_chunks = -(-length // chunk)
  pad = num_chunks * chunk - length
  stabilised = key_log_scale is not None
  if not stabilised:
    key_log_scale = jnp.zeros((batch, length, heads), jnp.float32)
  s = jax.lax.stop_gradient(key_log_scale.astype(jnp.float32))
  running_max = jax.lax.cummax(s, axis=1)

  def chunks(x, fill=0.0):
    widths = [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2)
    if fill is None:  # repeat the last value (a running maximum stays put)
      x = jnp.pad(x, widths, mode="edge")
    else:
      x = jnp.pad(x, widths, constant_values=fill)
    x = x.reshape((batch, num_chunks, chunk) + x.shape[2:])
    return jnp.moveaxis(x, 1, 0)  # [num_chunks, B, C, ...]

  xs = (chunks(phi_q.astype(jnp.float32)), chunks(phi_k.astype(jnp.float32)),
        chunks(v.astype(jnp.float32)), chunks(s, masks.MASK_VALUE),
        chunks(running_max, None))
  tril = jnp.tril(jnp.ones((chunk, chunk), bool))

  def step(carry, x):
    state_NxMxD, norm_NxM, prev_max_N = carry
    q_BxCxNxM, k_BxCxNxM, v_BxCxNxD, s_BxCxN, max_BxCxN = x
    # Earlier chunks, rescaled from their stabiliser to each query's.
    num = jnp.einsum("bcnm,bnmd->bcnd", q_BxCxNxM, state_NxMxD)
    den = jnp.einsum("bcnm,bnm->bcn", q_BxCxNxM, norm_NxM)
    if stabilised:
      carry_scale = jnp.exp(prev_max_N[:, None] - max_BxCxN)
      num, den = num * carry_scale[..., None], den * carry_scale
    # This chunk: masked quadratic form.
    w_BxNxCxC = jnp.einsum("binm,bjnm->bnij", q_BxCxNxM, k_BxCxNxM)
    if stabilised:
      exponent = (jnp.moveaxis(s_BxCxN, 1, 2)[:, :, None, :]
                  - jnp.moveaxis(max_BxCxN, 1, 2)[:, :, :, None])
      w_BxNxCxC = w_BxNxCxC * jnp.exp(jnp.where(tril, exponent, masks.MASK_VALUE))
    w_BxNxCxC = jnp.where(tril, w_BxNxCxC, 0.0)
    num = num + jnp.einsum("bnij,bjnd->bind", w_BxNxCxC, v_BxCxNxD)
    den = den + jnp.moveaxis(w_BxNxCxC.sum(-1), 1, 2)
    # Fold this chunk into the state, at the stabiliser of its last position.
    new_max_N = max_BxCxN[:, -1]
    if stabilised:
      k_BxCxNxM = k_BxCxNxM * jnp.exp(s_BxCxN - new_max_N[:, None])[..., None]
      decay = jnp.exp(prev_max_N - new_max_N)
      state_NxMxD = state_NxMxD * decay[..., None, None]
      norm_NxM = norm_NxM * decay[..., None]
    state_NxMxD = state_NxMxD + jnp.einsum("bcnm,bcnd->bnmd", k_BxCxNxM, v_BxCxNxD)
    norm_NxM = norm_NxM + jnp.sum(k_BxCxNxM, 1)
    return (state_NxMxD, norm_NxM, new_max_N), (num, den)

  d = v.shape[-1]
  init = (jnp.zeros((batch, heads, m, d), jnp.float32),
          jnp.zeros((batch, heads, m), jnp.float32),
          jnp.full((batch, heads), masks.MASK_VALUE, jnp.float32))
  _, (num, den) = jax.lax.scan(step, init, xs)
  num = jnp.moveaxis(num, 0, 1).reshape(batch, num_chunks * chunk, heads, d)
  den = jnp.moveaxis(den, 0, 1).reshape(batch, num_chunks * chunk, heads)
  return num[:, :length], den[:, :length]


def align_causal(phi_q, phi_k, v, key_log_scale=None):
  """Pads the shorter side on the left so that causal pairs align at the ends
  (masks.causal_pairs); returns the padded arrays and the query offset."""
  q_len, kv_len = phi_q.shape[1], phi_k.shape[1]
  length = max(q_len, kv_len)
  left = lambda x, n, fill=0.0: jnp.pad(
      x, [(0, 0), (n, 0)] + [(0, 0)] * (x.ndim - 2), constant_values=fill)
  phi_q = left(phi_q, length - q_len)
  phi_k, v = left(phi_k, length - kv_len), left(v, length - kv_len)
  if key_log_scale is not None:
    key_log_scale = left(key_log_scale, length - kv_len, masks.MASK_VALUE)
  return phi_q, phi_k, v, key_log_scale, length - q_len


def linear(q, k, v, *, mask=None, causal=False, feature_map="elu_plus_one",
           chunk_size: int = 64, eps: float = 1e-6):
  """Linear attention, BTNH layout; see the module docstring."""
  check_qkv(q, k, v)
  phi = feature_map_fn(feature_map)
  if mask is not None:
    masks.allowed_pairs(k.shape[0], q.shape[1], k.shape[1], mask=mask)  # checks
  return _linear(q, k, v, mask, causal=causal, phi=phi, chunk_size=chunk_size,
                 eps=eps)


@functools.partial(jax.jit, static_argnames=("causal", "phi", "chunk_size", "eps"))
def _linear(q, k, v, mask, *, causal, phi, chunk_size, eps):
  phi_q = phi(q.astype(jnp.float32))
  phi_k = phi(k.astype(jnp.float32))
  if mask is not None:
    phi_k = jnp.where(mask[:, :, None, None], phi_k, 0.0)
  if causal:
    phi_q, phi_k, v_, _, offset = align_causal(phi_q, phi_k, v)
    num, den = causal_linear_attention(phi_q, phi_k, v_, chunk_size=chunk_size)
    num, den = num[:, offset:], den[:, offset:]
  else:
    # Heads first ([B, N, L, .]: batch axes leading, as the matmuls want them,
    # so XLA inserts no transposes around each einsum), and the normaliser as
    # one more column of V: phi(K)^T [V, 1] gives S and z in one matmul, and
    # phi(Q) [S, z] the numerator and the denominator in one more.
    heads_first = lambda x: jnp.swapaxes(x, 1, 2)
    v_BxNxKxD = heads_first(v.astype(jnp.float32))
    v_BxNxKxD1 = jnp.concatenate(
        [v_BxNxKxD, jnp.ones(v_BxNxKxD.shape[:-1] + (1,), jnp.float32)], -1)
    kv_BxNxMxD1 = jnp.einsum("bnkm,bnkd->bnmd", heads_first(phi_k), v_BxNxKxD1)
    out_BxNxQxD1 = jnp.einsum("bnqm,bnmd->bnqd", heads_first(phi_q), kv_BxNxMxD1)
    num = heads_first(out_BxNxQxD1[..., :-1])
    den = heads_first(out_BxNxQxD1[..., -1])
  return (num / (den[..., None] + eps)).astype(q.dtype)


# ----------------------------------------------------------------------------
# Recurrent (RNN) form, for decoding one token at a time.


def init_state(batch: int, heads: int, feature_dim: int, head_dim: int):
  """Empty recurrent state: (S [B, N, m, d], z [B, N, m]), float32."""
  return (jnp.zeros((batch, heads, feature_dim, head_dim), jnp.float32),
          jnp.zeros((batch, heads, feature_dim), jnp.float32))


def recurrent_step(state, q_t, k_t, v_t, *, feature_map="elu_plus_one",
                   eps: float = 1e-6, key_mask=None):
  """One causal decoding step: q_t, k_t, v_t [B, N, d] -> (state, out_t).

  Equals row t of `linear(..., causal=True)`; the state is O(m * d) whatever
  the number of tokens so far. key_mask: optional bool [B], False = padding.
  """
  phi = feature_map_fn(feature_map)
  phi_q, phi_k = phi(q_t.astype(jnp.float32)), phi(k_t.astype(jnp.float32))
  if key_mask is not None:
    phi_k = jnp.where(key_mask[:, None, None], phi_k, 0.0)
  state_NxMxD, norm_NxM = state
  state_NxMxD = state_NxMxD + phi_k[..., :, None] * v_t.astype(jnp.float32)[..., None, :]
  norm_NxM = norm_NxM + phi_k
  num = jnp.einsum("bnm,bnmd->bnd", phi_q, state_NxMxD)
  den = jnp.einsum("bnm,bnm->bn", phi_q, norm_NxM)
  out = (num / (den[..., None] + eps)).astype(q_t.dtype)
  return (state_NxMxD, norm_NxM), out


# Incremental decoding (attention.DECODERS): the recurrent form above.


def linear_init_decode_state(batch: int, heads: int, head_dim: int,
                             max_length: int, dtype=jnp.float32, *,
                             feature_map="elu_plus_one", chunk_size: int = 64,
                             eps: float = 1e-6):
  """`init_state` sized by the feature map: O(m * head_dim) whatever max_length."""
  del max_length, dtype, chunk_size, eps  # float32, O(1) in length
  phi = feature_map_fn(feature_map)
  m = jax.eval_shape(phi, jax.ShapeDtypeStruct((head_dim,), jnp.float32)).shape[-1]
  return init_state(batch, heads, m, head_dim)


def linear_decode_step(state, q_t, k_t, v_t, *, key_mask=None,
                       feature_map="elu_plus_one", chunk_size: int = 64,
                       eps: float = 1e-6):
  """`recurrent_step` as (out_t, state)."""
  del chunk_size
  state, out = recurrent_step(state, q_t, k_t, v_t, feature_map=feature_map,
                              eps=eps, key_mask=key_mask)
  return out, state

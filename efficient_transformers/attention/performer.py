"""Performer: FAVOR+ (fast attention via positive orthogonal random features).

Paper: Choromanski et al. 2020, "Rethinking Attention with Performers".
Family: kernel methods (Tay et al.'s survey, "kernels").
Complexity: O(L * m * d) time, O(L * m + m * d) memory for m random features.
  Causal: chunked prefix sums (`linear.causal_linear_attention`): a `lax.scan`
  over chunks carrying the m x d state, the masked quadratic form inside each
  chunk; never an [L, m, d] tensor.
Exact: no. softmax(q.k / sqrt(d)) is estimated without bias by
  phi(q).phi(k), phi(x) = m^-1/2 exp(W x' - |x'|^2 / 2), x' = x d^-1/4, W the
  [m, d] random features; the error falls as m grows (tests). Given the same W,
  the output equals the quadratic form normalize(phi(Q) phi(K)^T) V exactly.
Reference: google-research performer/fast_attention/jax/fast_attention.py
  (`make_fast_softmax_attention`, `make_fast_generalized_attention`); the relu
  kernel equals the latter with its defaults to float32 rounding (tests,
  docs/fidelity.md). Deliberate differences, all below: padded keys are left
  out (phi(k) = 0; the reference ignores its padding `bias`), the softmax
  kernel's stabilisers (no eps, a causal key maximum), sign-corrected
  orthogonal blocks, features drawn by the caller (no redraw from sum(query)).
Causal: yes, aligned at the sequence ends (masks.py); `recurrent_step` is the
  RNN form for decoding (state S, z and the running key maximum), registered
  in `attention.DECODERS` as `performer_init_decode_state` /
  `performer_decode_step`.

Numerical stabilisers. The exponentials are computed relative to a maximum:
per query (over features; cancels in the normalisation) and, for keys,
- bidirectional: the maximum over all real (unpadded) keys and features;
- causal: for query i, the maximum over keys j <= i only (a running maximum,
  rescaled between chunks as in online softmax), so no output depends on a
  future key, not even through rounding. The reference JAX code takes the key
  maximum over all positions and adds eps after the exponential, which leaks
  the future in causal mode; here no eps is added to the softmax features, so
  the stabilisers cancel exactly. A row whose denominator is 0 (no visible key)
  returns zeros. Padded keys get phi(k) = 0 and are left out of the maxima.

Features: positive orthogonal random features (`orthogonal_features`): blocks
of d orthonormal rows (QR of Gaussian matrices), row norms drawn as the norms of
Gaussian vectors (`scaling=0`, the paper's default) or all sqrt(d) (`scaling=1`).
Each block is the Q of a Gaussian matrix's QR with diag(R) > 0
(`haar_orthogonal`), so that it is uniform on the orthogonal group; the
reference code omits the sign correction, which biases the directions
(measured here: the error to softmax stalls as m grows). The QR is Householder
in plain XLA ops, not LAPACK (see `haar_orthogonal` for the CPU deadlock).

Options:
  features: [m, head_dim] or [heads, m, head_dim] random features, or None.
  rng, num_features (256): draw orthogonal features when `features` is None.
  kernel: "softmax" (FAVOR+) or "relu" (generalised attention,
    phi(x) = relu(W x') + kernel_epsilon; with neither features nor rng it is
    the deterministic relu(x') + kernel_epsilon: with the defaults below, the
    defaults of google-research's `make_fast_generalized_attention`, which is
    LRA's default "Performer" (features_type "deterministic")).
  kernel_epsilon: 1e-3, relu kernel only.
  normalize_data: x' = x d^-1/4 (True) or x' = x (False). Default None: True
    for "softmax" (FAVOR+ needs it to estimate softmax(q.k / sqrt(d)); the
    reference's softmax features always normalise), False for "relu" (the
    reference's generalised attention does not). normalize_data=True with
    kernel "relu" is the reference's `normalize_data=True` (before this option
    our relu kernel always did it: outputs move by ~1e-2 between the two).
  chunk_size: causal chunk length (default 64).
  (redraw, feature_seed are options of the NNX layer, models/random_features.py,
  which draws `features`; the layer does not pass them here.)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from efficient_transformers.attention import masks
from efficient_transformers.attention.linear import (align_causal,
                                                     causal_linear_attention)
from efficient_transformers.attention.shapes import check_qkv

KERNELS = ("softmax", "relu")


def haar_orthogonal(gaussian: jax.Array) -> jax.Array:
  """The Q of gaussian = Q R with diag(R) > 0: Haar-uniform when `gaussian`
  [d, d] has iid normal entries.

  Householder QR in plain XLA ops (a `fori_loop` of d rank-one updates,
  O(d^3)), not `jnp.linalg.qr`: jaxlib 0.10's CPU LAPACK kernels split a
  batch over XLA's intra-op thread pool and block a pool thread until it is
  done, so two such calls run side by side in one program (one per layer)
  can take every thread and wait on each other forever (seen here: the
  performer train step at 4K hung at 0% CPU on 2 cores, one run in two).
  Taking the signs from R's diagonal is what makes Q uniform; QR code that
  omits it biases the directions (the error to softmax then stalls as m grows).
  """
  d = gaussian.shape[-1]
  rows = jnp.arange(d)
  dot = functools.partial(jnp.dot, precision=jax.lax.Precision.HIGHEST)

  def reflect(j, carry):
    r, q = carry
    column = jnp.where(rows >= j, r[:, j], 0.0)
    alpha = -jnp.where(r[j, j] >= 0, 1.0, -1.0) * jnp.sqrt(dot(column, column))
    v = column - alpha * (rows == j)
    v_norm2 = dot(v, v)
    v = v * jnp.where(v_norm2 > 0, jax.lax.rsqrt(jnp.where(v_norm2 > 0, v_norm2, 1.0)), 0.0)
    return r - 2.0 * jnp.outer(v, dot(v, r)), q - 2.0 * jnp.outer(dot(q, v), v)

  r, q = jax.lax.fori_loop(0, d, reflect,
                           (gaussian.astype(jnp.float32), jnp.eye(d, dtype=jnp.float32)))
  return q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0)[None, :]


@functools.partial(jax.jit, static_argnames=("num_features", "head_dim", "scaling"))
def orthogonal_features(rng, num_features: int, head_dim: int, *,
                        scaling: int = 0) -> jax.Array:
  """float32 [num_features, head_dim]: blockwise-orthogonal Gaussian rows."""
  num_blocks = -(-num_features // head_dim)
  block_keys = jax.random.split(rng, num_blocks + 1)

  def block(key):
    return haar_orthogonal(jax.random.normal(key, (head_dim, head_dim))).T

  rows = jax.vmap(block)(block_keys[:-1]).reshape(-1, head_dim)[:num_features]
  if scaling == 0:
    norms = jnp.linalg.norm(
        jax.random.normal(block_keys[-1], (num_features, head_dim)), axis=1)
  elif scaling == 1:
    norms = jnp.full((num_features,), jnp.sqrt(float(head_dim)))
  else:
    raise ValueError(f"scaling must be 0 or 1, got {scaling!r}")
  return norms[:, None] * rows


def _project(x, features):
  """x [B, T, N, d] . features [m, d] or [N, m, d] -> [B, T, N, m]."""
  if features.ndim == 2:
    return jnp.einsum("btnd,md->btnm", x, features)
  return jnp.einsum("btnd,nmd->btnm", x, features)


def resolve_normalize_data(normalize_data, kernel: str) -> bool:
  """Whether q and k are scaled by head_dim^-1/4 before the features: the
  reference's default per kernel (True for softmax, False for relu) unless
  given."""
  if normalize_data is None:
    return kernel == "softmax"
  return bool(normalize_data)


def feature_maps(q, k, mask, *, features, kernel, causal, kernel_epsilon,
                 normalize_data=None):
  """(phi_q, phi_k, key_log_scale or None), float32; phi_k = 0 at padding."""
  head_dim = q.shape[-1]
  q, k = q.astype(jnp.float32), k.astype(jnp.float32)
  if resolve_normalize_data(normalize_data, kernel):
    normalizer = head_dim ** -0.25
    q, k = q * normalizer, k * normalizer
  real = (jnp.ones(k.shape[:2], bool) if mask is None else mask)[:, :, None]
  if kernel == "relu":
    if features is None:
      phi_q, phi_k = jax.nn.relu(q), jax.nn.relu(k)
    else:
      phi_q, phi_k = jax.nn.relu(_project(q, features)), jax.nn.relu(_project(k, features))
    phi_k = jnp.where(real[..., None], phi_k + kernel_epsilon, 0.0)
    return phi_q + kernel_epsilon, phi_k, None
  sg = jax.lax.stop_gradient
  dash_q = _project(q, features)
  phi_q = jnp.exp(dash_q - sg(dash_q.max(-1, keepdims=True)))
  log_k = _project(k, features) - 0.5 * jnp.sum(k * k, -1, keepdims=True)
  key_max = jnp.where(real, sg(log_k.max(-1)), masks.MASK_VALUE)  # [B, T, N]
  if causal:
    stabiliser, key_log_scale = key_max[..., None], key_max
  else:
    stabiliser, key_log_scale = key_max.max(1, keepdims=True)[..., None], None
  phi_k = jnp.exp(jnp.where(real[..., None], log_k - stabiliser, masks.MASK_VALUE))
  return phi_q, phi_k, key_log_scale


def resolve_features(features, rng, num_features: int, kernel: str, *,
                     heads: int, head_dim: int):
  """The float32 features to use (drawn from `rng` when not given), or None
  (relu kernel without features); checks the kernel and the shapes."""
  if kernel not in KERNELS:
    raise ValueError(f"unknown kernel {kernel!r}; valid: {', '.join(KERNELS)}")
  if features is None and rng is not None:
    features = orthogonal_features(rng, num_features, head_dim)
  if features is None and kernel == "softmax":
    raise ValueError("performer with kernel='softmax' needs `features` or `rng`")
  if features is not None:
    features = jnp.asarray(features, jnp.float32)
    if features.ndim not in (2, 3) or features.shape[-1] != head_dim or (
        features.ndim == 3 and features.shape[0] != heads):
      raise ValueError(
          f"features must be [m, head_dim] or [heads, m, head_dim] with"
          f" head_dim={head_dim}, heads={heads}; got {features.shape}")
  return features


def performer(q, k, v, *, mask=None, causal=False, features=None,
              num_features: int = 256, rng=None, kernel: str = "softmax",
              kernel_epsilon: float = 1e-3, normalize_data: bool | None = None,
              chunk_size: int = 64):
  """FAVOR+ attention, BTNH layout; see the module docstring."""
  check_qkv(q, k, v)
  features = resolve_features(features, rng, num_features, kernel,
                              heads=q.shape[2], head_dim=q.shape[-1])
  if mask is not None:
    masks.allowed_pairs(k.shape[0], q.shape[1], k.shape[1], mask=mask)  # checks
  return _performer(q, k, v, mask, features, causal=causal, kernel=kernel,
                    kernel_epsilon=kernel_epsilon,
                    normalize_data=resolve_normalize_data(normalize_data, kernel),
                    chunk_size=chunk_size)


@functools.partial(jax.jit, static_argnames=("causal", "kernel", "kernel_epsilon",
                                             "normalize_data", "chunk_size"))
def _performer(q, k, v, mask, features, *, causal, kernel, kernel_epsilon,
               normalize_data, chunk_size):
  phi_q, phi_k, key_log_scale = feature_maps(
      q, k, mask, features=features, kernel=kernel, causal=causal,
      kernel_epsilon=kernel_epsilon, normalize_data=normalize_data)
  v32 = v.astype(jnp.float32)
  if causal:
    phi_q, phi_k, v32, key_log_scale, offset = align_causal(
        phi_q, phi_k, v32, key_log_scale)
    num, den = causal_linear_attention(phi_q, phi_k, v32, chunk_size=chunk_size,
                                       key_log_scale=key_log_scale)
    num, den = num[:, offset:], den[:, offset:]
  else:
    kv_NxMxD = jnp.einsum("bknm,bknd->bnmd", phi_k, v32)
    num = jnp.einsum("bqnm,bnmd->bqnd", phi_q, kv_NxMxD)
    den = jnp.einsum("bqnm,bnm->bqn", phi_q, phi_k.sum(1))
  out = num / jnp.where(den > 0, den, 1.0)[..., None]
  return out.astype(q.dtype)


# ----------------------------------------------------------------------------
# Recurrent form, for decoding one token at a time.


def init_state(batch: int, heads: int, num_features: int, head_dim: int):
  """Empty state (S [B, N, m, d], z [B, N, m], running key maximum [B, N])."""
  return (jnp.zeros((batch, heads, num_features, head_dim), jnp.float32),
          jnp.zeros((batch, heads, num_features), jnp.float32),
          jnp.full((batch, heads), masks.MASK_VALUE, jnp.float32))


def recurrent_step(state, q_t, k_t, v_t, *, features, kernel="softmax",
                   kernel_epsilon: float = 1e-3, normalize_data=None,
                   key_mask=None):
  """One causal decoding step: q_t, k_t, v_t [B, N, d] -> (state, out_t).

  Equals row t of `performer(..., causal=True)` with the same features; the
  softmax kernel's state keeps the running key maximum (the causal
  stabiliser) and rescales S and z when it grows. key_mask: optional bool [B].
  """
  state_NxMxD, norm_NxM, max_N = state
  real = jnp.ones(k_t.shape[:1], bool) if key_mask is None else key_mask
  phi_q, phi_k, log_scale = feature_maps(
      q_t[:, None], k_t[:, None], real[:, None], features=features, kernel=kernel,
      causal=True, kernel_epsilon=kernel_epsilon, normalize_data=normalize_data)
  phi_q, phi_k = phi_q[:, 0], phi_k[:, 0]
  if log_scale is not None:
    new_max_N = jnp.maximum(max_N, log_scale[:, 0])
    decay = jnp.exp(max_N - new_max_N)
    phi_k = phi_k * jnp.exp(log_scale[:, 0] - new_max_N)[..., None]
    state_NxMxD, norm_NxM = state_NxMxD * decay[..., None, None], norm_NxM * decay[..., None]
    max_N = new_max_N
  state_NxMxD = state_NxMxD + phi_k[..., :, None] * v_t.astype(jnp.float32)[..., None, :]
  norm_NxM = norm_NxM + phi_k
  num = jnp.einsum("bnm,bnmd->bnd", phi_q, state_NxMxD)
  den = jnp.einsum("bnm,bnm->bn", phi_q, norm_NxM)
  out = num / jnp.where(den > 0, den, 1.0)[..., None]
  return (state_NxMxD, norm_NxM, max_N), out.astype(q_t.dtype)


# Incremental decoding (attention.DECODERS): the recurrent form above, with the
# same features as the parallel form.


def performer_init_decode_state(batch: int, heads: int, head_dim: int,
                                max_length: int, dtype=jnp.float32, *,
                                features=None, num_features: int = 256, rng=None,
                                kernel: str = "softmax",
                                kernel_epsilon: float = 1e-3,
                                normalize_data: bool | None = None,
                                chunk_size: int = 64):
  """`init_state` sized by the features: O(m * head_dim) whatever max_length."""
  del max_length, dtype, kernel_epsilon, normalize_data, chunk_size  # O(1) in length
  features = resolve_features(features, rng, num_features, kernel, heads=heads,
                              head_dim=head_dim)
  m = head_dim if features is None else features.shape[-2]
  return init_state(batch, heads, m, head_dim)


def performer_decode_step(state, q_t, k_t, v_t, *, key_mask=None, features=None,
                          num_features: int = 256, rng=None,
                          kernel: str = "softmax", kernel_epsilon: float = 1e-3,
                          normalize_data: bool | None = None,
                          chunk_size: int = 64):
  """`recurrent_step` as (out_t, state). Features drawn from `rng` are redrawn
  at every step (the same ones); pass `features` to draw them once."""
  del chunk_size
  features = resolve_features(features, rng, num_features, kernel,
                              heads=q_t.shape[1], head_dim=q_t.shape[-1])
  state, out = recurrent_step(state, q_t, k_t, v_t, features=features,
                              kernel=kernel, kernel_epsilon=kernel_epsilon,
                              normalize_data=normalize_data, key_mask=key_mask)
  return out, state

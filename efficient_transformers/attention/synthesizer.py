"""Synthesizer: attention weights synthesised without query-key dot products.

Paper: Tay et al. 2020, "Synthesizer: Rethinking Self-Attention in Transformer
  Models".
Family: learnable patterns / "synthetic" attention (Tay et al.'s survey).
Complexity: O(q_len * kv_len * d) time and O(q_len * kv_len) memory: quadratic
  by design (the paper's own listing), like dense attention.
Exact: not an approximation of dot-product attention but its own model. With
  `random_logits` = Q K^T / sqrt(d) frozen for given inputs, synthesizer_random
  equals dot-product attention (tested).
Causal: yes (the causal mask is applied to the synthetic logits before the
  softmax). Padding: padded keys are masked; a row with no visible key returns
  zeros.

synthesizer_dense: per-token logits B_i = W2 relu(W1 x_i + b1) + b2 over the key
  positions. The first layer W1 x + b1 is the per-head query projection (the
  layer's q, as in LRA's DenseGeneral(heads, head_dim)), so the options are the
  second layer:
    w2: [heads, head_dim, >= kv_len], b2: optional [heads, >= kv_len]
    (sliced to kv_len, so parameters sized for a maximum length work);
  factorised dense (paper section 3.3): logits = repeat(relu(q) w2_a, b) *
  tile(relu(q) w2_b, a), i.e. the outer product of two short projections,
  flattened, with a * b >= kv_len (sliced):
    w2_a: [heads, head_dim, a], w2_b: [heads, head_dim, b].
  The paper gives the two factors separate first layers; here they share q.
synthesizer_random: input-independent logits, one matrix per head:
    random_logits: [heads, >= q_len, >= kv_len] (sliced), or factorised
    factor_q: [heads, >= q_len, r], factor_k: [heads, >= kv_len, r]
    (logits = factor_q factor_k^T).
  Whether they are trained or fixed is the NNX layer's choice
  (models/synthesizer_weights.py).
The synthetic logits are not scaled (the paper has no 1/sqrt(d)); keys are not
used at all. `factor_sizes`, `num_factors` and `trainable` are options of the
NNX layer, which the layer does not pass here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from efficient_transformers.attention import masks
from efficient_transformers.attention.shapes import check_qkv


def synthetic_attention(logits_BxNxQxK, v, *, mask, causal, dtype):
  """softmax over masked synthetic logits [B or 1, N, Q, K], then values."""
  batch, kv_len = v.shape[0], v.shape[1]
  q_len = logits_BxNxQxK.shape[2]
  allowed = masks.allowed_pairs(batch, q_len, kv_len, mask=mask, causal=causal)
  logits_BxNxQxK = logits_BxNxQxK.astype(jnp.float32)
  if allowed is not None:
    logits_BxNxQxK = jnp.where(allowed, logits_BxNxQxK, masks.MASK_VALUE)
  weights = jax.nn.softmax(logits_BxNxQxK, axis=-1)
  if allowed is not None:
    weights = jnp.where(allowed, weights, 0.0)  # rows with no visible key
  weights = jnp.broadcast_to(weights, (batch,) + weights.shape[1:])
  out = jnp.einsum("bnqk,bknh->bqnh", weights, v.astype(jnp.float32))
  return out.astype(dtype)


def _at_least(x, axis, size, name):
  if x.shape[axis] < size:
    raise ValueError(f"{name} has {x.shape[axis]} entries on axis {axis}, the"
                     f" sequence needs {size}; got shape {x.shape}")
  return jax.lax.slice_in_dim(x, 0, size, axis=axis)


def synthesizer_dense(q, k, v, *, mask=None, causal=False, w2=None, b2=None,
                      w2_a=None, w2_b=None):
  """Dense (or factorised dense) Synthesizer, BTNH layout; see the module doc."""
  check_qkv(q, k, v)
  kv_len = k.shape[1]
  hidden = jax.nn.relu(q.astype(jnp.float32))
  if w2 is not None:
    w2 = _at_least(jnp.asarray(w2, jnp.float32), 2, kv_len, "w2")
    logits = jnp.einsum("bqnh,nhk->bnqk", hidden, w2)
    if b2 is not None:
      logits = logits + _at_least(jnp.asarray(b2, jnp.float32), 1, kv_len,
                                  "b2")[None, :, None, :]
  elif w2_a is not None and w2_b is not None:
    a = jnp.einsum("bqnh,nha->bnqa", hidden, jnp.asarray(w2_a, jnp.float32))
    b = jnp.einsum("bqnh,nhc->bnqc", hidden, jnp.asarray(w2_b, jnp.float32))
    logits = (a[..., :, None] * b[..., None, :]).reshape(a.shape[:3] + (-1,))
    logits = _at_least(logits, 3, kv_len, "w2_a x w2_b (a * b)")
  else:
    raise ValueError("synthesizer_dense needs `w2` or both `w2_a` and `w2_b`")
  return synthetic_attention(logits, v, mask=mask, causal=causal, dtype=q.dtype)


def synthesizer_random(q, k, v, *, mask=None, causal=False, random_logits=None,
                       factor_q=None, factor_k=None):
  """Random (or factorised random) Synthesizer, BTNH layout; see the module doc."""
  check_qkv(q, k, v)
  q_len, kv_len = q.shape[1], k.shape[1]
  if random_logits is not None:
    logits = jnp.asarray(random_logits, jnp.float32)
    logits = _at_least(_at_least(logits, 1, q_len, "random_logits"), 2, kv_len,
                       "random_logits")
  elif factor_q is not None and factor_k is not None:
    fq = _at_least(jnp.asarray(factor_q, jnp.float32), 1, q_len, "factor_q")
    fk = _at_least(jnp.asarray(factor_k, jnp.float32), 1, kv_len, "factor_k")
    logits = jnp.einsum("nqr,nkr->nqk", fq, fk)
  else:
    raise ValueError(
        "synthesizer_random needs `random_logits` or both `factor_q` and `factor_k`")
  if logits.shape[0] != q.shape[2]:
    raise ValueError(f"synthetic logits have {logits.shape[0]} heads, q has"
                     f" {q.shape[2]}")
  return synthetic_attention(logits[None], v, mask=mask, causal=causal,
                             dtype=q.dtype)

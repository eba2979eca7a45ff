"""`isab` (Set Transformer's induced set attention) in the shared contract, plus
its known answers: inducing points equal to the keys, one inducing point,
padding, causal raises, inducing-point shapes."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.attention.attention_contract import AttentionContract, random_padding, random_qkv
from efficient_transformers import attention

# The base's limit test runs on the first shape with random_qkv(4, ...); there
# kv_len (8) <= head_dim (8), so every [kv_len, head_dim] key matrix is
# invertible and I = c K^{-T} gives I K^T = c * identity.
_LIMIT_SHAPE = (2, 8, 8, 2, 8)
_SHARPNESS = 300.0


def separating_inducing(k, sharpness=_SHARPNESS):
  """[batch, kv_len, heads, head_dim]: inducing point j selects key j only.

  Needs kv_len == head_dim (an invertible key matrix per batch and head)."""
  k = np.asarray(k, np.float64)
  inv = np.linalg.inv(np.transpose(k, (0, 2, 1, 3)))  # [B, N, S, H] -> K^{-1}
  return jnp.asarray(sharpness * np.transpose(inv, (0, 3, 1, 2)), jnp.float32)


def softmax(x, axis=-1):
  x = x - x.max(axis=axis, keepdims=True)
  e = np.exp(x)
  return e / e.sum(axis=axis, keepdims=True)


# Jitted once per shape: much cheaper on CPU than op-by-op eager execution.
isab = jax.jit(attention.isab)


def random_inducing(seed, m, heads, head_dim):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.normal(size=(m, heads, head_dim)), jnp.float32)


class TestIsab(AttentionContract):
  """Approximate; its limit (m = kv_len inducing points, each sharply selecting
  one key) is dense attention; no causal mode."""

  name = "isab"
  exact = False
  supports_causal = False
  shapes = [_LIMIT_SHAPE, (1, 37, 37, 3, 4)]
  limit_options = {"inducing": separating_inducing(random_qkv(4, *_LIMIT_SHAPE)[1])}
  limit_tolerance = 1e-4

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    return {"inducing": random_inducing(0, 4, heads, head_dim)}


def test_inducing_points_equal_to_keys_closed_form():
  """With I = K (each example's own keys as its inducing points, m = kv_len):

  step 1: A = softmax(K K^T / sqrt(d)): a row-stochastic matrix built from
          the SYMMETRIC Gram matrix of the keys;
  step 2: out = softmax(Q (A K)^T / sqrt(d)) (A V).
  So ISAB is dense attention over smoothed keys A K and smoothed values A V:
  each key/value is replaced by a softmax(similarity)-weighted average of
  all keys/values. With padding, masked columns of A are dropped (padded keys
  smooth nothing) while their rows only feed the second step's extra keys.
  Checked here against that formula in float64 numpy.
  """
  q, k, v = random_qkv(11, 2, 6, 9, 2, 4)
  mask = random_padding(11, 2, 9)
  out = np.asarray(isab(q, k, v, mask=mask, inducing=k))
  q, k, v, mask = (np.asarray(x, np.float64) for x in (q, k, v, mask))
  d = q.shape[-1]
  for b in range(2):
    real = mask[b].astype(bool)
    for h in range(2):
      kb, vb, qb = k[b, :, h], v[b, :, h], q[b, :, h]
      gram = kb @ kb.T / math.sqrt(d)
      a = softmax(np.where(real[None, :], gram, -np.inf))   # [m = 9, 9]
      expected = softmax(qb @ (a @ kb).T / math.sqrt(d)) @ (a @ vb)
      np.testing.assert_allclose(out[b, :, h], expected, rtol=1e-5, atol=1e-5)


def test_orthogonal_keys_as_inducing_points_give_dense():
  """Keys c * (orthonormal rows) and I = K: K K^T = c^2 * identity, so A -> the
  identity as c grows and ISAB -> dense attention."""
  rng = np.random.default_rng(3)
  basis = np.linalg.qr(rng.normal(size=(8, 8)))[0]          # orthonormal rows
  k = jnp.asarray(20.0 * basis[None, :6, None, :], jnp.float32)  # [1, 6, 1, 8]
  q = jnp.asarray(rng.normal(size=(1, 5, 1, 8)) * 0.05, jnp.float32)
  v = jnp.asarray(rng.normal(size=(1, 6, 1, 8)), jnp.float32)
  out = isab(q, k, v, inducing=k)
  np.testing.assert_allclose(out, attention.dense(q, k, v), rtol=1e-5, atol=1e-5)


def test_one_inducing_point_is_a_weighted_mean_for_every_query():
  """m = 1: the summary is one row, so softmax over it is 1 and every query
  returns sum_j softmax_j(i . k_j / sqrt(d)) v_j over the real keys."""
  q, k, v = random_qkv(5, 2, 7, 10, 3, 4)
  mask = random_padding(5, 2, 10)
  inducing = random_inducing(6, 1, 3, 4)
  out = np.asarray(isab(q, k, v, mask=mask, inducing=inducing))
  logits = np.einsum("nh,bsnh->bns", np.asarray(inducing[0]), np.asarray(k)) / 2.0
  logits = np.where(np.asarray(mask)[:, None, :], logits, -np.inf)
  expected = np.einsum("bns,bsnh->bnh", softmax(logits), np.asarray(v))
  np.testing.assert_allclose(out, np.broadcast_to(expected[:, None], out.shape),
                             rtol=1e-5, atol=1e-5)


def test_padded_keys_do_not_reach_the_summary_and_empty_sets_give_zeros():
  q, k, v = random_qkv(7, 2, 5, 6, 2, 4)
  mask = jnp.array([[True] * 3 + [False] * 3, [False] * 6])
  inducing = random_inducing(8, 3, 2, 4)
  out = isab(q, k, v, mask=mask, inducing=inducing)
  shorter = isab(q[:1], k[:1, :3], v[:1, :3], inducing=inducing)
  np.testing.assert_allclose(out[:1], shorter, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(out[1]), 0.0)
  grads = jax.grad(lambda k, v: isab(q, k, v, mask=mask,
                                               inducing=inducing).sum(),
                   argnums=(0, 1))(k, v)
  for g in grads:
    np.testing.assert_array_equal(np.asarray(g)[~np.asarray(mask)], 0.0)


def test_gradients_reach_inducing_points():
  q, k, v = random_qkv(9, 2, 6, 6, 2, 4)
  inducing = random_inducing(10, 3, 2, 4)
  grad = jax.grad(lambda i: jnp.sum(isab(q, k, v, inducing=i) ** 2))(inducing)
  assert np.all(np.abs(np.asarray(grad)).sum(axis=(1, 2)) > 0)


def test_per_example_inducing_points():
  q, k, v = random_qkv(12, 2, 5, 7, 2, 4)
  inducing = jnp.stack([random_inducing(13, 3, 2, 4), random_inducing(14, 3, 2, 4)])
  out = isab(q, k, v, inducing=inducing)
  for b in range(2):
    np.testing.assert_allclose(
        out[b:b + 1], isab(q[b:b + 1], k[b:b + 1], v[b:b + 1],
                                     inducing=inducing[b]), rtol=1e-6, atol=1e-6)


def test_causal_and_bad_shapes_raise():
  q, k, v = random_qkv(0, 1, 4, 4, 2, 4)
  with pytest.raises(ValueError, match="cannot be causal"):
    attention.isab(q, k, v, causal=True, inducing=random_inducing(0, 2, 2, 4))
  with pytest.raises(ValueError, match="inducing must be"):
    attention.isab(q, k, v, inducing=jnp.ones((2, 3, 4)))

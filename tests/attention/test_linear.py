"""`linear` (Linear Transformer) in the shared contract, and its three exact forms:
masked quadratic == chunked prefix sums == recurrent steps."""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.attention.attention_contract import (AttentionContract, check_matches_reference,
                                compiled_temp_bytes, random_padding, random_qkv)
from efficient_transformers import attention
from efficient_transformers.attention import masks

# The package binds `linear` to the function; this is the module.
linear_lib = importlib.import_module("efficient_transformers.attention.linear")


def quadratic_linear(q, k, v, *, mask=None, causal=False, eps=1e-6,
                     feature_map="elu_plus_one", **unused):
  """phi(Q) phi(K)^T masked (padding, causal), normalised, times V."""
  phi = linear_lib.feature_map_fn(feature_map)
  w = jnp.einsum("bqnm,bknm->bnqk", phi(q), phi(k))
  allowed = masks.allowed_pairs(q.shape[0], q.shape[1], k.shape[1], mask=mask,
                                causal=causal)
  if allowed is not None:
    w = jnp.where(allowed, w, 0.0)
  out = jnp.einsum("bnqk,bknh->bqnh", w, v)
  return out / (jnp.moveaxis(w.sum(-1), 1, 2)[..., None] + eps)


class TestLinear(AttentionContract):
  name = "linear"
  options = {"chunk_size": 5}  # several chunks and a ragged last one
  exact = False
  limit_options = {}  # not an approximation of softmax: see below

  def test_converges_to_dense(self):
    """Not softmax: instead, equals its own quadratic form (outputs, grads)."""
    for shape in self._shapes():
      q, k, v = random_qkv(4, *shape)
      for causal in (False, True):
        for mask in (None, random_padding(4, shape[0], shape[2])):
          reference = functools.partial(
              quadratic_linear, feature_map=self.options.get("feature_map", "elu_plus_one"))
          check_matches_reference(self.bound(shape, causal), reference,
                                  q, k, v, mask, causal, 4, 1e-5, 1e-5)


def _recurrent(q, k, v, mask=None):
  """Token-by-token decoding with `recurrent_step` (aligned lengths)."""
  batch, _, heads, head_dim = q.shape
  state = linear_lib.init_state(batch, heads, head_dim, head_dim)
  real = jnp.ones(k.shape[:2], bool) if mask is None else mask

  def step(state, x):
    q_t, k_t, v_t, m_t = x
    return linear_lib.recurrent_step(state, q_t, k_t, v_t, key_mask=m_t)

  xs = tuple(jnp.moveaxis(a, 1, 0) for a in (q, k, v, real))
  _, out = jax.lax.scan(step, state, xs)
  return jnp.moveaxis(out, 0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("chunk_size", [1, 4, 64])
def test_prefix_sums_equal_quadratic_and_recurrent(chunk_size):
  """Outputs and gradients of the three causal forms agree (with padding)."""
  q, k, v = random_qkv(7, 2, 19, 19, 2, 8)
  mask = random_padding(7, 2, 19)
  cot = jnp.asarray(np.random.default_rng(0).normal(size=q.shape), jnp.float32)
  forms = {
      "prefix": functools.partial(attention.linear, causal=True, mask=mask,
                                  chunk_size=chunk_size),
      "quadratic": functools.partial(quadratic_linear, causal=True, mask=mask),
      "recurrent": functools.partial(_recurrent, mask=mask),
  }
  results = {}
  for name, fn in forms.items():
    out, pullback = jax.vjp(fn, q, k, v)
    results[name] = (out,) + pullback(cot)
  for name in ("quadratic", "recurrent"):
    for a, b in zip(results["prefix"], results[name]):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)


def test_custom_feature_map_and_errors():
  q, k, v = random_qkv(0, 1, 6, 6, 1, 4)
  square = lambda x: x * x
  np.testing.assert_allclose(
      attention.linear(q, k, v, feature_map=square),
      quadratic_linear(q, k, v, feature_map=square), rtol=1e-5, atol=1e-6)
  for causal in (False, True):
    np.testing.assert_allclose(
        attention.linear(q, k, v, causal=causal, feature_map="relu", chunk_size=4),
        quadratic_linear(q, k, v, causal=causal, feature_map="relu"),
        rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="unknown feature_map 'nope'"):
    attention.linear(q, k, v, feature_map="nope")


@pytest.mark.parametrize("causal", [False, True])
def test_memory_is_linear(causal):
  f = functools.partial(attention.linear, causal=causal)
  small, large = (compiled_temp_bytes(f, n, heads=2, head_dim=32) for n in (512, 2048))
  assert large <= 4.5 * small, (small, large)

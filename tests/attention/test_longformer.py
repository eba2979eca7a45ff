"""`longformer` (Beltagy et al. 2020) in the shared contract, plus global projections."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.attention.attention_contract import AttentionContract, random_padding, random_qkv
from efficient_transformers import attention


class TestLongformer(AttentionContract):
  name = "longformer"
  options = {"window": 3, "num_global": 2}
  cross_lengths = False
  supports_causal = False


class TestLongformerDilated(TestLongformer):
  options = {"window": 2, "dilation": 3, "num_global": 1}


class TestLongformerNoGlobal(TestLongformer):
  options = {"window": 2, "num_global": 0}


def test_pattern_is_band_plus_global_rows_and_columns():
  pairs = attention.pattern("longformer", 8, 8, window=1, num_global=1)[0]
  np.testing.assert_array_equal(pairs[0], True)
  np.testing.assert_array_equal(pairs[:, 0], True)
  np.testing.assert_array_equal(np.flatnonzero(pairs[5]), [0, 4, 5, 6])


def test_full_window_is_dense():
  q, k, v = random_qkv(0, 2, 13, 13, 2, 4)
  np.testing.assert_allclose(
      attention.longformer(q, k, v, window=12, num_global=3),
      attention.dense(q, k, v), rtol=1e-5, atol=1e-5)


def test_global_qkv():
  """Global rows use the global projections; the others do not; padding holds."""
  q, k, v = random_qkv(1, 2, 11, 11, 2, 4)
  q_g, k_g, v_g = random_qkv(2, 2, 11, 11, 2, 4)
  mask = random_padding(1, 2, 11)
  g, options = 2, dict(window=2, num_global=2, mask=mask)
  out = attention.longformer(q, k, v, global_qkv=(q_g[:, :g], k_g, v_g), **options)
  plain = attention.longformer(q, k, v, **options)
  np.testing.assert_allclose(out[:, g:], plain[:, g:], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(
      out[:, :g], attention.dense(q_g[:, :g], k_g, v_g, mask=mask), rtol=1e-5, atol=1e-5)
  same = attention.longformer(q, k, v, global_qkv=(q[:, :g], k, v), **options)
  np.testing.assert_allclose(same, plain, rtol=1e-6, atol=1e-6)
  grads = jax.grad(lambda *a: attention.longformer(q, k, v, global_qkv=a, **options).sum(),
                   argnums=(0, 1, 2))(q_g[:, :g], k_g, v_g)
  assert all(bool(jnp.all(jnp.isfinite(x))) and float(jnp.abs(x).max()) > 0 for x in grads)


def test_options_are_validated():
  q, k, v = random_qkv(0, 1, 8, 8, 1, 4)
  with pytest.raises(ValueError, match="sliding_window"):
    attention.longformer(q, k, v, causal=True, window=2)
  with pytest.raises(ValueError, match="num_global"):
    attention.longformer(q, k, v, window=2, num_global=-1)
  with pytest.raises(ValueError, match="global_qkv"):
    attention.longformer(q, k, v, window=2, num_global=2, global_qkv=(q, k, v))

"""`nystromformer` in the shared contract: one landmark per token is dense
attention; ragged segments; the iterative pseudo-inverse; causal raises."""

import functools

import jax.numpy as jnp
import numpy as np
import pytest

from tests.attention.attention_contract import AttentionContract, compiled_temp_bytes, random_qkv
from efficient_transformers import attention
from efficient_transformers.attention.nystromformer import iterative_pinv


class TestNystromformer(AttentionContract):
  name = "nystromformer"
  options = {"num_landmarks": 4}  # segments of 4 and 10 (ragged) tokens
  exact = False
  supports_causal = False
  # One landmark per token (the first shape has 16) and a converged pinv.
  limit_options = {"num_landmarks": 16, "pinv_iterations": 40}
  limit_tolerance = 1e-3


class TestNystromformerConv(TestNystromformer):
  """With the depthwise convolution skip on the values (self-attention only)."""
  cross_lengths = False

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    kernel = np.random.default_rng(0).normal(size=(heads, 5)) / 5
    return {"num_landmarks": 4, "conv_kernel": jnp.asarray(kernel, jnp.float32)}


def test_iterative_pinv_converges():
  a = jnp.asarray(np.random.default_rng(0).random((2, 6, 6)), jnp.float32)
  a = a / a.sum(-1, keepdims=True)  # row-stochastic, like the softmax kernel
  np.testing.assert_allclose(iterative_pinv(a, 30), np.linalg.pinv(a), atol=1e-3)


def test_more_landmarks_than_tokens():
  q, k, v = random_qkv(0, 1, 5, 5, 1, 8)
  out = attention.nystromformer(q, k, v, num_landmarks=8, pinv_iterations=40)
  np.testing.assert_allclose(out, attention.dense(q, k, v), atol=1e-3)


def test_causal_and_conv_errors():
  q, k, v = random_qkv(0, 1, 8, 8, 2, 4)
  with pytest.raises(ValueError, match="cannot be causal"):
    attention.nystromformer(q, k, v, causal=True)
  with pytest.raises(ValueError, match="odd"):
    attention.nystromformer(q, k, v, conv_kernel=jnp.ones((2, 4)))


def test_memory_is_linear():
  f = functools.partial(attention.nystromformer, num_landmarks=32)
  small, large = (compiled_temp_bytes(f, n, heads=2, head_dim=32) for n in (512, 2048))
  assert large <= 4.5 * small, (small, large)

"""`linformer` in the shared contract: identity projections with k = kv_len are
dense attention; padded keys contribute nothing; causal raises."""

import functools

import jax.numpy as jnp
import numpy as np
import pytest

from attention_contract import AttentionContract, compiled_temp_bytes, random_qkv
from efficient_transformers import attention


def random_projection(seed, kv_len, low_rank, heads=None):
  shape = (kv_len, low_rank) if heads is None else (heads, kv_len, low_rank)
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape) / np.sqrt(kv_len),
                     jnp.float32)


class TestLinformer(AttentionContract):
  name = "linformer"
  exact = False
  supports_causal = False
  # The base's limit runs on its first shape (kv_len 16): k = n, E = F = I.
  limit_options = {"proj_k": jnp.eye(16), "proj_v": jnp.eye(16)}
  limit_tolerance = 1e-5

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    return {"proj_k": random_projection(0, kv_len, 4),
            "proj_v": random_projection(1, kv_len, 4)}


class TestLinformerPerHead(TestLinformer):
  """No headwise sharing: one projection per head; key-value sharing."""

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    proj = random_projection(2, kv_len, 5, heads)
    return {"proj_k": proj, "proj_v": proj}


def test_wrong_projection_shape_raises():
  q, k, v = random_qkv(0, 1, 8, 8, 2, 4)
  with pytest.raises(ValueError, match="proj_k must be"):
    attention.linformer(q, k, v, proj_k=jnp.ones((9, 2)), proj_v=jnp.ones((8, 2)))


def test_causal_raises():
  q, k, v = random_qkv(0, 1, 8, 8, 2, 4)
  with pytest.raises(ValueError, match="cannot be causal"):
    attention.linformer(q, k, v, causal=True, proj_k=jnp.eye(8), proj_v=jnp.eye(8))


def test_memory_is_linear():
  def at(n):
    proj = jnp.ones((n, 32)) / n
    return compiled_temp_bytes(
        functools.partial(attention.linformer, proj_k=proj, proj_v=proj), n,
        heads=2, head_dim=32)
  small, large = at(512), at(2048)
  assert large <= 4.5 * small, (small, large)

"""`linformer` in the shared contract: identity projections with k = kv_len are
dense attention, with or without key padding (against float64); padded keys
contribute nothing; projected keys without support on real tokens are left
out, and dense projections are unchanged bit for bit; causal raises."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.attention.attention_contract import (AttentionContract, compiled_temp_bytes,
                                random_padding, random_qkv)
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


def dense_float64(q, k, v, mask):
  """softmax(q k^T / sqrt(d)) v over the real keys, float64 (x64 on)."""
  logits = jnp.einsum("bqnh,bknh->bnqk", q, k) / math.sqrt(q.shape[-1])
  logits = jnp.where(mask[:, None, None, :], logits, -jnp.inf)
  return jnp.einsum("bnqk,bknh->bqnh", jax.nn.softmax(logits, axis=-1), v)


@pytest.mark.parametrize("shape", [(2, 16, 16, 2, 8), (3, 12, 20, 2, 4)])
def test_identity_projections_with_padding_equal_dense(shape):
  """k = kv_len, E = F = I: the projected rows of padded keys have no support
  on real tokens and are left out, so Linformer is dense attention with the
  same padding (outputs and gradients, against float64). Before, those rows
  kept exp(0) of softmax mass (relative error 0.26-0.28 here). Measured max
  abs error: 2.2e-7 (outputs), 3.0e-7 (gradients, |grad| up to 2.7)."""
  batch, q_len, kv_len = shape[:3]
  q, k, v = random_qkv(3, *shape)
  mask = random_padding(3, batch, kv_len)
  cot = np.random.default_rng(0).normal(size=q.shape)
  eye = jnp.eye(kv_len)
  fn = functools.partial(attention.linformer, mask=mask, proj_k=eye, proj_v=eye)
  out, pull = jax.vjp(fn, q, k, v)
  grads = pull(jnp.asarray(cot, jnp.float32))
  with jax.enable_x64(True):
    ref_out, ref_pull = jax.vjp(
        lambda q, k, v: dense_float64(q, k, v, jnp.asarray(mask)),
        *(jnp.asarray(np.asarray(x), jnp.float64) for x in (q, k, v)))
    ref_grads = [np.asarray(g) for g in ref_pull(jnp.asarray(cot, jnp.float64))]
    ref_out = np.asarray(ref_out)
  np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
  for name, a, b in zip("qkv", grads, ref_grads):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"d{name}")


def linformer_without_support_mask(q, k, v, mask, proj_k, proj_v):
  """The formula before projected rows were masked: zero the padded keys and
  values, project, softmax over every projected row."""
  real = mask[:, :, None, None]
  k, v = jnp.where(real, k, 0.0), jnp.where(real, v, 0.0)
  project = lambda x, p: (jnp.einsum("btnh,tr->brnh", x, p) if p.ndim == 2
                          else jnp.einsum("btnh,ntr->brnh", x, p))
  logits = jnp.einsum("bqnh,brnh->bnqr", q, project(k, proj_k)) / math.sqrt(q.shape[-1])
  return jnp.einsum("bnqr,brnh->bqnh", jax.nn.softmax(logits, axis=-1),
                    project(v, proj_v))


@pytest.mark.parametrize("per_head", [False, True])
def test_dense_projections_unchanged_bit_for_bit(per_head):
  """Every projected row has support on the real tokens (random or learned
  projections): the outputs and gradients are those of the formula without
  the support mask, bit for bit."""
  q, k, v = random_qkv(4, 2, 16, 16, 2, 8)
  mask = random_padding(4, 2, 16)
  heads = 2 if per_head else None
  proj_k, proj_v = random_projection(5, 16, 6, heads), random_projection(6, 16, 6, heads)
  cot = jnp.asarray(np.random.default_rng(1).normal(size=q.shape), jnp.float32)
  new = jax.vjp(functools.partial(attention.linformer, mask=mask, proj_k=proj_k,
                                  proj_v=proj_v), q, k, v)
  old = jax.vjp(lambda q, k, v: linformer_without_support_mask(
      q, k, v, mask, proj_k, proj_v), q, k, v)
  np.testing.assert_array_equal(new[0], old[0])
  for a, b in zip(new[1](cot), old[1](cot)):
    np.testing.assert_array_equal(a, b)


def test_rows_drawing_only_on_padding_are_left_out():
  """A projected row that weighs only padded positions (or nothing) equals
  not having that row at all; per head when the projection is per head."""
  q, k, v = random_qkv(6, 1, 10, 10, 2, 4)
  mask = jnp.arange(10)[None] < 7
  dense_part = random_projection(7, 10, 3, heads=2)
  padding_only = jnp.zeros((2, 10, 2)).at[:, 7:, 0].set(1.0)  # row 0: padding only
  padding_only = padding_only.at[1, 7:, 1].set(1.0).at[0, 2, 1].set(1.0)
  # head 0: row 1 draws on position 2 (kept); head 1: padding only (left out)
  proj = jnp.concatenate([dense_part, padding_only], axis=-1)
  out = attention.linformer(q, k, v, mask=mask, proj_k=proj, proj_v=proj)
  for head, keep in ((0, [0, 1, 2, 4]), (1, [0, 1, 2])):
    p = proj[head][:, jnp.asarray(keep)]
    ref = attention.linformer(q[:, :, head:head + 1], k[:, :, head:head + 1],
                              v[:, :, head:head + 1], mask=mask, proj_k=p, proj_v=p)
    np.testing.assert_allclose(out[:, :, head:head + 1], ref, rtol=1e-6, atol=1e-6)
  ones = jnp.ones((10, 4))
  no_real_key = attention.linformer(q, k, v, mask=jnp.zeros((1, 10), bool),
                                    proj_k=ones, proj_v=ones)
  np.testing.assert_array_equal(np.asarray(no_real_key), 0.0)

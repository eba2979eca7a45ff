"""`reformer` (LSH attention) in the shared contract; its exact limit (one
bucket, one chunk) against dense shared-QK attention with the self-mask rule;
rng behaviour; self-mask, padding and fully masked rows."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_contract import (AttentionContract, check_causal_gradients,
                                check_matches_reference, random_padding,
                                random_qkv)
from efficient_transformers import attention
from efficient_transformers.attention import masks
from efficient_transformers.attention.reformer import SELF_VALUE, lsh_buckets


@functools.partial(jax.jit, static_argnames="causal")
def dense_shared_qk(q, k, v, *, mask=None, causal=False):
  """Quadratic reference: softmax(q . k^ / sqrt(d)) v over unit keys k^, where
  a query sees its own key only when no other key is allowed."""
  k_hat = k / jnp.linalg.norm(k, axis=-1, keepdims=True)
  logits = jnp.einsum("bqnh,bknh->bnqk", q, k_hat) / np.sqrt(q.shape[-1])
  batch, length = q.shape[:2]
  real = jnp.ones((batch, length), bool) if mask is None else mask
  real = real[:, None, None, :]
  eye = jnp.eye(length, dtype=bool)
  allowed = real & ~eye
  if causal:
    allowed &= jnp.asarray(masks.causal_pairs(length, length))
  self_ok = real & eye
  logits = jnp.where(allowed, logits, jnp.where(self_ok, SELF_VALUE, masks.MASK_VALUE))
  attendable = allowed | self_ok
  weights = jnp.where(attendable, jax.nn.softmax(logits, axis=-1), 0.0)
  return jnp.einsum("bnqk,bknh->bqnh", weights, v)


class TestReformer(AttentionContract):
  name = "reformer"
  options = {"num_hashes": 2, "num_buckets": 4, "chunk_size": 4,
             "rng": jax.random.key(0)}
  exact = False
  cross_lengths = False  # queries and keys share the sort
  limit_options = {"num_buckets": 1, "chunk_size": 64}
  # One shape (each new shape recompiles): 37 is not a multiple of chunk_size.
  shapes = [(2, 37, 37, 2, 4)]

  def test_converges_to_dense(self):
    """One bucket and one chunk spanning the sequence: exactly dense shared-QK
    attention with the self-mask rule (outputs and gradients), for one and
    several rounds, with and without padding and causal masking."""
    shape = self._shapes()[0]
    cases = [(shape, 1, False, False), (shape, 3, True, True)]
    for shape, num_hashes, causal, padded in cases:
      q, k, v = random_qkv(4, *shape)
      mask = random_padding(4, shape[0], shape[2]) if padded else None
      fn = self.bound(shape, options=dict(self.limit_options, num_hashes=num_hashes))
      check_matches_reference(fn, dense_shared_qk, q, k, v, mask, causal, 4,
                              2e-5, 2e-5)

  def test_one_bucket_many_chunks_is_local_in_sorted_order(self):
    """One bucket: the sort is the identity, so chunks are contiguous blocks
    attending to themselves and the previous block (with wrap-around)."""
    q, k, v = random_qkv(5, 1, 12, 12, 1, 4)
    out = attention.get("reformer")(q, k, v, num_buckets=1, chunk_size=4)
    block = np.arange(12) // 4
    pairs = (block[:, None] == block[None]) | (block[:, None] == (block[None] + 1) % 3)
    k_hat = k / jnp.linalg.norm(k, axis=-1, keepdims=True)
    logits = jnp.einsum("bqnh,bknh->bnqk", q, k_hat) / 2.0
    logits = jnp.where(pairs & ~np.eye(12, dtype=bool), logits, masks.MASK_VALUE)
    ref = jnp.einsum("bnqk,bknh->bqnh", jax.nn.softmax(logits, -1), v)
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=2e-5)

  def test_same_rng_same_output_different_rng_different_buckets(self):
    q, k, v = random_qkv(6, 1, 32, 32, 2, 8)
    fn = functools.partial(attention.get("reformer"), num_hashes=2, num_buckets=8,
                           chunk_size=8)
    a = fn(q, k, v, rng=jax.random.key(1))
    np.testing.assert_array_equal(a, fn(q, k, v, rng=jax.random.key(1)))
    np.testing.assert_array_equal(a, fn(q, k, v, rng=1))  # int seed = key(seed)
    assert not np.allclose(a, fn(q, k, v, rng=jax.random.key(2)))
    k_bnth = jnp.swapaxes(k, 1, 2)
    b1 = lsh_buckets(k_bnth, jax.random.key(1), 2, 8)
    b2 = lsh_buckets(k_bnth, jax.random.key(2), 2, 8)
    assert b1.shape == (1, 2, 2, 32) and int(b1.min()) >= 0 and int(b1.max()) < 8
    assert np.mean(np.asarray(b1) != np.asarray(b2)) > 0.3
    # The hash of a vector ignores its length: h(a x) = h(x) for a > 0.
    np.testing.assert_array_equal(b1, lsh_buckets(3.5 * k_bnth, jax.random.key(1), 2, 8))

  def test_needs_rng_and_valid_buckets(self):
    q, k, v = random_qkv(7, 1, 16, 16, 1, 4)
    fn = attention.get("reformer")
    with pytest.raises(ValueError, match="rng"):
      fn(q, k, v, num_buckets=4, chunk_size=4)
    with pytest.raises(ValueError, match="even"):
      fn(q, k, v, num_buckets=3, chunk_size=4, rng=0)
    with pytest.raises(ValueError, match="self-attention"):
      fn(q, k[:, :8], v[:, :8], rng=0)

  def test_self_only_when_nothing_else(self):
    """Causal row 0 sees only itself: its output is its own value. A query
    whose only real key is itself returns that value; every other query never
    attends to itself."""
    q, k, v = random_qkv(8, 1, 16, 16, 2, 4)
    fn = functools.partial(attention.get("reformer"), num_buckets=4, chunk_size=4,
                           num_hashes=2, rng=3)
    np.testing.assert_allclose(fn(q, k, v, causal=True)[:, 0], v[:, 0], rtol=1e-6)
    only_first = jnp.zeros((1, 16), bool).at[0, 0].set(True)
    out = fn(q, k, v, mask=only_first)
    np.testing.assert_allclose(out[:, 0], v[:, 0], rtol=1e-6)
    # Query 5 has other keys to attend: its own (huge) value gets weight 0.
    v2 = v.at[:, 5].set(1e3)
    out2 = fn(q, k, v2)
    assert float(jnp.abs(out2[:, 5]).max()) < 1e2

  def test_fully_masked_rows_are_zeros(self):
    q, k, v = random_qkv(9, 2, 37, 37, 3, 4)
    mask = jnp.ones((2, 37), bool).at[0].set(False)
    out = attention.get("reformer")(q, k, v, mask=mask, causal=True,
                                    **{**self.options, "rng": 0})
    np.testing.assert_array_equal(np.asarray(out[0]), 0.0)
    assert bool(jnp.all(jnp.isfinite(out)))

  def test_no_causal_leak_with_many_chunks_and_rounds(self):
    q, k, v = random_qkv(10, 1, 48, 48, 2, 8)
    fn = functools.partial(attention.get("reformer"), num_buckets=6, chunk_size=4,
                           num_hashes=3, rng=5)
    check_causal_gradients(fn, q, k, v, rows=[0, 1, 7, 23, 47])

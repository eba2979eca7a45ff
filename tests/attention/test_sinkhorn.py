"""`sinkhorn` (Sparse Sinkhorn attention) in the shared contract; its exact
limits: an identity sort is local block attention, a hard permutation is each
block attending to [its sorted block ; itself] (not LRA's sum of all blocks),
SortCut over every block of an identity sort is dense; Sinkhorn balancing;
Gumbel noise only from `rng`."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.attention.attention_contract import AttentionContract, check_matches_reference, random_qkv
from efficient_transformers import attention
from efficient_transformers.attention.sinkhorn import sort_matrix

HARD = 1e4  # sort logits of a hard permutation (P is exact in float32)


def sort_logits(batch, heads, num_blocks, seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(
      size=(batch, heads, num_blocks, num_blocks)), jnp.float32)


def permutation_logits(batch, heads, perm):
  one_hot = np.eye(len(perm))[perm] * HARD
  return jnp.asarray(np.broadcast_to(one_hot, (batch, heads) + one_hot.shape), jnp.float32)


class TestSinkhorn(AttentionContract):
  name = "sinkhorn"
  exact = False
  cross_lengths = False
  # One block covering the sequence: the sorted block is the block itself.
  limit_options = {"block_size": 16, "sort_logits": np.zeros((1, 1, 1), np.float32)}
  limit_tolerance = 1e-5
  # One shape (odd length: a partial last block; 3 heads; batch 2): every
  # shape is a compilation, and CI time is shared.
  shapes = [(2, 13, 13, 3, 4)]

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    block = 64 if q_len >= 256 else 4  # memory check: fixed blocks of 64
    return {"block_size": block,
            "sort_logits": sort_logits(1, heads, -(-q_len // block))}  # batch broadcast


def _local_reference(perm, block, length):
  """dense pair mask: block u attends to blocks u and perm[u]."""
  blk = np.arange(length) // block
  return ((blk[None, :] == blk[:, None]) | (blk[None, :] == perm[blk][:, None]))[None]


def test_identity_sort_is_local_attention():
  shape = (2, 13, 13, 3, 4)
  q, k, v = random_qkv(3, *shape)
  nb = -(-shape[1] // 4)
  fn = functools.partial(attention.get("sinkhorn"), block_size=4, temperature=1.0,
                         sort_logits=permutation_logits(shape[0], shape[3], np.arange(nb)))
  ref = functools.partial(attention.get("local"), block_size=4)
  mask = jnp.asarray(np.arange(13)[None] < np.array([[10], [6]]))  # partial blocks
  for m in (None, mask):
    check_matches_reference(fn, ref, q, k, v, m, False, 3, 1e-5, 1e-5)


def test_permutation_sort_attends_sorted_and_own_block():
  """Catches LRA's bug (every sorted block = the sum of all blocks)."""
  shape = (2, 13, 13, 3, 4)
  q, k, v = random_qkv(8, *shape)
  perm = np.array([2, 0, 3, 1])
  fn = functools.partial(attention.get("sinkhorn"), block_size=4, temperature=1.0,
                         sort_logits=permutation_logits(2, 3, perm))
  ref = functools.partial(attention.dense, pair_mask=_local_reference(perm, 4, 13))
  check_matches_reference(fn, ref, q, k, v, None, False, 8, 1e-5, 1e-5)


def test_causal_permutation_of_past_blocks():
  shape = (2, 13, 13, 3, 4)
  q, k, v = random_qkv(9, *shape)
  perm = np.array([3, 0, 1, 2])  # block u >= 1 sorts in block u - 1
  fn = functools.partial(attention.get("sinkhorn"), block_size=4, temperature=1.0,
                         sort_logits=permutation_logits(2, 3, perm))
  pairs = _local_reference(perm, 4, 13)
  pairs[:, :4] = np.arange(13)[None, :] < 4  # block 0: no sorted block
  ref = functools.partial(attention.dense, pair_mask=pairs)
  check_matches_reference(fn, ref, q, k, v, None, True, 9, 1e-5, 1e-5)


def test_sortcut_over_all_blocks_is_dense():
  q, k, v = random_qkv(10, 2, 16, 16, 2, 8)
  fn = functools.partial(attention.get("sinkhorn"), block_size=4, temperature=1.0,
                         sortcut_k=4, sort_logits=permutation_logits(2, 2, np.arange(4)))
  check_matches_reference(fn, attention.dense, q, k, v, None, False, 10, 1e-5, 1e-5)
  with pytest.raises(ValueError, match="encoder-only"):
    fn(q, k, v, causal=True)


def test_sortcut_attends_first_sorted_blocks():
  q, k, v = random_qkv(11, 1, 16, 16, 1, 8)
  perm = np.array([2, 0, 3, 1])
  out = attention.get("sinkhorn")(q, k, v, block_size=4, temperature=1.0, sortcut_k=2,
                                  sort_logits=permutation_logits(1, 1, perm))
  keys = (np.arange(16) // 4 == 2) | (np.arange(16) // 4 == 0)
  ref = attention.dense(q, k, v, pair_mask=np.broadcast_to(keys, (1, 16, 16)))
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_sort_matrix_is_doubly_stochastic():
  p = sort_matrix(sort_logits(2, 3, 6), num_iters=20)
  np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-3)
  np.testing.assert_allclose(p.sum(-2), 1.0, atol=1e-3)


def test_causal_balancing_uses_only_earlier_rows():
  causal = np.tri(6, k=-1, dtype=bool)
  logits = sort_logits(2, 3, 6)
  p = sort_matrix(logits, allowed=causal, causal=True)
  assert np.all(np.asarray(p)[..., ~causal] == 0) and np.all(np.isfinite(p))
  changed = sort_matrix(logits.at[..., 4:, :].add(sort_logits(2, 3, 6, seed=1)[..., 4:, :]),
                        allowed=causal, causal=True)
  np.testing.assert_array_equal(p[..., :4, :], changed[..., :4, :])
  assert not np.allclose(p[..., 4:, :], changed[..., 4:, :])


def test_gumbel_noise_only_from_rng():
  q, k, v = random_qkv(12, 2, 13, 13, 3, 4)
  fn = functools.partial(attention.get("sinkhorn"), block_size=4,
                         sort_logits=sort_logits(2, 3, 4))
  a, b = fn(q, k, v, rng=jax.random.key(0)), fn(q, k, v, rng=jax.random.key(0))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, fn(q, k, v, rng=jax.random.key(1)))
  assert not np.allclose(a, fn(q, k, v))


def test_rejects_wrong_sort_logits():
  q, k, v = random_qkv(13, 1, 16, 16, 1, 8)
  with pytest.raises(ValueError, match="nb=ceil"):
    attention.get("sinkhorn")(q, k, v, block_size=4, sort_logits=jnp.zeros((1, 3, 3)))

"""`bigbird` (BigBird ITC block-sparse attention) in the shared base."""

import functools

import jax
import numpy as np
import pytest

from tests.attention.attention_contract import (AttentionContract, check_matches_reference,
                                random_padding, random_qkv)
from efficient_transformers import attention
from efficient_transformers.attention.bigbird import random_block_table


class TestBigBird(AttentionContract):
  name = "bigbird"
  # Blocks of 3: lengths 16 and 37 give 6 and 13 blocks, the last one ragged.
  options = {"block_size": 3, "num_window_blocks": 3, "num_global_blocks": 1,
             "num_random_blocks": 2, "rng": 7}
  supports_causal = False
  cross_lengths = False

  def reference(self, shape, causal):  # the random table is per head
    _, q_len, kv_len, heads, _ = shape
    pairs = attention.pattern(self.name, q_len, kv_len, causal=causal,
                              heads=heads, **self.options)
    return functools.partial(attention.dense, pair_mask=pairs)


def test_random_blocks_avoid_window_and_globals_and_differ_across_heads():
  heads, nb, w, g, r = 4, 20, 3, 2, 3
  table = np.asarray(random_block_table(jax.random.key(0), heads, nb, w, g, r))
  assert table.shape == (heads, nb, r)
  assert (table[:, :g] == -1).all() and (table[:, nb - g:] == -1).all()
  for row in range(g, nb - g):
    picks = table[:, row]
    assert (picks >= g).all() and (picks < nb - g).all()
    assert (np.abs(picks - row) > w // 2).all()
    assert all(len(set(p)) == r for p in picks)  # distinct within a row
  assert any((table[0] != table[h]).any() for h in range(1, heads))


def test_random_blocks_are_uniform_over_candidates():
  table = np.asarray(random_block_table(jax.random.key(1), 2000, 8, 3, 1, 1))
  counts = np.bincount(table[:, 1, 0], minlength=8)  # row 1: candidates 3..6
  assert counts[:3].sum() == 0 and counts[7] == 0
  np.testing.assert_allclose(counts[3:7] / 2000, 0.25, atol=0.04)


@pytest.mark.slow
def test_covering_random_blocks_equal_dense():
  q, k, v = random_qkv(0, 2, 37, 37, 2, 4)
  mask = random_padding(0, 2, 37)
  fn = functools.partial(attention.bigbird, block_size=3, num_random_blocks=13, rng=0)
  check_matches_reference(fn, attention.dense, q, k, v, mask, False, 0, 2e-5, 2e-5)


def test_key_rng_and_explicit_random_blocks_match_the_pattern():
  q, k, v = random_qkv(1, 1, 40, 40, 3, 4)
  key = jax.random.key(3)
  options = {"block_size": 4, "num_random_blocks": 2}
  table = random_block_table(key, 3, 10, 3, 1, 2)
  pairs = attention.pattern("bigbird", 40, 40, rng=key, heads=3, **options)
  np.testing.assert_array_equal(
      pairs, attention.pattern("bigbird", 40, 40, random_blocks=table, **options))
  assert not (pairs[0] == pairs[1]).all()
  want = attention.dense(q, k, v, pair_mask=pairs)
  for extra in ({"rng": key}, {"random_blocks": table}):
    out = jax.jit(functools.partial(attention.bigbird, **options, **extra))(q, k, v)
    np.testing.assert_allclose(out, want, rtol=2e-5, atol=2e-5)


def test_rejects_causal_and_missing_rng():
  q, k, v = random_qkv(0, 1, 16, 16, 1, 4)
  with pytest.raises(ValueError, match="causal"):
    attention.bigbird(q, k, v, causal=True, block_size=4, rng=0)
  with pytest.raises(ValueError, match="rng"):
    attention.bigbird(q, k, v, block_size=4)
  with pytest.raises(ValueError, match="odd"):
    attention.bigbird(q, k, v, block_size=4, num_window_blocks=2, rng=0)

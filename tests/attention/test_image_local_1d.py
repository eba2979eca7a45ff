"""`image_local_1d` (Image Transformer 1-D local attention) in the shared base."""

import functools

import jax
import numpy as np
import pytest

from tests.attention.attention_contract import (AttentionContract, check_matches_reference,
                                random_padding, random_qkv)
from efficient_transformers import attention


class TestImageLocal1d(AttentionContract):
  name = "image_local_1d"
  options = {"query_block_size": 4, "memory_flange": 3}  # flange not a multiple
  cross_lengths = False


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True])
def test_default_flange_matches_pattern(causal):
  """Default flange = the block (t2t: this block and the previous one)."""
  q, k, v = random_qkv(3, 2, 23, 23, 2, 4)
  mask = random_padding(3, 2, 23)
  fn = jax.jit(functools.partial(attention.image_local_1d, query_block_size=5),
               static_argnames="causal")
  pairs = attention.pattern("image_local_1d", 23, 23, causal=causal, query_block_size=5)
  ref = jax.jit(functools.partial(attention.dense, pair_mask=pairs),
                static_argnames="causal")
  check_matches_reference(fn, ref, q, k, v, mask, causal, 3, 2e-5, 2e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_one_block_equals_dense(causal):
  q, k, v = random_qkv(0, 2, 21, 21, 2, 8)
  out = attention.image_local_1d(q, k, v, causal=causal, query_block_size=32,
                                 memory_flange=0)
  np.testing.assert_allclose(out, attention.dense(q, k, v, causal=causal),
                             rtol=1e-5, atol=1e-5)


def test_causal_half_length_blocks_equal_dense():
  """t2t: block >= n/2 with the previous-block memory sees all the past."""
  q, k, v = random_qkv(1, 1, 20, 20, 2, 8)
  out = attention.image_local_1d(q, k, v, causal=True, query_block_size=10)
  np.testing.assert_allclose(out, attention.dense(q, k, v, causal=True),
                             rtol=1e-5, atol=1e-5)


def test_pattern_default_flange_is_previous_block():
  pairs = attention.pattern("image_local_1d", 6, 6, causal=True, query_block_size=2)[0]
  assert pairs[5].tolist() == [False, False, True, True, True, True]
  assert pairs[4].tolist() == [False, False, True, True, True, False]
  pairs = attention.pattern("image_local_1d", 6, 6, query_block_size=2, memory_flange=1)[0]
  assert pairs[2].tolist() == [False, True, True, True, True, False]


def test_rejects_bad_options_and_cross_lengths():
  q, k, v = random_qkv(0, 1, 8, 8, 1, 4)
  with pytest.raises(ValueError, match="query_block_size"):
    attention.image_local_1d(q, k, v, query_block_size=0)
  with pytest.raises(ValueError, match="self-attention"):
    attention.image_local_1d(q[:, :4], k, v, query_block_size=2)

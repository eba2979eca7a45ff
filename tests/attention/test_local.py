"""`local` (Liu et al. 2018 block attention) in the shared contract, plus its limits."""

import numpy as np
import pytest

from tests.attention.attention_contract import AttentionContract, random_qkv
from efficient_transformers import attention


class TestLocal(AttentionContract):
  name = "local"
  options = {"block_size": 5}  # 16 and 37 tokens: several blocks, a ragged last one
  cross_lengths = False


@pytest.mark.parametrize("causal", [False, True])
def test_block_at_least_length_is_dense(causal):
  q, k, v = random_qkv(0, 2, 13, 13, 2, 4)
  for block_size in (13, 64):
    np.testing.assert_allclose(
        attention.local(q, k, v, causal=causal, block_size=block_size),
        attention.dense(q, k, v, causal=causal), rtol=1e-5, atol=1e-5)


def test_block_one_attends_to_self():
  q, k, v = random_qkv(0, 2, 13, 13, 2, 4)
  np.testing.assert_allclose(attention.local(q, k, v, block_size=1), v, rtol=1e-6)


def test_options_are_validated():
  q, k, v = random_qkv(0, 1, 8, 8, 1, 4)
  with pytest.raises(ValueError, match="block_size"):
    attention.local(q, k, v, block_size=0)
  with pytest.raises(ValueError, match="self-attention only"):
    attention.local(q, k[:, :6], v[:, :6], block_size=2)
  with pytest.raises(ValueError, match="block_size"):
    attention.pattern("local", 8, 8, block_size=2.5)

"""`sliding_window` (Longformer §3.1 band, optionally dilated) in the shared contract."""

import numpy as np
import pytest

from tests.attention.attention_contract import AttentionContract, random_qkv
from efficient_transformers import attention


class TestSlidingWindow(AttentionContract):
  name = "sliding_window"
  options = {"window": 3}  # blocks of 3: several blocks and a ragged last one
  cross_lengths = False


class TestSlidingWindowDilated(TestSlidingWindow):
  options = {"window": 2, "dilation": 2}


def test_pattern_is_the_documented_band():
  pairs = attention.pattern("sliding_window", 9, 9, window=2, dilation=2)[0]
  np.testing.assert_array_equal(np.flatnonzero(pairs[4]), [0, 2, 4, 6, 8])
  np.testing.assert_array_equal(np.flatnonzero(pairs[1]), [1, 3, 5])
  causal = attention.pattern("sliding_window", 9, 9, causal=True, window=2, dilation=2)[0]
  np.testing.assert_array_equal(np.flatnonzero(causal[8]), [4, 6, 8])


@pytest.mark.parametrize("causal", [False, True])
def test_window_at_least_length_is_dense(causal):
  q, k, v = random_qkv(0, 2, 13, 13, 2, 4)
  for window in (12, 100):
    np.testing.assert_allclose(
        attention.sliding_window(q, k, v, causal=causal, window=window),
        attention.dense(q, k, v, causal=causal), rtol=1e-5, atol=1e-5)


def test_window_zero_attends_to_self():
  q, k, v = random_qkv(0, 2, 13, 13, 2, 4)
  for dilation in (1, 3):
    np.testing.assert_allclose(
        attention.sliding_window(q, k, v, window=0, dilation=dilation), v, rtol=1e-6)


def test_options_are_validated():
  q, k, v = random_qkv(0, 1, 8, 8, 1, 4)
  with pytest.raises(ValueError, match="window"):
    attention.sliding_window(q, k, v, window=-1)
  with pytest.raises(ValueError, match="dilation"):
    attention.sliding_window(q, k, v, window=2, dilation=0)
  with pytest.raises(ValueError, match="self-attention only"):
    attention.sliding_window(q, k[:, :6], v[:, :6], window=2)

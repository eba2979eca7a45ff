"""`strided` (Sparse Transformer, Child et al. 2019) in the shared contract."""

import importlib

import numpy as np
import pytest

from tests.attention.attention_contract import AttentionContract, random_qkv
from efficient_transformers import attention


class TestStridedFixed(AttentionContract):
  name = "strided"
  options = {"stride": 4, "pattern": "fixed", "num_summary": 1}
  cross_lengths = False


class TestStridedStrided(TestStridedFixed):
  options = {"stride": 5, "pattern": "strided"}


class TestStridedFixedSplit(TestStridedFixed):
  options = {"stride": 4, "pattern": "fixed", "num_summary": 2, "heads": "split"}

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    return dict(self.options, num_heads=heads)


class TestStridedStridedSplit(TestStridedFixedSplit):
  options = {"stride": 3, "pattern": "strided", "heads": "split"}


@pytest.fixture
def small_chunks(monkeypatch):
  """Several query chunks in the long-range component at test lengths."""
  monkeypatch.setattr(
      importlib.import_module("efficient_transformers.attention.strided"),
      "_QUERY_CHUNK", 8)


@pytest.mark.parametrize("pattern", ["strided", "fixed"])
@pytest.mark.parametrize("causal", [False, True])
def test_chunked_long_range_component_matches_dense(small_chunks, pattern, causal):
  q, k, v = random_qkv(0, 2, 37, 37, 2, 4)
  options = dict(stride=3, pattern=pattern, num_summary=2)
  pairs = attention.pattern("strided", 37, 37, causal=causal, **options)
  np.testing.assert_allclose(
      attention.strided(q, k, v, causal=causal, **options),
      attention.dense(q, k, v, causal=causal, pair_mask=pairs), rtol=1e-5, atol=1e-5)


def test_patterns_are_the_documented_ones():
  fixed = attention.pattern("strided", 12, 12, causal=True, stride=4, num_summary=1)[0]
  np.testing.assert_array_equal(np.flatnonzero(fixed[9]), [3, 7, 8, 9])
  strided = attention.pattern("strided", 12, 12, causal=True, stride=4, pattern="strided")[0]
  np.testing.assert_array_equal(np.flatnonzero(strided[9]), [1, 5, 6, 7, 8, 9])
  split = attention.pattern("strided", 12, 12, stride=4, num_summary=1, heads="split",
                            num_heads=3)
  assert split.shape == (3, 12, 12)
  np.testing.assert_array_equal(split[1], split[0])
  np.testing.assert_array_equal(np.flatnonzero(split[2][0]), [3, 7, 11])


@pytest.mark.parametrize("causal", [False, True])
def test_stride_one_and_summary_equal_stride_are_dense(causal):
  q, k, v = random_qkv(0, 1, 13, 13, 2, 4)
  dense = attention.dense(q, k, v, causal=causal)
  for options in (dict(stride=1, pattern="strided"),
                  dict(stride=4, pattern="fixed", num_summary=4)):
    np.testing.assert_allclose(attention.strided(q, k, v, causal=causal, **options),
                               dense, rtol=1e-5, atol=1e-5)


def test_options_are_validated():
  q, k, v = random_qkv(0, 1, 8, 8, 2, 4)
  for bad, match in ((dict(stride=0), "stride"), (dict(pattern="axial"), "pattern"),
                     (dict(stride=4, num_summary=5), "num_summary"),
                     (dict(heads="half"), "heads"), (dict(num_heads=3), "num_heads")):
    with pytest.raises(ValueError, match=match):
      attention.strided(q, k, v, **bad)
  with pytest.raises(ValueError, match="num_heads"):
    attention.pattern("strided", 8, 8, heads="split")

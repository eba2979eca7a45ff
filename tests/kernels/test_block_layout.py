"""kernels/block_layout.py: tables of non-empty tiles that expand back to the pattern."""

import numpy as np
import pytest

from efficient_transformers import attention
from efficient_transformers.kernels.block_layout import build_layout, expand

from tests.kernels.pattern_cases import PATTERN_CASES


@pytest.mark.parametrize("name, length, options, causals", PATTERN_CASES,
                         ids=[c[0] for c in PATTERN_CASES])
def test_tables_expand_back_to_every_pattern(name, length, options, causals):
  for causal in causals:
    pairs = attention.pattern(name, length, length, causal=causal, **options)
    for block_q, block_k in ((8, 8), (16, 4), (64, 64)):
      layout = build_layout(pairs, block_q, block_k)
      np.testing.assert_array_equal(expand(layout), pairs)
      np.testing.assert_array_equal(expand(layout, transposed=True), pairs)


def test_causal_known_answer():
  layout = build_layout(np.tril(np.ones((32, 32), bool)), 8, 8)
  np.testing.assert_array_equal(layout.counts, [[1, 2, 3, 4]])
  np.testing.assert_array_equal(layout.kv_index[0, 2], [0, 1, 2, 2])  # padded with the last id
  # Full tiles below the diagonal; every diagonal tile is the same partial mask.
  np.testing.assert_array_equal(layout.mask_index[0, 3], [-1, -1, -1, 1])
  assert layout.masks.shape == (2, 8, 8) and layout.masks[0].all()
  np.testing.assert_array_equal(layout.masks[1], np.tril(np.ones((8, 8), bool)))
  np.testing.assert_array_equal(layout.q_counts, [[4, 3, 2, 1]])
  np.testing.assert_array_equal(layout.q_index[0, 1, :3], [1, 2, 3])
  assert layout.num_computed_blocks == 10 and layout.density == 10 / 16


def test_empty_rows_and_cross_lengths():
  pairs = np.zeros((2, 12, 20), bool)
  pairs[0, :4, 3] = True  # head 0: one partial tile; query blocks 1, 2 empty
  pairs[1] = attention.pattern("dense", 12, 20, causal=True)[0]
  layout = build_layout(pairs, 4, 8)
  np.testing.assert_array_equal(layout.counts[0], [1, 0, 0])
  np.testing.assert_array_equal(layout.counts[1], [2, 2, 3])  # query i sees j <= i + 8
  np.testing.assert_array_equal(expand(layout), pairs)
  np.testing.assert_array_equal(expand(layout, transposed=True), pairs)
  assert layout.kv_index.shape[-1] == 4  # max count 3, rounded to a power of two


def test_rejects_bad_inputs():
  with pytest.raises(ValueError, match="heads or 1, q_len, kv_len"):
    build_layout(np.ones((1, 1, 4, 4), bool), 2, 2)
  with pytest.raises(ValueError, match="block_q and block_k"):
    build_layout(np.ones((1, 4, 4), bool), 0, 2)

"""`axial` (Axial Transformer row/column attention) in the shared base."""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.attention.attention_contract import (AttentionContract, check_causal_gradients,
                                check_matches_reference, random_padding,
                                random_qkv)
from efficient_transformers import attention

# The module (attention.axial is the function).
axial_module = importlib.import_module("efficient_transformers.attention.axial")

GRID_SHAPES = [(2, 16, 16, 2, 8), (1, 24, 24, 3, 4)]  # 4x4, and 6x4 / 4x6


class TestAxialRows(AttentionContract):
  name = "axial"
  cross_lengths = False
  shapes = GRID_SHAPES

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    return {"shape": (q_len // 4, 4), "axis": 1}  # rows of 4: linear memory


@pytest.mark.parametrize("causal", [False, True])
def test_columns_match_pattern_and_are_causal(causal):
  """Column attention (axis 0) on a 4x6 grid, jitted to keep the test fast."""
  q, k, v = random_qkv(3, 2, 24, 24, 2, 4)
  mask = random_padding(3, 2, 24)
  options = {"shape": (4, 6), "axis": 0}
  fn = jax.jit(functools.partial(attention.axial, **options),
               static_argnames="causal")
  pairs = attention.pattern("axial", 24, 24, causal=causal, **options)
  ref = jax.jit(functools.partial(attention.dense, pair_mask=pairs),
                static_argnames="causal")
  check_matches_reference(fn, ref, q, k, v, mask, causal, 3, 2e-5, 2e-5)
  if causal:
    check_causal_gradients(fn, q, k, v, rows=[0, 7, 23])


@pytest.mark.parametrize("axis, causal, expected", [
    (1, False, [1, 1, 1, 4, 4, 4]),
    (1, True, [0, 0.5, 1, 3, 3.5, 4]),
    (0, False, [1.5, 2.5, 3.5, 1.5, 2.5, 3.5]),
    (0, True, [0, 1, 2, 1.5, 2.5, 3.5]),
])
def test_known_answer_on_a_2x3_grid(axis, causal, expected):
  """Equal logits (q = k = 0): each position averages the values it sees."""
  zeros = jnp.zeros((1, 6, 1, 1))
  v = jnp.arange(6.0).reshape(1, 6, 1, 1)
  out = attention.axial(zeros, zeros, v, causal=causal, shape=(2, 3), axis=axis)
  np.testing.assert_allclose(out[0, :, 0, 0], expected, rtol=1e-6)


def test_rejects_bad_shape_and_axis():
  q, k, v = random_qkv(0, 1, 12, 12, 1, 4)
  with pytest.raises(ValueError, match="height \\* width"):
    attention.axial(q, k, v, shape=(3, 5))
  with pytest.raises(ValueError, match="axis"):
    attention.axial(q, k, v, shape=(3, 4), axis=2)


@pytest.mark.parametrize("length, expected", [(128, (8, 16)), (196, (14, 14)), (784, (28, 28)),
                                              (1000, (25, 40)), (2000, (40, 50)),
                                              (4000, (50, 80)), (16384, (128, 128))])
def test_default_shape_is_the_near_square_grid(length, expected):
  assert axial_module.grid(length) == expected


def test_shape_none_is_the_grid_of_the_sequence():
  q, k, v = random_qkv(0, 1, 12, 12, 2, 4)
  for axis in (0, 1):
    np.testing.assert_array_equal(attention.axial(q, k, v, axis=axis),
                                  attention.axial(q, k, v, shape=(3, 4), axis=axis))
  np.testing.assert_array_equal(attention.pattern("axial", 12, 12),
                                attention.pattern("axial", 12, 12, shape=(3, 4)))
  q, k, v = random_qkv(0, 1, 13, 13, 1, 4)
  with pytest.raises(ValueError, match="1 x 13"):
    attention.axial(q, k, v)

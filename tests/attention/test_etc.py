"""`etc` (ETC global-local attention over one sequence) in the shared base."""

import functools

import jax
import numpy as np
import pytest

from tests.attention.attention_contract import (AttentionContract, check_matches_reference,
                                random_padding, random_qkv)
from efficient_transformers import attention


class TestEtc(AttentionContract):
  name = "etc"
  options = {"num_global": 2, "local_radius": 3}
  supports_causal = False
  cross_lengths = False


def test_without_globals_matches_pattern():
  q, k, v = random_qkv(3, 2, 23, 23, 2, 4)
  mask = random_padding(3, 2, 23)
  options = {"num_global": 0, "local_radius": 5}
  fn = jax.jit(functools.partial(attention.etc, **options), static_argnames="causal")
  pairs = attention.pattern("etc", 23, 23, **options)
  ref = jax.jit(functools.partial(attention.dense, pair_mask=pairs),
                static_argnames="causal")
  check_matches_reference(fn, ref, q, k, v, mask, False, 3, 2e-5, 2e-5)


def test_radius_covering_the_long_input_equals_dense():
  """ETC's special case: local_radius >= n_l - 1 and shared projections."""
  q, k, v = random_qkv(0, 2, 15, 15, 2, 8)
  out = attention.etc(q, k, v, num_global=3, local_radius=11)
  np.testing.assert_allclose(out, attention.dense(q, k, v), rtol=1e-5, atol=1e-5)


def test_pattern_rows():
  pairs = attention.pattern("etc", 7, 7, num_global=2, local_radius=1)[0]
  assert pairs[0].all() and pairs[1].all()
  assert pairs[4].tolist() == [True, True, False, True, True, True, False]


def test_rejects_bad_options():
  q, k, v = random_qkv(0, 1, 8, 8, 1, 4)
  with pytest.raises(ValueError, match="num_global"):
    attention.etc(q, k, v, num_global=9)
  with pytest.raises(ValueError, match="causal"):
    attention.etc(q, k, v, causal=True)

"""Each check of the shared base fails on a mechanism broken in the way it guards.

A test that cannot fail proves nothing: these broken mechanisms reproduce bugs
of published code (see shared/reference/models.md §20).
"""

import functools
import math

import jax
import jax.numpy as jnp
import pytest

from tests.attention.attention_contract import (check_causal_gradients, check_fully_masked_rows,
                                check_matches_reference, check_padding_invariance,
                                random_padding, random_qkv)
from efficient_transformers import attention

SHAPE = (2, 12, 12, 2, 8)


def ignores_causal(q, k, v, *, mask=None, causal=False):
  return attention.dense(q, k, v, mask=mask)


def ignores_padding(q, k, v, *, mask=None, causal=False):
  return attention.dense(q, k, v, causal=causal)  # like LRA's Linformer


def neg_inf_masking(q, k, v, *, mask=None, causal=False):
  logits = jnp.einsum("bqnh,bknh->bnqk", q, k) / math.sqrt(q.shape[-1])
  logits = jnp.where(mask[:, None, None, :], logits, -jnp.inf)
  return jnp.einsum("bnqk,bknh->bqnh", jax.nn.softmax(logits), v)


def wrong_scale(q, k, v, *, mask=None, causal=False):
  # LRA's Reformer multiplied logits by sqrt(d) instead of dividing.
  return attention.dense(q * q.shape[-1], k, v, mask=mask, causal=causal)


def test_causal_check_catches_a_leak():
  with pytest.raises(AssertionError, match="future"):
    check_causal_gradients(ignores_causal, *random_qkv(0, *SHAPE))


def test_padding_check_catches_ignored_padding():
  q, k, v = random_qkv(0, *SHAPE)
  with pytest.raises(AssertionError):
    check_padding_invariance(ignores_padding, q, k, v, random_padding(0, 2, 12), False, 0)


def test_fully_masked_check_catches_nan():
  with pytest.raises(AssertionError, match="NaN"):
    check_fully_masked_rows(neg_inf_masking, *random_qkv(0, *SHAPE), False, True)


def test_reference_check_catches_wrong_scale():
  with pytest.raises(AssertionError, match="outputs differ"):
    check_matches_reference(wrong_scale, attention.dense, *random_qkv(0, *SHAPE),
                            None, False, 0, 1e-5, 1e-5)


def test_reference_check_passes_dense_against_itself_under_jit():
  q, k, v = random_qkv(0, *SHAPE)
  check_matches_reference(jax.jit(attention.dense, static_argnames="causal"),
                          attention.dense, q, k, v, random_padding(0, 2, 12), True, 0,
                          1e-6, 1e-6)

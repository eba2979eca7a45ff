"""`dense` in the shared contract, and against a float64 NumPy oracle."""

import functools

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.attention.attention_contract import (AttentionContract, SEEDS, SETTINGS,
                                check_subquadratic_memory, compiled_temp_bytes,
                                random_padding, random_qkv)
from efficient_transformers import attention
from efficient_transformers.attention.dense_chunked import _Problem


class TestDense(AttentionContract):
  """impl="xla": the quadratic oracle."""
  name = "dense"
  options = {"impl": "xla"}
  quadratic_by_design = True


class TestDenseChunked(AttentionContract):
  """impl="chunked" with tiles that do not divide the test lengths (16, 37, 12, 20)."""
  name = "dense"
  options = {"impl": "chunked", "q_chunk": 5, "kv_chunk": 7}

IMPLS = [{"impl": "xla"}, {"impl": "chunked", "q_chunk": 5, "kv_chunk": 7}]


def numpy_attention(q, k, v, allowed, d_out):
  """float64 softmax attention and its hand-derived gradients.

  q [B,Tq,N,H], k/v [B,Tk,N,H], allowed bool [B,N,Tq,Tk], d_out = cotangent.
  Rows with no allowed key output zero. Returns out, dq, dk, dv.
  """
  q, k, v, d_out = (np.asarray(x, np.float64) for x in (q, k, v, d_out))
  scale = 1.0 / np.sqrt(q.shape[-1])
  s = np.einsum("bqnh,bknh->bnqk", q, k) * scale
  s = np.where(allowed, s, -np.inf)
  row_max = s.max(-1, keepdims=True)
  row_max = np.where(np.isfinite(row_max), row_max, 0.0)
  e = np.where(allowed, np.exp(s - row_max), 0.0)
  denom = e.sum(-1, keepdims=True)
  p = np.divide(e, denom, out=np.zeros_like(e), where=denom > 0)
  out = np.einsum("bnqk,bknh->bqnh", p, v)
  dp = np.einsum("bqnh,bknh->bnqk", d_out, v)
  ds = p * (dp - (dp * p).sum(-1, keepdims=True))
  dq = np.einsum("bnqk,bknh->bqnh", ds, k) * scale
  dk = np.einsum("bnqk,bqnh->bknh", ds, q) * scale
  dv = np.einsum("bnqk,bqnh->bknh", p, d_out)
  return out, dq, dk, dv


def numpy_allowed(batch, heads, q_len, kv_len, mask, causal):
  allowed = np.ones((batch, heads, q_len, kv_len), bool)
  if mask is not None:
    allowed &= np.asarray(mask)[:, None, None, :]
  if causal:  # aligned at the sequence ends: j <= i + kv_len - q_len
    allowed &= np.tril(np.ones((q_len, kv_len), bool), k=kv_len - q_len)
  return allowed


@pytest.mark.slow
@pytest.mark.parametrize("impl", IMPLS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("shape", [(2, 16, 16, 2, 8), (2, 9, 23, 3, 4), (1, 23, 9, 1, 8)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@hypothesis.given(seed=SEEDS)
@hypothesis.settings(SETTINGS, max_examples=2)
def test_dense_equals_float64_oracle(impl, shape, causal, padded, seed):
  batch, q_len, kv_len, heads, _ = shape
  q, k, v = random_qkv(seed, *shape)
  mask = random_padding(seed, batch, kv_len) if padded else None
  d_out = jnp.asarray(np.random.default_rng(seed).normal(size=q.shape), jnp.float32)
  out, pullback = jax.vjp(
      functools.partial(attention.dense, mask=mask, causal=causal, **impl), q, k, v)
  grads = pullback(d_out)
  expected = numpy_attention(
      q, k, v, numpy_allowed(batch, heads, q_len, kv_len, mask, causal), d_out)
  for name, got, want in zip(["out", "dq", "dk", "dv"], (out, *grads), expected):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("impl", IMPLS, ids=lambda o: "-".join(map(str, o.values())))
def test_dense_bfloat16_accumulates_in_float32(impl):
  shape = (2, 64, 64, 2, 16)
  q, k, v = random_qkv(0, *shape, dtype=jnp.bfloat16)
  out = attention.dense(q, k, v, causal=True, **impl)
  assert out.dtype == jnp.bfloat16
  allowed = numpy_allowed(2, 2, 64, 64, None, True)
  want = numpy_attention(q.astype(np.float32), k.astype(np.float32),
                         v.astype(np.float32), allowed, np.zeros(q.shape))[0]
  # Only the final rounding to bf16 separates the two: 2**-8 relative.
  np.testing.assert_allclose(np.asarray(out, np.float32), want, rtol=2**-7, atol=2**-7)


def test_dense_pair_mask_restricts_pairs():
  q, k, v = random_qkv(3, 1, 8, 8, 2, 4)
  pairs = np.random.default_rng(3).random((2, 8, 8)) < 0.5
  pairs[:, 0] = False  # an empty row in each head
  out = attention.dense(q, k, v, pair_mask=pairs)
  want = numpy_attention(q, k, v, np.broadcast_to(pairs, (1, 2, 8, 8)),
                         np.zeros(q.shape))[0]
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(out[:, 0]), 0.0)


def test_dense_xla_memory_is_quadratic():
  """The memory-scaling measure sees the xla form's O(L^2) score matrix."""
  with pytest.raises(AssertionError, match="O\\(L\\^2\\)"):
    check_subquadratic_memory(lambda n: functools.partial(attention.dense, impl="xla"))


@pytest.mark.parametrize("causal", [False, True])
def test_dense_chunked_memory_is_linear(causal):
  """Forward+backward temporary memory grows at most linearly with length."""
  f = functools.partial(attention.dense, impl="chunked", q_chunk=64, kv_chunk=64,
                        causal=causal)
  small, large = (compiled_temp_bytes(f, n, heads=2, head_dim=32) for n in (1024, 4096))
  assert large <= 4.5 * small, (small, large)


@pytest.mark.parametrize("q_len,kv_len,qc,kc", [(37, 37, 8, 8), (12, 20, 5, 7),
                                                (20, 12, 8, 5), (64, 64, 16, 32)])
def test_dense_chunked_causal_skips_exactly_the_empty_tiles(q_len, kv_len, qc, kc):
  """The loop bounds visit every tile with an allowed pair and no tile without."""
  problem = _Problem(q_len, kv_len, qc, kc, causal=True)
  allowed = numpy_allowed(1, 1, q_len, kv_len, None, True)[0, 0]
  for i in range(problem.num_q):
    for j in range(problem.num_kv):
      tile = allowed[i * problem.qc:(i + 1) * problem.qc, j * problem.kc:(j + 1) * problem.kc]
      visited_fwd = j < int(problem.kv_chunks_for(i))
      visited_bwd = i >= int(problem.first_q_chunk_for(j))
      # A tile of padded queries only (past q_len) may be visited; it is dropped.
      needed = bool(tile.any())
      assert visited_fwd == visited_bwd
      assert visited_fwd >= needed, (i, j)
      if not needed and i * problem.qc < q_len:
        assert not visited_fwd or tile.size < problem.qc * problem.kc, (i, j)


def test_dense_impl_errors():
  q, k, v = random_qkv(0, 1, 4, 4, 1, 8)
  with pytest.raises(ValueError, match="unknown dense impl 'nope'"):
    attention.dense(q, k, v, impl="nope")
  with pytest.raises(ValueError, match="pair_mask is supported by impl='xla' only"):
    attention.dense(q, k, v, impl="chunked", pair_mask=np.ones((1, 4, 4), bool))
  with pytest.raises(ValueError, match="cudnn.*(GPU|bfloat16)"):
    attention.dense(q, k, v, impl="cudnn")
  with pytest.raises(ValueError, match="pair_mask is supported by impl='xla' only"):
    attention.dense(q, k, v, impl="pallas", pair_mask=np.ones((1, 4, 4), bool))
  # impl="pallas" (the block-sparse kernel) is tested in tests/kernels/.


def test_dense_rejects_bad_shapes():
  q, k, v = random_qkv(0, 1, 4, 4, 2, 4)
  with pytest.raises(ValueError, match="batch, length, heads, head_dim"):
    attention.dense(q[0], k, v)
  with pytest.raises(ValueError, match="mask must be bool"):
    attention.dense(q, k, v, mask=jnp.ones((1, 5), bool))

"""`synthesizer_dense` and `synthesizer_random` (and their factorised forms) in
the shared contract, with known answers against dot-product attention and a
memory test showing they are quadratic by design."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from tests.attention.attention_contract import (AttentionContract, check_matches_reference,
                                compiled_temp_bytes, random_padding, random_qkv)
from efficient_transformers import attention


def _normal(seed, *shape):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


class TestSynthesizerDense(AttentionContract):
  name = "synthesizer_dense"
  exact = False
  quadratic_by_design = True
  limit_options = {}  # not an approximation: see test_converges_to_dense

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    # Longer than kv_len on purpose: parameters sized for a maximum length.
    return {"w2": _normal(0, heads, head_dim, kv_len + 3),
            "b2": _normal(1, heads, kv_len + 3)}

  def test_converges_to_dense(self):
    """Known answer: logits relu(q) . w2[:, :, j] are dot products with keys
    w2[:, :, j] * sqrt(d), so dense(relu(q), those keys, v) is the answer."""
    shape = self._shapes()[-1]
    batch, q_len, kv_len, heads, head_dim = shape
    q, k, v = random_qkv(4, *shape)
    w2 = _normal(0, heads, head_dim, kv_len)
    keys = jnp.broadcast_to(jnp.transpose(w2, (2, 0, 1)) * np.sqrt(head_dim),
                            (batch, kv_len, heads, head_dim))
    mask = random_padding(4, batch, kv_len)
    for causal in (False, True):
      got = attention.synthesizer_dense(q, k, v, mask=mask, causal=causal, w2=w2)
      want = attention.dense(jax.nn.relu(q), keys, v, mask=mask, causal=causal)
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


class TestSynthesizerDenseFactorized(TestSynthesizerDense):
  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    a = 4
    b = -(-kv_len // a) + 1  # a * b > kv_len: sliced
    return {"w2_a": _normal(2, heads, head_dim, a), "w2_b": _normal(3, heads, head_dim, b)}


class TestSynthesizerRandom(AttentionContract):
  name = "synthesizer_random"
  exact = False
  quadratic_by_design = True
  limit_options = {}  # see test_converges_to_dense

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    return {"random_logits": _normal(4, heads, q_len + 2, kv_len + 1)}

  def test_converges_to_dense(self):
    """Known answer: random_logits = Q K^T / sqrt(d), frozen, is dot-product
    attention (outputs and value gradients)."""
    for shape in self._shapes():
      q, k, v = random_qkv(4, *shape)
      logits = jnp.einsum("qnh,knh->nqk", q[0], k[0]) / np.sqrt(shape[-1])
      q, k, v = q[:1], k[:1], v[:1]
      mask = random_padding(4, 1, shape[2])
      for causal in (False, True):
        got = functools.partial(attention.synthesizer_random, random_logits=logits)
        check_matches_reference(
            lambda q_, k_, v_, **kw: got(q, k, v_, **kw),
            lambda q_, k_, v_, **kw: attention.dense(q, k, v_, **kw),
            q, k, v, mask, causal, 4, 1e-5, 1e-5)


class TestSynthesizerRandomFactorized(TestSynthesizerRandom):
  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    return {"factor_q": _normal(5, heads, q_len, 3), "factor_k": _normal(6, heads, kv_len + 2, 3)}


def test_memory_is_quadratic():
  """Quadratic by design: 4x the length, about 16x the temporary memory."""
  def at(n, name, **options):
    return compiled_temp_bytes(functools.partial(attention.get(name), **options), n,
                               heads=1, head_dim=16)
  for name, make in (("synthesizer_dense", lambda n: {"w2": jnp.ones((1, 16, n))}),
                     ("synthesizer_random", lambda n: {"random_logits": jnp.ones((1, n, n))})):
    small, large = at(256, name, **make(256)), at(1024, name, **make(1024))
    assert large >= 8 * small, (name, small, large)

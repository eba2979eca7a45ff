"""impl="pallas" through the public mechanism functions equals impl="xla"."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from efficient_transformers import attention

from tests.kernels.pattern_cases import PATTERN_CASES

# Compiled on a GPU (Triton), float32 dots may use TF32.
TOL = 2e-3 if jax.default_backend() == "gpu" else 1e-5


def _inputs(length, heads=2, seed=0):
  rng = np.random.default_rng(seed)
  q, k, v = (jnp.asarray(rng.normal(size=(2, length, heads, 16)), jnp.float32)
             for _ in range(3))
  mask = jnp.asarray(np.arange(length)[None] < np.array([[length // 2], [length]]))
  return q, k, v, mask


def _options(options):
  return {k: v for k, v in options.items() if k not in ("heads", "num_heads")}


# The glue's distinct paths (causal; a per-head pattern; bigbird's rng below).
# Every pattern's kernel output is checked in test_block_sparse_attention.py,
# and the mechanisms all call the glue the same way.
PUBLIC_CASES = [c for c in PATTERN_CASES if c[0] == "dense" or "num_heads" in c[2]]


@pytest.mark.parametrize("name, length, options, causals", PUBLIC_CASES,
                         ids=[c[0] for c in PUBLIC_CASES])
def test_forward_equals_xla(name, length, options, causals):
  q, k, v, mask = _inputs(length, heads=3 if "num_heads" in options else 2)
  causal = causals[-1]
  fn = functools.partial(attention.get(name), mask=mask, causal=causal,
                         **_options(options))
  np.testing.assert_allclose(jax.jit(functools.partial(fn, impl="pallas"))(q, k, v),
                             jax.jit(functools.partial(fn, impl="xla"))(q, k, v),
                             rtol=TOL, atol=TOL)


def test_bigbird_gradients_under_jit_use_the_xla_random_draw():
  """The random blocks are drawn on the host from the same rng as impl="xla"
  (which equals dense with this pattern: tests/attention/test_bigbird.py)."""
  q, k, v, mask = _inputs(37, seed=1)
  options = dict(block_size=4, num_random_blocks=2, rng=jax.random.key(5))
  pairs = attention.pattern("bigbird", 37, 37, heads=2, **options)

  def value_and_grads(fn):
    loss = lambda q, k, v: jnp.sum(fn(q, k, v, mask=mask) ** 2)
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(q, k, v)

  got, got_grads = value_and_grads(
      functools.partial(attention.bigbird, impl="pallas", **options))
  want, want_grads = value_and_grads(functools.partial(attention.dense, pair_mask=pairs))
  np.testing.assert_allclose(got, want, rtol=TOL)
  for a, b in zip(got_grads, want_grads):
    np.testing.assert_allclose(a, b, rtol=10 * TOL, atol=TOL)


def test_traced_rng_and_unknown_impl_raise():
  q, k, v, _ = _inputs(16)
  traced = jax.jit(lambda q, key: attention.bigbird(q, q, q, block_size=4, rng=key,
                                                    impl="pallas"))
  with pytest.raises(ValueError, match="concrete"):
    traced(q, jax.random.key(0))
  with pytest.raises(ValueError, match="impl"):
    attention.local(q, k, v, block_size=4, impl="triton")
  with pytest.raises(ValueError, match="global_qkv"):
    attention.longformer(q, k, v, window=2, impl="pallas", global_qkv=(q[:, :1], k, v))


def test_pattern_ignores_impl():
  np.testing.assert_array_equal(
      attention.pattern("local", 16, 16, block_size=4, impl="pallas"),
      attention.pattern("local", 16, 16, block_size=4))

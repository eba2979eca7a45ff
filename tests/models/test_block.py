import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers.models.block import Block


@pytest.mark.slow
def test_shapes_and_cross_attention():
  block = Block(16, 2, 32, cross_attention=True, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (2, 8, 16))
  memory = jax.random.normal(jax.random.key(1), (2, 12, 16))
  memory_mask = jnp.arange(12)[None] < jnp.array([[12], [5]])
  out = block(x, causal=True, memory=memory, memory_mask=memory_mask,
              deterministic=True)
  assert out.shape == (2, 8, 16)
  # Padded memory positions do not matter.
  other = memory.at[1, 5:].set(5.0)
  np.testing.assert_allclose(
      out, block(x, causal=True, memory=other, memory_mask=memory_mask,
                 deterministic=True), atol=1e-5)
  with pytest.raises(ValueError, match="no memory"):
    block(x, deterministic=True)


def test_memory_without_cross_attention():
  block = Block(16, 2, 32, rngs=nnx.Rngs(0))
  x = jnp.ones((2, 8, 16))
  with pytest.raises(ValueError, match="without cross_attention"):
    block(x, memory=x, deterministic=True)


def test_missing_rngs():
  block = Block(16, 2, 32, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="rngs=nnx.Rngs"):
    block(jnp.ones((2, 8, 16)), deterministic=False)

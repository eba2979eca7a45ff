import math

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers.models.embedding import (Embedder,
                                                     sinusoidal_positions,
                                                     sinusoidal_positions_2d)


def test_sinusoidal_known_values():
  table = sinusoidal_positions(5, 4)
  assert table.shape == (5, 4) and table.dtype == np.float32
  # Position 0: the sin half is 0, the cos half is 1.
  np.testing.assert_allclose(table[0], [0, 0, 1, 1])
  # Position 2, column 1: sin(2 / 10000 ** (2 * 1 / 4)) = sin(0.02).
  np.testing.assert_allclose(table[2, 1], math.sin(0.02), rtol=1e-6)
  # Position 3, column 2 + 0: cos(3 * 1) = cos(3).
  np.testing.assert_allclose(table[3, 2], math.cos(3.0), rtol=1e-6)


def test_sinusoidal_odd_dim_rejected():
  with pytest.raises(ValueError, match="7"):
    sinusoidal_positions(4, 7)


@pytest.mark.parametrize("position", ["sinusoidal", "learned", "none",
                                      "sinusoidal_2d"])
def test_embedder_shapes_and_params(position):
  embedder = Embedder(10, 16, 8, position=position, dropout_rate=0.1,
                      rngs=nnx.Rngs(0))
  out = embedder(jnp.ones((2, 4), jnp.int32), deterministic=True)
  assert out.shape == (2, 4, 16)
  names = {str(p[0]) for p, _ in nnx.to_flat_state(nnx.state(embedder))}
  assert ("position_embedding" in names) == (position == "learned")


def test_sinusoidal_is_added_to_tokens():
  embedder = Embedder(10, 16, 8, position="sinusoidal", dropout_rate=0.0,
                      rngs=nnx.Rngs(0))
  tokens = jnp.array([[1, 2, 3]])
  plain = embedder.token_embedding(tokens)
  np.testing.assert_allclose(
      embedder(tokens, deterministic=True) - plain,
      sinusoidal_positions(3, 16)[None], atol=1e-6)


def test_too_long_input():
  embedder = Embedder(10, 16, 4, dropout_rate=0.0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="max_length 4"):
    embedder(jnp.ones((1, 5), jnp.int32), deterministic=True)


def test_unknown_position():
  with pytest.raises(ValueError, match="rotary.*sinusoidal, learned, none"):
    Embedder(10, 16, 4, position="rotary", dropout_rate=0.0, rngs=nnx.Rngs(0))


def test_sinusoidal_2d_is_row_then_column():
  table = sinusoidal_positions_2d(9, 8)  # A 3 x 3 image.
  assert table.shape == (9, 8) and table.dtype == np.float32
  rows, columns = sinusoidal_positions(3, 4), table
  # Position 5 is row 1, column 2; position 7 is row 2, column 1.
  np.testing.assert_allclose(table[5], np.concatenate([rows[1], rows[2]]))
  np.testing.assert_allclose(table[7], np.concatenate([rows[2], rows[1]]))
  # Same row: same first half; same column: same second half.
  np.testing.assert_allclose(table[3, :4], table[5, :4])
  np.testing.assert_allclose(columns[1, 4:], columns[7, 4:])
  with pytest.raises(ValueError, match="square.*length 8"):
    sinusoidal_positions_2d(8, 8)
  with pytest.raises(ValueError, match="dim % 4"):
    sinusoidal_positions_2d(9, 6)


def test_sinusoidal_2d_is_added_after_cls():
  embedder = Embedder(10, 8, 9, position="sinusoidal_2d", dropout_rate=0.0,
                      use_cls=True, rngs=nnx.Rngs(0))
  tokens = jnp.arange(9)[None]
  out = embedder(tokens, deterministic=True)
  assert out.shape == (1, 10, 8)
  np.testing.assert_allclose(out[0, 0], 0.0)  # CLS: zero init, no position.
  np.testing.assert_allclose(out[0, 1:] - embedder.token_embedding(tokens)[0],
                             sinusoidal_positions_2d(9, 8), atol=1e-6)

import jax
import numpy as np
import pytest
from flax import nnx

from efficient_transformers.models import Classifier

VOCAB = 11


@pytest.fixture
def model(tiny):
  return Classifier(VOCAB, 8, num_classes=3, rngs=nnx.Rngs(0),
                    **{**tiny, "dropout_rate": 0.5})


def test_deterministic_is_repeatable(model, tokens):
  np.testing.assert_array_equal(model(tokens, deterministic=True),
                                model(tokens, deterministic=True))


def test_keys_drive_dropout(model, tokens):
  def run(seed):
    return model(tokens, deterministic=False,
                 rngs=nnx.Rngs(dropout=jax.random.key(seed)))

  np.testing.assert_array_equal(run(1), run(1))
  assert not np.allclose(run(1), run(2))
  assert not np.allclose(run(1), model(tokens, deterministic=True))


def test_missing_rngs_is_an_error(model, tokens):
  with pytest.raises(ValueError, match="deterministic=False.*rngs"):
    model(tokens, deterministic=False)

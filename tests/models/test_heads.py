import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers.models import Classifier, Matcher, count_params

VOCAB = 11


def _pad(tokens, extra):
  return jnp.pad(tokens, ((0, 0), (0, extra)))


# CLS sits at position 0 (as in LRA), so even with one layer every parameter,
# the query and key kernels included, gets a gradient at init.
@pytest.mark.slow
@pytest.mark.parametrize("pooling,num_layers,allowed_zero", [
    ("cls", 1, ()), ("cls", 2, ()), ("mean", 1, ())])
def test_classifier_forward_backward(tiny, tokens, pooling, num_layers,
                                     allowed_zero, check_gradients):
  model = Classifier(VOCAB, 8, num_classes=3, pooling=pooling,
                     rngs=nnx.Rngs(0), **{**tiny, "num_layers": num_layers})
  assert model(tokens, deterministic=True).shape == (2, 3)
  check_gradients(model, lambda m: m(
      tokens, deterministic=False, rngs=nnx.Rngs(dropout=jax.random.key(0))),
                  allowed_zero=allowed_zero)


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_classifier_ignores_appended_padding(tiny, tokens, pooling):
  model = Classifier(VOCAB, 12, num_classes=3, pooling=pooling,
                     rngs=nnx.Rngs(0), **tiny)
  np.testing.assert_allclose(model(tokens, deterministic=True),
                             model(_pad(tokens, 4), deterministic=True),
                             atol=1e-5)


def test_unknown_pooling(tiny):
  with pytest.raises(ValueError, match="max.*cls, mean"):
    Classifier(VOCAB, 8, num_classes=3, pooling="max", rngs=nnx.Rngs(0), **tiny)


@pytest.mark.slow
@pytest.mark.parametrize("pooling,allowed_zero", [
    ("cls", ()), ("mean", ())])
def test_matcher_forward_backward(tiny, tokens, pooling, allowed_zero,
                                  check_gradients):
  model = Matcher(VOCAB, 8, num_classes=3, pooling=pooling, rngs=nnx.Rngs(0),
                  **tiny)
  tokens2 = tokens[::-1]
  assert model(tokens, tokens2, deterministic=True).shape == (2, 3)
  # One shared encoder: the towers have no parameters of their own.
  assert [k for k in nnx.state(model) if "encoder" in str(k)] == ["encoder"]
  check_gradients(model, lambda m: m(
      tokens, tokens2, deterministic=False,
      rngs=nnx.Rngs(dropout=jax.random.key(0))), allowed_zero=allowed_zero)


def test_count_params_by_hand(tiny):
  model = Classifier(VOCAB, 8, num_classes=3, pooling="cls", rngs=nnx.Rngs(0),
                     **tiny)
  V, E, M, C = VOCAB, 16, 32, 3  # 1 layer, qkv_dim = E, sinusoidal positions
  embedding = V * E
  cls = E
  attention = 4 * E * E                      # q, k, v, out; no biases
  mlp = (E * M + M) + (M * E + E)
  layer_norms = 2 * (2 * E)                  # attention and MLP LayerNorms
  block = attention + mlp + layer_norms
  final_norm = 2 * E
  head = (E * M + M) + (M * C + C)
  expected = embedding + cls + block + final_norm + head
  assert count_params(model) == expected == 3027

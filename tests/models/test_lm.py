import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers.models import CausalLM, EncoderDecoder

VOCAB = 11


def _dropout():
  return dict(deterministic=False, rngs=nnx.Rngs(dropout=jax.random.key(0)))


def test_causal_lm_forward_backward(tiny, tokens, check_gradients):
  model = CausalLM(VOCAB, 8, rngs=nnx.Rngs(0), **tiny)
  assert model(tokens, deterministic=True).shape == (2, 8, VOCAB)
  check_gradients(model, lambda m: m(tokens, **_dropout()))


def test_causal_lm_is_causal(tiny, tokens):
  model = CausalLM(VOCAB, 8, rngs=nnx.Rngs(0), **tiny)
  i = 3
  logits = model(tokens, deterministic=True)
  future = model(tokens.at[:, i + 1:].set(7), deterministic=True)
  np.testing.assert_allclose(logits[:, :i + 1], future[:, :i + 1], atol=1e-5)
  present = model(tokens.at[:, i].set(10), deterministic=True)
  np.testing.assert_allclose(logits[:, :i], present[:, :i], atol=1e-5)
  assert not np.allclose(logits[:, i], present[:, i])


def test_encoder_decoder_forward_backward(tiny, tokens, check_gradients):
  model = EncoderDecoder(VOCAB, 8, rngs=nnx.Rngs(0), **tiny)
  target = tokens[::-1]
  assert model(tokens, target, deterministic=True).shape == (2, 8, VOCAB)
  check_gradients(model, lambda m: m(tokens, target, **_dropout()))


@pytest.mark.slow
def test_encoder_decoder_target_causality_and_source_padding(tiny, tokens):
  model = EncoderDecoder(VOCAB, 12, rngs=nnx.Rngs(0), **tiny)
  source, target = tokens, tokens[::-1]
  logits = model(source, target, deterministic=True)
  i = 4
  future = model(source, target.at[:, i + 1:].set(7), deterministic=True)
  np.testing.assert_allclose(logits[:, :i + 1], future[:, :i + 1], atol=1e-5)
  present = model(source, target.at[:, i].set(10), deterministic=True)
  assert not np.allclose(logits[:, i], present[:, i])
  # Every target position sees the whole source.
  changed_source = model(source.at[:, -1].set(10), target, deterministic=True)
  assert not np.allclose(logits[:, 0], changed_source[:, 0])
  padded = model(jnp.pad(source, ((0, 0), (0, 4))), target, deterministic=True)
  np.testing.assert_allclose(logits, padded, atol=1e-5)

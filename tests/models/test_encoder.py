import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers.models.encoder import Encoder

VOCAB = 11


@pytest.mark.parametrize("use_cls", [False, True])
def test_shapes_and_mask(tiny, tokens, use_cls):
  encoder = Encoder(VOCAB, 8, use_cls=use_cls, rngs=nnx.Rngs(0), **tiny)
  hidden, mask = encoder(tokens, deterministic=True)
  length = 8 + use_cls
  assert hidden.shape == (2, length, 16)
  expected = np.asarray(tokens) != 0
  if use_cls:
    expected = np.concatenate([np.ones((2, 1), bool), expected], axis=1)
  np.testing.assert_array_equal(mask, expected)


def test_cls_does_not_count_toward_max_length(tiny, tokens):
  encoder = Encoder(VOCAB, 8, use_cls=True, rngs=nnx.Rngs(0), **tiny)
  encoder(tokens, deterministic=True)  # 8 tokens + CLS fit max_length 8
  with pytest.raises(ValueError, match="max_length 8"):
    encoder(jnp.ones((2, 9), jnp.int32), deterministic=True)


def test_state_holds_only_params(tiny):
  encoder = Encoder(VOCAB, 8, use_cls=True, cross_attention=True,
                    position="learned", rngs=nnx.Rngs(0), **tiny)
  variables = jax.tree.leaves(
      nnx.state(encoder), is_leaf=lambda x: isinstance(x, nnx.Variable))
  assert variables and all(isinstance(v, nnx.Param) for v in variables)
  assert not jax.tree.leaves(nnx.state(encoder, nnx.Not(nnx.Param)))


@pytest.mark.slow
def test_jit_with_split_merge(tiny, tokens):
  encoder = Encoder(VOCAB, 8, rngs=nnx.Rngs(0), **tiny)
  graphdef, params = nnx.split(encoder)

  @jax.jit
  def forward(params, key):
    model = nnx.merge(graphdef, params)
    return model(tokens, deterministic=False, rngs=nnx.Rngs(dropout=key))[0]

  out = forward(params, jax.random.key(3))
  np.testing.assert_allclose(
      out, encoder(tokens, deterministic=False,
                   rngs=nnx.Rngs(dropout=jax.random.key(3)))[0], atol=1e-5)


def test_layer_overrides_cycle_over_layers(tiny):
  from efficient_transformers.models.encoder import layer_attention
  overrides = ({"axis": 0}, {"attention": "other", "k": 2})
  assert layer_attention("dense", {"w": 1}, overrides, 0) == ("dense", {"w": 1, "axis": 0})
  assert layer_attention("dense", {"w": 1}, overrides, 1) == ("other", {"k": 2})
  assert layer_attention("dense", {"w": 1}, overrides, 2) == ("dense", {"w": 1, "axis": 0})
  assert layer_attention("dense", {"w": 1}, None, 5) == ("dense", {"w": 1})
  encoder = Encoder(VOCAB, 8, layer_overrides=({}, {"attention": "nope"}),
                    rngs=nnx.Rngs(0), **{**tiny, "num_layers": 1})
  assert len(encoder.blocks) == 1  # layer 1 (the bad name) is never built
  with pytest.raises(ValueError, match="'nope'"):
    Encoder(VOCAB, 8, layer_overrides=({}, {"attention": "nope"}), rngs=nnx.Rngs(0),
            **{**tiny, "num_layers": 2})

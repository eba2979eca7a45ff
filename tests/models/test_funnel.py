"""Funnel-Transformer downsampling (models/funnel.py): pooled lengths, mask
pooling consistent with padding, errors for unsupported settings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers import models
from efficient_transformers.models import funnel as funnel_lib


def _jit_call(module, *args, **kwargs):
  return nnx.jit(lambda m, *a: m(*a, **kwargs))(module, *args)


def test_pool_sequence_known_answers():
  x = jnp.arange(1.0, 6.0)[None, :, None]  # [1, 5, 1]: 1 2 3 4 5
  full = jnp.ones((1, 5), bool)
  mean, mask = funnel_lib.pool_sequence(x, full, stride=2, pooling="mean")
  np.testing.assert_allclose(mean[0, :, 0], [1.5, 3.5, 5.0])  # ceil mode
  np.testing.assert_array_equal(mask[0], [True, True, True])
  biggest, _ = funnel_lib.pool_sequence(x, full, stride=2, pooling="max")
  np.testing.assert_allclose(biggest[0, :, 0], [2.0, 4.0, 5.0])
  # Padding inside a window is ignored; a window of padding is masked, zero.
  padded = jnp.array([[True, True, True, False, False]])
  for pooling, expected in (("mean", [1.5, 3.0, 0.0]), ("max", [2.0, 3.0, 0.0])):
    pooled, mask = funnel_lib.pool_sequence(x, padded, stride=2, pooling=pooling)
    np.testing.assert_allclose(pooled[0, :, 0], expected)
    np.testing.assert_array_equal(mask[0], [True, True, False])  # any real input
  # A separate CLS stays first; a constant sequence pools to the constant.
  const = jnp.full((1, 6, 1), 7.0).at[0, 0, 0].set(-1.0)
  pooled, mask = funnel_lib.pool_sequence(const, jnp.ones((1, 6), bool), stride=3,
                                          pooling="mean", keep_first=True)
  np.testing.assert_allclose(pooled[0, :, 0], [-1.0, 7.0, 7.0])
  assert mask.shape == (1, 3)


@pytest.mark.slow
@pytest.mark.parametrize("pooling,stride,expected", [
    ("cls", 2, (9, 5, 3)),   # CLS + 8 -> CLS + 4 -> CLS + 2
    ("mean", 3, (8, 3, 1)),  # 8 -> ceil(8 / 3) -> 1
])
def test_pooled_lengths_as_configured(tiny, tokens, pooling, stride, expected):
  config = dict(tiny, num_layers=3, pooling=pooling,
                funnel={"block_sizes": (1, 1, 1), "stride": stride})
  model = models.build(config, head="classifier", vocab_size=10, num_classes=3,
                       max_length=8, rngs=nnx.Rngs(0))
  assert models.stage_lengths(model, 8) == expected
  hidden, mask = _jit_call(model.encoder.encoder, tokens, deterministic=True)
  assert hidden.shape == (2, expected[-1], tiny["emb_dim"]) and mask.shape == (2, expected[-1])


@pytest.mark.slow
@pytest.mark.parametrize("head_pooling,funnel_pooling", [("cls", "max"), ("mean", "mean")])
def test_padding_changes_nothing(tiny, tokens, head_pooling, funnel_pooling):
  """Padded states, and appended padding, change no real output."""
  config = dict(tiny, num_layers=2, pooling=head_pooling,
                funnel={"block_sizes": (1, 1), "pooling": funnel_pooling})
  model = models.build(config, head="classifier", vocab_size=10, num_classes=3,
                       max_length=12, rngs=nnx.Rngs(0))
  # Second row: 5 real tokens, so one pooling window holds a real token and
  # a padded one (with or without CLS in front).
  short = tokens.at[1, 5:].set(0)
  forward = nnx.jit(lambda m, t: m(t, deterministic=True))
  np.testing.assert_allclose(forward(model, jnp.pad(short, ((0, 0), (0, 4)))),
                             forward(model, short), rtol=1e-5, atol=1e-6)
  # The pooled layer itself: noise on padded hidden states is invisible.
  encoder = model.encoder.encoder
  length = 8 + encoder.use_cls
  mask = jnp.arange(length)[None, :] < jnp.array([[length], [5 + encoder.use_cls]])
  x = jax.random.normal(jax.random.key(0), (2, length, tiny["emb_dim"]))
  noise = jax.random.normal(jax.random.key(1), x.shape) * 10 * ~mask[..., None]

  def pooled_layer(x):
    query, query_mask = funnel_lib.pool_stage(x, mask, encoder.funnel, use_cls=encoder.use_cls)
    out = encoder.blocks[1](x, mask=mask, query=query, query_mask=query_mask,
                            deterministic=True)
    return out, query_mask

  (clean, query_mask), (noisy, _) = jax.jit(pooled_layer)(x), jax.jit(pooled_layer)(x + noise)
  real = np.asarray(query_mask)
  assert real[1].sum() == real[0].sum() - 1  # one all-padding window
  np.testing.assert_allclose(np.asarray(clean)[real], np.asarray(noisy)[real],
                             rtol=1e-5, atol=1e-5)


def test_errors():
  sizes = dict(num_layers=2, emb_dim=16, num_heads=2, mlp_dim=32)
  with pytest.raises(ValueError, match="sum to 3 layers"):
    models.build(dict(sizes, attention="dense", funnel={"block_sizes": (2, 1)}),
                 head="classifier", vocab_size=10, num_classes=3, max_length=8,
                 rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="cannot be causal"):
    models.build(dict(sizes, attention="dense", funnel={"block_sizes": (1, 1)}),
                 head="causal_lm", vocab_size=10, num_classes=3, max_length=8,
                 rngs=nnx.Rngs(0))
  model = models.build(dict(sizes, attention="local", attention_kw={"block_size": 4},
                            funnel={"block_sizes": (1, 1)}),
                       head="classifier", vocab_size=10, num_classes=3, max_length=8,
                       rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="funnel: attention 'local' failed in layer 1"):
    jax.eval_shape(lambda t: model(t, deterministic=True), jnp.ones((1, 8), jnp.int32))


@pytest.mark.parametrize("num_layers, stages, expected", [
    (4, 2, (2, 2)), (3, 2, (1, 2)), (1, 2, (1,)), (5, 3, (1, 2, 2)), (12, 2, (6, 6))])
def test_split_layers(num_layers, stages, expected):
  assert funnel_lib.split_layers(num_layers, stages) == expected

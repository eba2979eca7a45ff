"""Longformer's global projections in the attention layer (MECHANISM_MODULES)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from efficient_transformers import attention
from efficient_transformers.models.attention_layer import AttentionLayer
from efficient_transformers.models.longformer_projections import (
    LongformerGlobalProjections)

OPTIONS = {"window": 2, "num_global": 2}


def _layer():
  return AttentionLayer(16, 2, attention="longformer", attention_kw=OPTIONS,
                        rngs=nnx.Rngs(0))


def _plain(layer, x, mask):
  """The layer's output when the global rows use the ordinary projections."""
  split = lambda t: t.reshape(*t.shape[:2], 2, 8)
  q, k, v = (split(x @ p.kernel[...]) for p in (layer.query, layer.key, layer.value))
  out = attention.longformer(q, k, v, mask=mask, **OPTIONS)
  return out.reshape(*x.shape[:2], 16) @ layer.out.kernel[...]


def test_layer_owns_global_projections_forward_backward():
  layer = _layer()
  assert isinstance(layer.mechanism, LongformerGlobalProjections)
  x = jax.random.normal(jax.random.key(0), (2, 9, 16))
  mask = jnp.arange(9)[None] < jnp.array([[9], [6]])
  out = layer(x, mask=mask)
  assert out.shape == x.shape and bool(jnp.all(jnp.isfinite(out)))
  # Independent global projections change the global rows only.
  plain = _plain(layer, x, mask)
  assert float(jnp.abs(out[:, :2] - plain[:, :2]).max()) > 1e-3
  grads = nnx.grad(lambda m: m(x, mask=mask).sum())(layer)
  for name in ("query_global", "key_global", "value_global"):
    kernel = getattr(grads.mechanism, name).kernel[...]
    assert bool(jnp.all(jnp.isfinite(kernel))) and float(jnp.abs(kernel).max()) > 0


def test_equal_global_projections_give_the_plain_layer():
  layer = _layer()
  for mine, ordinary in (("query_global", layer.query), ("key_global", layer.key),
                         ("value_global", layer.value)):
    getattr(layer.mechanism, mine).kernel[...] = ordinary.kernel[...]
  x = jax.random.normal(jax.random.key(1), (2, 9, 16))
  mask = jnp.arange(9)[None] < jnp.array([[9], [4]])
  np.testing.assert_allclose(layer(x, mask=mask), _plain(layer, x, mask),
                             rtol=1e-5, atol=1e-5)


def test_no_global_tokens_passes_nothing():
  layer = AttentionLayer(16, 2, attention="longformer",
                         attention_kw={"window": 2, "num_global": 0},
                         rngs=nnx.Rngs(0))
  x = jnp.ones((1, 5, 16))
  assert layer.mechanism(x, x, deterministic=True, rngs=None) == {}

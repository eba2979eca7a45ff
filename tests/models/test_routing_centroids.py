"""RoutingCentroids: EMA k-means state updated in training only, the
commitment loss as an aux loss, gradients to the projections."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers.attention.routing import normalize
from efficient_transformers.models import AttentionLayer
from efficient_transformers.models.routing_centroids import SMOOTHING, RoutingCentroids
from efficient_transformers.models.variables import call_with_aux_loss

KW = {"num_clusters": 3, "window": 5, "commitment_weight": 0.5, "ema_decay": 0.9}


def layer(**kw):
  return AttentionLayer(16, 2, attention="routing", attention_kw={**KW, **kw},
                        max_length=12, rngs=nnx.Rngs(0))


def inputs():
  x = jax.random.normal(jax.random.key(1), (2, 12, 16))
  mask = jnp.arange(12)[None] < jnp.array([[12], [9]])
  return x, mask


def test_centroids_change_in_training_only():
  model, (x, mask) = layer(), inputs()
  before = np.asarray(model.mechanism.centroids[...])
  _, aux = call_with_aux_loss(model, x, mask=mask, deterministic=True)
  np.testing.assert_array_equal(model.mechanism.centroids[...], before)
  assert float(aux) == 0.0  # nothing sown at evaluation
  _, aux = call_with_aux_loss(model, x, mask=mask, deterministic=False,
                              rngs=nnx.Rngs(dropout=0))
  assert not np.allclose(model.mechanism.centroids[...], before)
  assert float(aux) > 0.0
  # Centroids are model state, not parameters: the optimiser never sees them.
  assert not jax.tree.leaves(nnx.state(model.mechanism, nnx.Param))


def test_ema_update_and_commitment_loss_by_hand():
  heads, dim = 1, 4
  module = RoutingCentroids(emb_dim=8, num_heads=heads, head_dim=dim, max_length=None,
                            attention_kw=KW, rngs=nnx.Rngs(3))
  mus = np.asarray(module.centroids[...])[0]
  q = jax.random.normal(jax.random.key(4), (1, 6, heads, dim))
  k = jax.random.normal(jax.random.key(5), (1, 6, heads, dim))
  mask = jnp.array([[True] * 5 + [False]])
  _, aux = call_with_aux_loss(module, None, None, q=q, k=k, mask=mask,
                              deterministic=False)
  points = np.concatenate([np.asarray(normalize(q))[0, :5, 0], np.asarray(normalize(k))[0, :5, 0]])
  nearest = np.argmax(points @ mus.T, axis=-1)
  counts = np.bincount(nearest, minlength=3)
  sums = np.stack([points[nearest == c].sum(0) for c in range(3)])
  sizes = 0.9 * 1.0 + 0.1 * counts
  new_sums = 0.9 * mus + 0.1 * sums
  total = sizes.sum()
  smoothed = (sizes + SMOOTHING) / (total + 3 * SMOOTHING) * total
  np.testing.assert_allclose(module.centroids[...][0], new_sums / smoothed[:, None],
                             rtol=1e-5, atol=1e-6)
  commitment = np.mean((points - mus[nearest]) ** 2)
  np.testing.assert_allclose(aux, 0.5 * commitment, rtol=1e-5)


def param_grads(model, loss):
  """Gradients of loss(model) w.r.t. every nnx.Param (other state held fixed)."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  # Fresh copies of the other state inside the trace, where a training call
  # may update it.
  copy = lambda r: jax.tree.map(jnp.asarray, r)
  return jax.grad(lambda p: loss(nnx.merge(graphdef, p, copy(rest))))(params)


def test_gradients_reach_projections():
  model, (x, mask) = layer(), inputs()
  weights = jax.random.normal(jax.random.key(2), x.shape)
  grads = param_grads(model, lambda m: jnp.sum(m(x, mask=mask, causal=True) * weights))
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert np.all(np.isfinite(g)) and np.any(np.asarray(g) != 0), path


def test_commitment_loss_trains_the_query_and_key_projections():
  model, (x, mask) = layer(), inputs()

  def aux(m):
    return call_with_aux_loss(m, x, mask=mask, deterministic=False,
                              rngs=nnx.Rngs(dropout=0))[1]

  grads = param_grads(model, aux)
  assert np.any(np.asarray(grads["query"]["kernel"][...]) != 0)
  assert np.any(np.asarray(grads["key"]["kernel"][...]) != 0)


def test_rejects_bad_options():
  with pytest.raises(ValueError, match="num_clusters"):
    layer(num_clusters=0)
  with pytest.raises(ValueError, match="ema_decay"):
    layer(ema_decay=1.0)

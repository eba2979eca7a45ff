"""SinkhornSorter: gradients reach the sorting network, the causal layer sees
no future token (through the sort either), Gumbel noise only in training and
only from the call's rngs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers.models import AttentionLayer


def layer(**kw):
  return AttentionLayer(16, 2, attention="sinkhorn",
                        attention_kw={"block_size": 4, **kw}, max_length=12,
                        rngs=nnx.Rngs(0))


X = jax.random.normal(jax.random.key(1), (2, 12, 16))
MASK = jnp.arange(12)[None] < jnp.array([[12], [10]])


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True])
def test_gradients_reach_the_sorting_network(causal):
  model = layer()
  graphdef, params = nnx.split(model, nnx.Param)
  weights = jax.random.normal(jax.random.key(2), X.shape)

  def loss(p):
    return jnp.sum(nnx.merge(graphdef, p)(X, mask=MASK, causal=causal) * weights)

  grads = jax.grad(loss)(params)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    name = jax.tree_util.keystr(path)
    assert np.all(np.isfinite(g)), name
    assert np.any(np.asarray(g) != 0), f"no gradient reaches {name}"
  assert "mechanism" in str(jax.tree_util.tree_structure(grads))


def test_causal_layer_does_not_see_the_future():
  """Row i of the layer's output gets no gradient from inputs j > i, also
  through the sort logits (SortNet summaries) and the Sinkhorn balancing."""
  model = layer()
  for i in (0, 3, 5, 8, 11):
    cot = jnp.zeros_like(X).at[:, i].set(1.0)
    _, pullback = jax.vjp(lambda x: model(x, causal=True), X)
    (dx,) = pullback(cot)
    leak = np.abs(np.asarray(dx)[:, i + 1:]).max(initial=0.0)
    assert leak == 0.0, f"row {i} receives gradient {leak} from the future"
    assert np.abs(np.asarray(dx)[:, :i + 1]).max() > 0


def test_gumbel_noise_in_training_only():
  model = layer()
  train = lambda seed: model(X, mask=MASK, deterministic=False, rngs=nnx.Rngs(dropout=seed))
  np.testing.assert_array_equal(train(0), train(0))
  assert not np.allclose(train(0), train(1))
  evaluation = model(X, mask=MASK)
  np.testing.assert_array_equal(evaluation, model(X, mask=MASK))
  assert not np.allclose(evaluation, train(0))
  quiet = layer(gumbel_noise=False)
  np.testing.assert_array_equal(
      quiet(X, mask=MASK), quiet(X, mask=MASK, deterministic=False, rngs=nnx.Rngs(dropout=3)))


def test_errors():
  with pytest.raises(ValueError, match="max_length"):
    AttentionLayer(16, 2, attention="sinkhorn", attention_kw={"block_size": 4},
                   rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="block_size"):
    layer(block_size=None)
  with pytest.raises(ValueError, match="more than"):
    layer()(jnp.zeros((1, 13, 16)))
  with pytest.raises(ValueError, match="needs rngs"):
    layer()(X, deterministic=False)

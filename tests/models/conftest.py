"""Shared tiny sizes and checks for the model tests (keep them small: 2 cores).

All tests use token length 8 (12 where padding is appended) so that eagerly
compiled operations are shared across tests.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

TINY = dict(num_layers=1, emb_dim=16, num_heads=2, mlp_dim=32,
            attention="dense", dropout_rate=0.1)


@pytest.fixture
def tiny():
  """Encoder keyword arguments of a tiny model."""
  return dict(TINY)


@pytest.fixture
def tokens():
  """int [2, 8] with trailing padding (id 0) in the second row."""
  return jnp.array([[3, 1, 4, 1, 5, 9, 2, 6],
                    [5, 3, 5, 8, 9, 7, 0, 0]], jnp.int32)


def _grads(model, call):
  """Gradients of a random projection of call(model) w.r.t. every Param."""
  graphdef, params = nnx.split(model, nnx.Param)

  def loss(params):
    out = call(nnx.merge(graphdef, params))
    weights = jax.random.normal(jax.random.key(1), out.shape)
    return jnp.sum(out * weights)

  return jax.grad(loss)(params)


@pytest.fixture
def check_gradients():
  """Asserts finite gradients, nonzero somewhere in every Param leaf.

  `allowed_zero` lists path fragments of leaves that legitimately get none.
  """

  def check(model, call, allowed_zero=()):
    grads = _grads(model, call)
    leaves = jax.tree_util.tree_leaves_with_path(grads)
    assert leaves
    for path, g in leaves:
      name = jax.tree_util.keystr(path)
      g = np.asarray(g)
      assert np.all(np.isfinite(g)), name
      if not any(fragment in name for fragment in allowed_zero):
        assert np.any(g != 0), f"no gradient reaches {name}"

  return check

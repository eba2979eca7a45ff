"""The NNX parameters of linformer, performer, synthesizer and nystromformer
(MECHANISM_MODULES): built, called through AttentionLayer, trained or not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers.models.attention_layer import AttentionLayer

CASES = {
    "linformer": {"low_rank": 4},
    "linformer_per_head": {"low_rank": 4, "share_kv": False,
                           "share_heads": False},
    "performer": {"num_features": 16},
    "performer_relu": {"kernel": "relu", "num_features": 0},
    "synthesizer_dense": {},
    "synthesizer_dense_factorized": {"factor_sizes": (3, 4)},
    "synthesizer_random": {},
    "synthesizer_random_factorized": {"num_factors": 3},
    "synthesizer_random_fixed": {"trainable": False},
    "nystromformer": {"num_landmarks": 4, "conv_kernel_size": 3},
}


def _layer(case):
  name = case.replace("_per_head", "").replace("_relu", "")
  for suffix in ("_factorized", "_fixed"):
    name = name.replace(suffix, "")
  return AttentionLayer(16, 2, attention=name, attention_kw=CASES[case],
                        max_length=12, rngs=nnx.Rngs(0))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_layer_runs_and_is_padding_invariant(case):
  layer = _layer(case)
  x = jax.random.normal(jax.random.key(1), (2, 10, 16))
  mask = jnp.arange(10)[None] < jnp.array([[7], [10]])
  out = layer(x, mask=mask)
  assert out.shape == x.shape and bool(jnp.all(jnp.isfinite(out)))
  x2 = jnp.where(mask[..., None], x, 5.0)  # other values at padded positions
  np.testing.assert_allclose(layer(x2, mask=mask)[mask], out[mask], rtol=1e-4, atol=1e-5)
  grads = nnx.grad(lambda m: jnp.sum(m(x, mask=mask) ** 2))(layer)
  if layer.mechanism is not None and case not in ("performer", "performer_relu",
                                                  "synthesizer_random_fixed"):
    leaves = jax.tree.leaves(nnx.state(grads["mechanism"]))
    assert leaves and any(np.any(np.asarray(g) != 0) for g in leaves), case


def test_fixed_weights_are_not_parameters():
  for case in ("performer", "synthesizer_random_fixed"):
    layer = _layer(case)
    assert not jax.tree.leaves(nnx.state(layer.mechanism, nnx.Param)), case
    # Nothing but parameters: the training loop's nnx.split(model, nnx.Param).
    assert len(jax.tree.leaves(nnx.state(layer))) == len(
        jax.tree.leaves(nnx.state(layer, nnx.Param)))


def test_performer_features_fixed_at_eval_redrawn_in_training():
  x = jax.random.normal(jax.random.key(1), (1, 6, 16))
  fixed = _layer("performer")
  assert np.array_equal(fixed(x), fixed(x))
  layer = AttentionLayer(16, 2, attention="performer",
                         attention_kw={"num_features": 16, "redraw": True},
                         rngs=nnx.Rngs(0))
  a = layer(x, deterministic=False, rngs=nnx.Rngs(dropout=0))
  b = layer(x, deterministic=False, rngs=nnx.Rngs(dropout=1))
  c = layer(x, deterministic=False, rngs=nnx.Rngs(dropout=0))
  assert not np.allclose(a, b) and np.array_equal(a, c)
  np.testing.assert_array_equal(layer(x), layer(x))  # eval: fixed features


def test_linformer_needs_max_length_and_long_enough_projections():
  with pytest.raises(ValueError, match="max_length"):
    AttentionLayer(16, 2, attention="linformer", attention_kw={}, rngs=nnx.Rngs(0))
  layer = _layer("linformer")
  with pytest.raises(ValueError, match="cover 12 positions"):
    layer(jnp.ones((1, 13, 16)))

"""Reversible stack (custom backward = autodiff), its flat memory in depth,
chunked feed-forward, remat, and the Reformer layer (shared QK, hash rng)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers.models import reversible
from efficient_transformers.models.attention_layer import AttentionLayer
from efficient_transformers.models.encoder import Encoder
from efficient_transformers.models.heads import Classifier

REFORMER = dict(attention="reformer",
                attention_kw={"shared_qk": True, "num_buckets": 2, "chunk_size": 4,
                              "num_hashes": 2})


def _stack_grads(encoder, tokens, *, recompute, dropout, ffn_chunk_size=None):
  graphdef, params = nnx.split(encoder, nnx.Param)
  weights = jax.random.normal(jax.random.key(1), tokens.shape + (16,))

  def loss(params):
    model = nnx.merge(graphdef, params)
    x = model.embedder(tokens, deterministic=True)
    rngs = nnx.Rngs(dropout=jax.random.key(3)) if dropout else None
    y = reversible.reversible_stack(
        model.blocks, x, mask=tokens != 0, deterministic=not dropout, rngs=rngs,
        ffn_chunk_size=ffn_chunk_size, recompute=recompute)
    return jnp.sum(y * weights), y

  return jax.jit(jax.grad(loss, has_aux=True))(params)


# Identical layers take the scanned path; a local/dense mix the unrolled one.
MIXED = dict(layer_overrides=({"attention": "local", "block_size": 4}, {}))


@pytest.mark.slow
@pytest.mark.parametrize("layers", ["reformer", "mixed"])
def test_reversible_gradients_equal_autodiff(tiny, tokens, layers):
  """The recomputing backward pass equals plain autodiff of the same stack:
  the mixed stack without dropout, with a chunked feed-forward; the Reformer
  stack with dropout (the recomputation redraws the same dropout masks and
  hash rotations)."""
  kw = dict(tiny, **(dict(num_layers=2, **REFORMER) if layers == "reformer"
                     else dict(num_layers=3, **MIXED)))
  encoder = Encoder(10, 8, reversible=True, rngs=nnx.Rngs(0), **kw)
  call = (dict(dropout=True) if layers == "reformer"
          else dict(dropout=False, ffn_chunk_size=3))
  grads, out = _stack_grads(encoder, tokens, recompute=True, **call)
  ref_grads, ref_out = _stack_grads(encoder, tokens, recompute=False, **call)
  np.testing.assert_allclose(out, ref_out, rtol=1e-6, atol=1e-6)
  leaves = jax.tree_util.tree_leaves_with_path(grads)
  assert len(leaves) == len(jax.tree.leaves(ref_grads))
  for (path, g), r in zip(leaves, jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5,
                               err_msg=jax.tree_util.keystr(path))
    if "final_norm" not in jax.tree_util.keystr(path):  # unused here
      assert np.any(np.asarray(r) != 0), jax.tree_util.keystr(path)


def test_chunked_feed_forward_changes_nothing(tiny, tokens):
  kw = dict(tiny, num_layers=2)
  whole = Encoder(10, 8, reversible=True, rngs=nnx.Rngs(0), **kw)
  chunked = Encoder(10, 8, reversible=True, ffn_chunk_size=3, rngs=nnx.Rngs(0), **kw)
  np.testing.assert_allclose(chunked(tokens, deterministic=True)[0],
                             whole(tokens, deterministic=True)[0], rtol=1e-6, atol=1e-6)


def _train_step_temp_bytes(num_layers, **flags):
  model = Classifier(16, 128, num_classes=4, num_layers=num_layers, emb_dim=32,
                     num_heads=2, mlp_dim=64, attention="dense",
                     attention_kw={"impl": "xla"}, dropout_rate=0.0,
                     rngs=nnx.Rngs(0), **flags)
  graphdef, params = nnx.split(model, nnx.Param)

  def loss(params, tokens, key):
    logits = nnx.merge(graphdef, params)(tokens, deterministic=False,
                                         rngs=nnx.Rngs(dropout=key))
    return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[:, 0])

  tokens = jax.ShapeDtypeStruct((4, 128), jnp.int32)
  compiled = jax.jit(jax.grad(loss)).lower(params, tokens, jax.random.key(0)).compile()
  return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.slow
def test_reversible_memory_flat_in_depth():
  """Compiled temporary memory of a training step (loss gradient) from 2 to 12
  layers: flat for the reversible stack, growing for the ordinary one."""
  ordinary = [_train_step_temp_bytes(n) for n in (2, 12)]
  rev = [_train_step_temp_bytes(n, reversible=True) for n in (2, 12)]
  assert ordinary[1] > 3 * ordinary[0], ordinary
  assert rev[1] < 1.6 * rev[0], rev
  assert rev[1] < ordinary[1] / 3, (rev, ordinary)


@pytest.mark.slow
def test_remat_same_outputs_and_gradients(tiny, tokens):
  kw = dict(tiny, num_layers=1)
  plain = Encoder(10, 8, rngs=nnx.Rngs(0), **kw)
  remat = Encoder(10, 8, remat=True, rngs=nnx.Rngs(0), **kw)

  def grads(model):
    graphdef, params = nnx.split(model, nnx.Param)

    def loss(params):
      hidden, _ = nnx.merge(graphdef, params)(
          tokens, deterministic=False, rngs=nnx.Rngs(dropout=jax.random.key(2)))
      return jnp.sum(hidden * jnp.arange(16.0)), hidden

    return jax.jit(jax.grad(loss, has_aux=True))(params)

  (g1, h1), (g2, h2) = grads(plain), grads(remat)
  np.testing.assert_allclose(h1, h2, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_option_errors(tiny):
  with pytest.raises(ValueError, match="remat"):
    Encoder(10, 8, reversible=True, remat=True, rngs=nnx.Rngs(0), **tiny)
  with pytest.raises(ValueError, match="reversible=True"):
    Encoder(10, 8, ffn_chunk_size=4, rngs=nnx.Rngs(0), **tiny)
  with pytest.raises(ValueError, match="cross-attention"):
    Encoder(10, 8, reversible=True, cross_attention=True, rngs=nnx.Rngs(0), **tiny)


@pytest.mark.slow
def test_reformer_layer_shared_qk_and_hash_rng(check_gradients):
  layer = AttentionLayer(16, 2, rngs=nnx.Rngs(0), **REFORMER)
  assert layer.key is None and "shared_qk" not in dict(layer.attention_options)
  x = jax.random.normal(jax.random.key(0), (2, 16, 16))
  evaluate = lambda: layer(x, deterministic=True)
  np.testing.assert_array_equal(evaluate(), evaluate())  # fixed hash at evaluation
  train = lambda seed: layer(x, deterministic=False,
                             rngs=nnx.Rngs(dropout=jax.random.key(seed)))
  np.testing.assert_array_equal(train(1), train(1))
  assert not np.allclose(train(1), train(2))  # fresh rotations per step
  with pytest.raises(ValueError, match="rngs"):
    layer(x, deterministic=False)
  check_gradients(layer, lambda m: m(x, deterministic=True))

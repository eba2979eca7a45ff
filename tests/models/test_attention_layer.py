import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from efficient_transformers import attention
from efficient_transformers.models import attention_layer
from efficient_transformers.models.attention_layer import AttentionLayer


def _inputs():
  x = jax.random.normal(jax.random.key(0), (2, 8, 16))
  context = jax.random.normal(jax.random.key(1), (2, 12, 16))
  return x, context


def test_matches_projections_around_dense():
  layer = AttentionLayer(16, 2, rngs=nnx.Rngs(0))
  x, context = _inputs()
  mask = jnp.arange(12)[None] < jnp.array([[12], [5]])
  out = layer(x, context, mask=mask)
  assert out.shape == (2, 8, 16)
  q = (x @ layer.query.kernel[...]).reshape(2, 8, 2, 8)
  k = (context @ layer.key.kernel[...]).reshape(2, 12, 2, 8)
  v = (context @ layer.value.kernel[...]).reshape(2, 12, 2, 8)
  expected = attention.dense(q, k, v, mask=mask).reshape(2, 8, 16)
  np.testing.assert_allclose(out, expected @ layer.out.kernel[...], atol=1e-5)


def test_self_attention_default_context_and_causal():
  layer = AttentionLayer(16, 2, rngs=nnx.Rngs(0))
  x, _ = _inputs()
  np.testing.assert_allclose(layer(x), layer(x, x), atol=1e-6)
  causal = layer(x, causal=True)
  changed = layer(x.at[:, 3:].set(0.0), causal=True)
  np.testing.assert_allclose(causal[:, :3], changed[:, :3], atol=1e-6)


def test_qkv_dim_not_divisible():
  with pytest.raises(ValueError, match="qkv_dim 10.*num_heads 4"):
    AttentionLayer(16, 4, qkv_dim=10, rngs=nnx.Rngs(0))


def test_unknown_attention_fails_at_construction():
  with pytest.raises(ValueError, match="no_such_attention.*dense"):
    AttentionLayer(16, 2, attention="no_such_attention", rngs=nnx.Rngs(0))


def test_attention_kw_reaches_mechanism_and_accepts_configdict(monkeypatch):
  seen = {}

  def recording(q, k, v, *, mask=None, causal=False, **options):
    seen.update(options)
    return attention.dense(q, k, v, mask=mask, causal=causal)

  monkeypatch.setitem(attention.REGISTRY, "recording", recording)
  kw = ml_collections.ConfigDict({"block_size": 4, "shape": [2, 3]})
  layer = AttentionLayer(16, 2, attention="recording", attention_kw=kw,
                         rngs=nnx.Rngs(0))
  layer(_inputs()[0])
  assert seen == {"block_size": 4, "shape": (2, 3)}
  hash(nnx.graphdef(layer))  # static structure stays hashable for jax.jit


def test_array_option_rejected():
  with pytest.raises(ValueError, match="proj_k"):
    AttentionLayer(16, 2, attention_kw={"proj_k": jnp.ones((4, 2))},
                   rngs=nnx.Rngs(0))


class _Projections(nnx.Module):
  """A toy mechanism module: one learned [kv_len, k] projection."""

  layer_options = ("unused_by_function",)

  def __init__(self, *, emb_dim, num_heads, head_dim, max_length, attention_kw, rngs):
    self.proj = nnx.Param(
        jax.random.normal(rngs.params(), (max_length, attention_kw["k_dim"])))

  def __call__(self, x, context, *, deterministic, rngs):
    return {"proj": self.proj[:context.shape[1]]}


def test_mechanism_module_extension_point(monkeypatch):
  def projected(q, k, v, *, mask=None, causal=False, proj, k_dim):
    k = jnp.einsum("btnh,tk->bknh", k, proj)
    v = jnp.einsum("btnh,tk->bknh", v, proj)
    assert k.shape[1] == k_dim
    return attention.dense(q, k, v)

  monkeypatch.setitem(attention.REGISTRY, "projected", projected)
  monkeypatch.setitem(attention_layer.MECHANISM_MODULES, "projected",
                      _Projections)
  layer = AttentionLayer(16, 2, attention="projected",
                         attention_kw={"k_dim": 3, "unused_by_function": 1},
                         max_length=12, rngs=nnx.Rngs(0))
  x, context = _inputs()
  assert layer(x, context).shape == (2, 8, 16)
  assert isinstance(layer.mechanism, _Projections)
  grads = nnx.grad(lambda m: jnp.sum(m(x, context) ** 2))(layer)
  assert np.any(np.asarray(grads["mechanism"]["proj"][...]) != 0)

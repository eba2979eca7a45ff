"""Transformer-XL and the Compressive Transformer: relative shift, segment
recurrence, stop-gradient memory, eval memory length, compression (tiny sizes)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers import models
from efficient_transformers.attention import masks
from efficient_transformers.models import relative_attention as rel
from efficient_transformers.models.transformer_xl import TransformerXL
from efficient_transformers.models.variables import call_with_aux_loss

L, B = 8, 2
SIZES = dict(num_layers=1, emb_dim=16, num_heads=2, mlp_dim=32, dropout_rate=0.0)


def _model(max_length=L, **kw):
  return TransformerXL(257, max_length, rngs=nnx.Rngs(0), **{**SIZES, **kw})


def _same_params(model, source):
  nnx.update(model, nnx.state(source, nnx.All(
      nnx.Param, nnx.Not(nnx.PathContains("compressors")))))
  return model


def _segments(num):
  tokens = np.random.default_rng(0).integers(1, 257, (B, num * L))
  return jnp.asarray(tokens, jnp.int32)


@pytest.mark.slow
@pytest.mark.parametrize("mem_len", [0, L])
def test_rel_shift_equals_direct_relative_logits(mem_len):
  # The models' shapes (heads 2, head_dim 8), so eager ops are compiled once.
  kq, kk, kr, ku = jax.random.split(jax.random.key(0), 4)
  q = jax.random.normal(kq, (B, L, 2, 8))
  k = jax.random.normal(kk, (B, L + mem_len, 2, 8))
  r = jax.random.normal(kr, (L + mem_len, 2, 8))  # distances K-1, ..., 0
  u, v = jax.random.normal(ku, (2, 2, 8))
  shifted = rel.relative_logits(q, k, r, u, v)
  direct = rel.relative_logits_direct(q, k, r[::-1], u, v)
  valid = masks.causal_pairs(L, L + mem_len)  # j <= mem_len + i
  assert not np.allclose(np.asarray(shifted), np.asarray(direct))  # garbage above
  np.testing.assert_allclose(np.asarray(shifted)[..., valid],
                             np.asarray(direct)[..., valid], rtol=1e-5, atol=1e-5)


def test_two_segments_with_memory_equal_one_long_forward():
  tokens = _segments(2)
  xl = _model(mem_len=L, batch_size=B, num_layers=2)  # layer 2's memory: layer 1's output
  long = _same_params(_model(max_length=2 * L, num_layers=2), xl)
  expected = long(tokens, deterministic=True)
  first = xl(tokens[:, :L], deterministic=True)
  assert int(xl.memory_filled[...]) == L
  second = xl(tokens[:, L:], deterministic=True)
  np.testing.assert_allclose(first, expected[:, :L], atol=2e-5)
  np.testing.assert_allclose(second, expected[:, L:], atol=2e-5)


def test_eval_mem_len_longer_than_training():
  tokens = _segments(2)
  xl = _model(mem_len=2, eval_mem_len=L, batch_size=B)
  long = _same_params(_model(max_length=2 * L), xl)
  expected = long(tokens, deterministic=True)[:, L:]
  state = nnx.state(xl, nnx.Cache)
  xl(tokens[:, :L], deterministic=True)
  np.testing.assert_allclose(xl(tokens[:, L:], deterministic=True), expected, atol=2e-5)
  nnx.update(xl, state)  # Empty memory again; training attends to 2 memories.
  rngs = nnx.Rngs(dropout=0)
  xl(tokens[:, :L], deterministic=False, rngs=rngs)
  trained = xl(tokens[:, L:], deterministic=False, rngs=rngs)
  assert not np.allclose(trained, expected, atol=1e-3)


def test_mem_len_zero_is_a_stateless_causal_transformer():
  tokens = _segments(2)
  plain = _model()
  assert plain.memory_size == 0 and not len(plain.memory)
  fresh = plain(tokens[:, L:], deterministic=True)
  plain(tokens[:, :L], deterministic=True)
  np.testing.assert_array_equal(plain(tokens[:, L:], deterministic=True), fresh)
  changed = tokens[:, L:].at[:, 5].set(7)  # position 5 changes: 0..4 do not.
  out = plain(changed, deterministic=True)
  np.testing.assert_array_equal(out[:, :5], fresh[:, :5])
  assert not np.allclose(out[:, 5:], fresh[:, 5:])
  assert plain(tokens[:1, :L], deterministic=True).shape == (1, L, 257)  # any batch


def test_without_relative_terms_equals_the_zoo_causal_lm():
  """u = v = 0 and W_R = 0: CausalLM (dense, causal, no positions), same weights."""
  tokens = _segments(1)
  xl = _model()
  for block in xl.blocks:
    for name in ("content_bias", "position_bias"):
      getattr(block.attention, name)[...] = jnp.zeros((2, 8))
    block.attention.position.kernel[...] = jnp.zeros((16, 16))
  lm = models.CausalLM(257, L, rngs=nnx.Rngs(1), attention="dense",
                       position="none", **SIZES)
  xl_params = dict(nnx.to_flat_state(nnx.state(xl, nnx.Param)))
  lm_params = nnx.to_flat_state(nnx.state(lm, nnx.Param))
  copied = [(path, xl_params[path[1:] if path[0] == "decoder" else path])
            for path, _ in lm_params]
  nnx.update(lm, nnx.from_flat_state(copied))
  np.testing.assert_allclose(xl(tokens, deterministic=True),
                             lm(tokens, deterministic=True), atol=2e-5)


def test_empty_memory_slots_are_masked():
  tokens = _segments(1)
  xl = _model(mem_len=L, batch_size=B)
  plain = _same_params(_model(), xl)
  np.testing.assert_allclose(xl(tokens, deterministic=True),
                             plain(tokens, deterministic=True), atol=2e-5)


def test_no_gradient_flows_into_memory():
  tokens = _segments(2)
  xl = _model(mem_len=L, batch_size=B)
  graphdef, params, state = nnx.split(xl, nnx.Param, ...)
  weights = jax.random.normal(jax.random.key(1), (B, L, 257))

  def stored_memory(params, state):
    model = nnx.merge(graphdef, params, state, copy=True)
    model(tokens[:, :L], deterministic=True)
    return sum(jnp.sum(m[...]) for m in model.memory)

  grads = jax.jit(jax.grad(stored_memory))(params, state)
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads))

  def second_segment_loss(params, state, run_first):
    model = nnx.merge(graphdef, params, state, copy=True)
    if run_first:
      model(tokens[:, :L], deterministic=True)
    return jnp.sum(model(tokens[:, L:], deterministic=True) * weights)

  grad_fn = jax.jit(jax.grad(second_segment_loss), static_argnums=2)
  inside = grad_fn(params, state, True)
  model = nnx.merge(graphdef, params, state, copy=True)
  model(tokens[:, :L], deterministic=True)  # memory computed outside the grad
  outside = grad_fn(params, nnx.state(model, nnx.Not(nnx.Param)), False)
  for a, b in zip(jax.tree.leaves(inside), jax.tree.leaves(outside)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _identity_compression(model):
  for compressor in model.compressors:
    compressor.conv.kernel[...] = jnp.eye(16)[None]


def test_compressive_with_identity_rate_1_equals_longer_xl_memory():
  tokens = _segments(3)
  comp = _model(mem_len=L, cmem_len=L, compression_rate=1, batch_size=B)
  _identity_compression(comp)
  xl = _same_params(_model(mem_len=2 * L, batch_size=B), comp)
  rngs = nnx.Rngs(dropout=0)
  for t in range(3):
    segment = tokens[:, t * L:(t + 1) * L]
    out, aux = call_with_aux_loss(comp, segment, deterministic=False, rngs=rngs)
    np.testing.assert_allclose(out, xl(segment, deterministic=False, rngs=rngs),
                               atol=2e-5)
    assert float(aux) == pytest.approx(0.0, abs=1e-10)


def test_compressed_memory_lengths_and_reconstruction_loss():
  tokens = _segments(3)
  comp = _model(mem_len=L, cmem_len=6, compression_rate=2, batch_size=B)
  assert comp.compressed_memory[0][...].shape == (B, 6, 16)
  graphdef, params, state = nnx.split(comp, nnx.Param, ...)
  filled = []

  @jax.jit
  def step(params, state, segment):
    def loss(params):
      model = nnx.merge(graphdef, params, state, copy=True)
      _, aux = call_with_aux_loss(model, segment, deterministic=False,
                                  rngs=nnx.Rngs(dropout=0))
      return aux, nnx.state(model, nnx.Not(nnx.Param))
    return jax.value_and_grad(loss, has_aux=True)(params)

  for t in range(3):
    (value, state), grads = step(params, state, tokens[:, t * L:(t + 1) * L])
    model = nnx.merge(graphdef, params, state, copy=True)
    filled.append((int(model.memory_filled[...]), int(model.compressed_filled[...])))
    if t == 0:  # Nothing real was evicted yet.
      assert float(value) == 0.0
    else:  # The loss trains the compression only.
      assert float(value) > 0.0
      for path, g in jax.tree_util.tree_leaves_with_path(grads):
        name = jax.tree_util.keystr(path)
        assert np.any(np.asarray(g) != 0) == ("compressors" in name), name
  assert filled == [(L, 0), (L, 4), (L, 6)]


def test_build_and_errors():
  config = dict(SIZES, attention="dense", position="relative", mem_len=4,
                cmem_len=4, compression_rate=2, batch_size=B, moe=None)
  model = models.build(config, head="transformer_xl", vocab_size=257,
                       num_classes=257, max_length=L, rngs=nnx.Rngs(0))
  assert isinstance(model, TransformerXL) and model.cmem_len == 4
  with pytest.raises(ValueError, match="batch_size=2 streams"):
    model(_segments(1)[:1], deterministic=True)
  with pytest.raises(ValueError, match="model.batch_size"):
    _model(mem_len=4)
  with pytest.raises(ValueError, match="position='relative'"):
    _model(position="sinusoidal")
  with pytest.raises(ValueError, match="eval_mem_len == mem_len"):
    _model(mem_len=4, eval_mem_len=8, cmem_len=4, batch_size=B)
  with pytest.raises(ValueError, match="does not support"):
    _model(moe={"num_experts": 2})

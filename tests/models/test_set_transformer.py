"""Set Transformer blocks (models/set_transformer.py) and PMA pooling in heads:
PMA with one seed is a weighted mean pooling; padding invariance; permutation
equivariance (SAB, ISAB) and invariance (PMA); gradients reach inducing points
and seeds; the `isab` encoder with PMA pooling end to end."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers import models
from efficient_transformers.models import heads
from efficient_transformers.models.set_transformer import ISAB, MAB, PMA, SAB

DIM, HEADS = 8, 2


def _set(seed, batch=2, n=6):
  x = jax.random.normal(jax.random.key(seed), (batch, n, DIM))
  mask = jnp.array([[True] * n, [True] * (n - 2) + [False] * 2])[:batch]
  return x, mask


def _jit(module, method):
  """method(module, *arrays), jitted: far cheaper on CPU than eager ops."""
  graphdef, state = nnx.split(module)
  fn = jax.jit(lambda state, *args: method(nnx.merge(graphdef, state), *args))
  return lambda *args: fn(state, *args)


def _assert_gradients_everywhere(module, call):
  """Finite gradients, nonzero somewhere in every Param leaf (jitted version
  of conftest's check_gradients)."""
  graphdef, params = nnx.split(module, nnx.Param)

  def loss(params):
    out = call(nnx.merge(graphdef, params))
    return jnp.sum(out * jax.random.normal(jax.random.key(1), out.shape))

  grads = jax.jit(jax.grad(loss))(params)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    g = np.asarray(g)
    name = jax.tree_util.keystr(path)
    assert np.all(np.isfinite(g)) and np.any(g != 0), f"no gradient reaches {name}"


def _softmax(x, axis=-1):
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def test_pma_with_one_seed_is_a_weighted_mean_pooling():
  """PMA_1(Z) = MAB(s, rFF(Z)); its attention, head j, is
  sum_i w_ji (rFF(z_i) W_v)_j with w_j = softmax_i((s W_q)_j . (rFF(z_i) W_k)_j
  / sqrt(d / heads)) over the real elements only: a weighted mean. The rest
  of PMA is the MAB's residual, LayerNorms and rFF on that one vector."""
  pma = PMA(DIM, HEADS, num_seeds=1, mlp_dim=16, rngs=nnx.Rngs(0))
  z, mask = _set(1)

  def pieces(pma, z, mask):
    r = pma.rff(z)
    seeds = jnp.broadcast_to(pma.seeds[...][None], (2, 1, DIM))
    return (pma.mab.query(seeds[0]), pma.mab.key(r), pma.mab.value(r),
            pma.mab.multihead(seeds, r, mask), pma(z, mask=mask))

  q, k, v, multihead, out = (np.asarray(x) for x in _jit(pma, pieces)(z, mask))
  split = lambda t: t.reshape(t.shape[:-1] + (HEADS, DIM // HEADS))
  logits = np.einsum("nh,bsnh->bns", split(q)[0], split(k)) / math.sqrt(DIM // HEADS)
  logits = np.where(np.asarray(mask)[:, None, :], logits, -np.inf)
  w = _softmax(logits)                                            # [B, N, n]
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
  assert np.all(w[1, :, -2:] == 0)                                # padding
  pooled = np.einsum("bns,bsnh->bnh", w, split(v)).reshape(2, 1, DIM)

  def rest(pma, pooled):
    attended = pma.mab.out(pooled)
    h = pma.mab.attention_norm(pma.seeds[...][None] + attended)
    return attended, pma.mab.rff_norm(h + pma.mab.rff(h))

  attended, expected = _jit(pma, rest)(jnp.asarray(pooled))
  np.testing.assert_allclose(multihead, attended, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_pma_with_constant_keys_is_mean_pooling():
  """Zero key projection: every logit is 0, the weights are uniform over the
  real elements, and the attention is the plain mean of rFF(z_i) W_v."""
  pma = PMA(DIM, HEADS, num_seeds=1, rngs=nnx.Rngs(0))
  pma.mab.key.kernel[...] = jnp.zeros((DIM, DIM))
  z, mask = _set(2)

  def both(pma, z, mask):
    r = pma.rff(z)
    seeds = jnp.broadcast_to(pma.seeds[...][None], (2, 1, DIM))
    real = mask[..., None]
    mean = (pma.mab.value(r) * real).sum(1, keepdims=True) / real.sum(1, keepdims=True)
    return pma.mab.multihead(seeds, r, mask), pma.mab.out(mean)

  attended, expected = _jit(pma, both)(z, mask)
  np.testing.assert_allclose(attended, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: SAB(DIM, HEADS, rngs=nnx.Rngs(0)),
    lambda: ISAB(DIM, HEADS, num_inducing=3, rngs=nnx.Rngs(0)),
    lambda: PMA(DIM, HEADS, num_seeds=2, rngs=nnx.Rngs(0)),
], ids=["sab", "isab", "pma"])
def test_padding_invariance_and_permutations(make):
  """Padded elements change nothing; SAB and ISAB are permutation equivariant,
  PMA invariant."""
  block = make()
  apply = _jit(block, lambda block, x, mask: block(x, mask=mask))
  x, mask = _set(3)
  out = apply(x, mask)
  noisy = jnp.where(mask[..., None], x, 10.0 * jax.random.normal(jax.random.key(9), x.shape))
  out_noisy = apply(noisy, mask)
  real = np.asarray(mask)
  if isinstance(block, PMA):
    np.testing.assert_allclose(out, out_noisy, rtol=1e-5, atol=1e-5)
  else:
    np.testing.assert_allclose(np.asarray(out)[real], np.asarray(out_noisy)[real],
                               rtol=1e-5, atol=1e-5)
  perm = np.array([3, 0, 5, 1, 4, 2])
  out_perm = apply(x[:, perm], mask[:, perm])
  expected = out if isinstance(block, PMA) else out[:, perm]
  np.testing.assert_allclose(out_perm, expected, rtol=1e-5, atol=1e-5)


def test_isab_summary_ignores_padding_and_has_m_rows():
  isab = ISAB(DIM, HEADS, num_inducing=3, rngs=nnx.Rngs(0))
  x, mask = _set(4)
  summary = _jit(isab, lambda isab, x, mask: isab.summary(x, mask=mask))
  padded = summary(x, mask)
  assert padded.shape == (2, 3, DIM)
  np.testing.assert_allclose(padded[1:], summary(x[1:, :4], mask[1:, :4]),
                             rtol=1e-5, atol=1e-5)


def test_gradients_reach_inducing_points_and_seeds():
  class Both(nnx.Module):
    def __init__(self):
      self.isab = ISAB(DIM, HEADS, num_inducing=3, rngs=nnx.Rngs(0))
      self.pma = PMA(DIM, HEADS, num_seeds=2, rngs=nnx.Rngs(1))

  x, mask = _set(5)
  _assert_gradients_everywhere(Both(), lambda m: m.pma(m.isab(x, mask=mask), mask=mask))


def test_mab_without_layer_norm_and_cross_sizes():
  mab = MAB(DIM, HEADS, layer_norm=False, rngs=nnx.Rngs(0))
  x, _ = _set(6, n=3)
  y, mask = _set(7, n=5)
  out = _jit(mab, lambda mab, x, y, mask: mab(x, y, mask=mask))(x, y, mask)
  assert out.shape == (2, 3, DIM) and np.all(np.isfinite(out))
  assert mab.attention_norm is None and mab.rff_norm is None


@pytest.mark.slow
def test_isab_classifier_with_pma_pooling(tiny, tokens):
  """attention "isab" (inducing points as a mechanism module) + PMA pooling:
  appended padding changes nothing, and every parameter, inducing points and
  seeds included, gets a gradient."""
  config = dict(tiny, attention="isab", attention_kw={"num_inducing": 3},
                pooling="pma", pma_seeds=2)
  model = models.build(config, head="classifier", vocab_size=10, num_classes=3,
                       max_length=12, rngs=nnx.Rngs(0))
  encoder = model.encoder
  assert encoder.out_dim == 2 * tiny["emb_dim"]
  assert encoder.encoder.blocks[0].attention.mechanism.inducing.shape == (3, 2, 8)
  apply = _jit(model, lambda model, tokens: model(tokens, deterministic=True))
  logits = apply(tokens)
  assert logits.shape == (2, 3)
  padded = jnp.pad(tokens, ((0, 0), (0, 4)))
  np.testing.assert_allclose(apply(padded), logits, rtol=1e-5, atol=1e-5)
  _assert_gradients_everywhere(model, lambda m: m(tokens, deterministic=True))


def test_pma_pooling_in_pool_raises():
  with pytest.raises(ValueError, match="PooledEncoder"):
    heads.pool(jnp.zeros((1, 2, 4)), jnp.ones((1, 2), bool), "pma")

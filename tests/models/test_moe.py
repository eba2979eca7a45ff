"""Mixture-of-Experts FFN (models/moe.py): routing against a per-token loop,
capacity dropping, auxiliary losses, the one-expert limit, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efficient_transformers import models
from efficient_transformers.models import moe as moe_lib
from efficient_transformers.models.block import Block
from efficient_transformers.models.encoder import Encoder
from efficient_transformers.models.variables import AuxLoss, call_with_aux_loss

EMB, MLP = 16, 32  # conftest TINY's sizes: shared compiled initialisers


def _jit_call(module, *args, **kwargs):
  """module(*args, **kwargs) under one nnx.jit (fewer compilations than eager)."""
  return nnx.jit(lambda m, *a: m(*a, **kwargs))(module, *args)


def _loop_route(probs, mask, num_selected, capacity, keep_second=None):
  """Per-token reference of route(): first come first served, top-1 first;
  gates renormalised over both choices even when the second is not kept."""
  g_, s_, e_ = probs.shape
  combine = np.zeros((g_, s_, e_, capacity))
  for g in range(g_):
    count = np.zeros(e_, int)
    firsts, seconds = {}, {}
    for s in range(s_):
      if not mask[g, s]:
        continue
      order = np.argsort(-probs[g, s], kind="stable")
      firsts[s] = order[0]
      if num_selected == 2 and e_ > 1:
        seconds[s] = order[1]
    norm = {s: probs[g, s, firsts[s]] + (probs[g, s, seconds[s]] if s in seconds else 0.0)
            for s in firsts}
    if keep_second is not None:
      seconds = {s: e for s, e in seconds.items() if keep_second[g, s]}
    if num_selected == 1:
      norm = {s: 1.0 for s in firsts}
    for choices in (firsts, seconds):  # all first choices, then second ones
      for s, e in choices.items():
        if count[e] < capacity:
          combine[g, s, e, count[e]] = probs[g, s, e] / norm[s]
          count[e] += 1
  return combine


@pytest.mark.parametrize("num_selected,random_second", [(1, False), (2, False), (2, True)])
def test_route_matches_per_token_loop(num_selected, random_second):
  rng = np.random.default_rng(0)
  probs = jax.nn.softmax(rng.normal(size=(2, 7, 3)) * 2, axis=-1)
  mask = rng.random((2, 7)) > 0.25
  keep = rng.random((2, 7)) > 0.5 if random_second else None  # GShard's random policy
  capacity = 2  # well under 7 tokens per group: drops happen
  combine, dispatch = moe_lib.route(probs, jnp.asarray(mask), num_selected=num_selected,
                                    capacity=capacity,
                                    keep_second_GxS=None if keep is None else jnp.asarray(keep))
  expected = _loop_route(np.asarray(probs), mask, num_selected, capacity, keep)
  np.testing.assert_allclose(combine, expected, rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(dispatch, expected > 0)
  assert expected.sum(axis=(1, 2, 3)).min() > 0 and (expected > 0).sum() < mask.sum() * num_selected


def _moe(num_experts=3, router="top1", **options):
  moe = {"num_experts": num_experts, "router": router, **options}
  return moe_lib.MoEFeedForward(EMB, MLP, moe=moe, dropout_rate=0.0, rngs=nnx.Rngs(0))


def _expert_mlp(layer, e, x):
  h = jax.nn.gelu(x @ layer.wi[...][e] + layer.bi[...][e])
  return h @ layer.wo[...][e] + layer.bo[...][e]


@pytest.mark.slow
@pytest.mark.parametrize("router", ["top1", "top2"])
def test_layer_matches_per_token_loop(router):
  """y(token) = Σ over its kept experts of gate · expert_mlp(token), groups across the batch."""
  layer = _moe(router=router, group_size=6, capacity_factor_eval=0.75)
  x = jax.random.normal(jax.random.key(1), (2, 5, EMB))
  mask = jnp.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], bool)
  y = _jit_call(layer, x, mask=mask, deterministic=True)
  k = moe_lib.ROUTERS[router]
  capacity = moe_lib.expert_capacity(6, 3, k, 0.75)
  flat_x = np.pad(np.asarray(x).reshape(10, EMB), ((0, 2), (0, 0)))  # 2 groups of 6
  flat_mask = np.pad(np.asarray(mask).reshape(10), (0, 2))
  probs = np.asarray(jax.nn.softmax(flat_x @ np.asarray(layer.router[...]), -1))
  combine = _loop_route(probs.reshape(2, 6, 3), flat_mask.reshape(2, 6), k, capacity)
  combine = combine.reshape(12, 3, capacity).sum(-1)
  expected = np.zeros((12, EMB))
  for t in range(10):
    for e in range(3):
      if combine[t, e]:
        expected[t] += combine[t, e] * np.asarray(_expert_mlp(layer, e, flat_x[t]))
  np.testing.assert_allclose(y.reshape(10, EMB), expected[:10], rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(y)[~np.asarray(mask)] == 0)  # padding: no expert


@pytest.mark.slow
def test_over_capacity_dropped_by_position_and_passed_through_residual():
  block = Block(EMB, 2, MLP, dropout_rate=0.0, rngs=nnx.Rngs(0),
                moe={"num_experts": 2, "capacity_factor_eval": 0.5, "every": 1})
  # Every token prefers expert 0 (its router logit is the sum of the MoE
  # input, made positive by a large LayerNorm bias); capacity =
  # ceil(0.5 * 8 * 1 / 2) = 2.
  block.moe.router[...] = jnp.zeros((EMB, 2)).at[:, 0].set(1.0)
  block.mlp_norm.bias[...] = jnp.full((EMB,), 10.0)
  x = jnp.abs(jax.random.normal(jax.random.key(2), (1, 8, EMB)))
  mask = jnp.ones((1, 8), bool).at[0, 0].set(False)  # padding takes no capacity
  y = _jit_call(block.moe, x, mask=mask, deterministic=True)
  kept = np.abs(np.asarray(y[0])).sum(-1) > 0
  np.testing.assert_array_equal(kept, [False, True, True] + [False] * 5)
  out = _jit_call(block, x, mask=mask, deterministic=True)
  after_attention = x + _jit_call(block.attention, block.attention_norm(x), mask=mask)
  np.testing.assert_allclose(out[0, 3:], after_attention[0, 3:], rtol=1e-5, atol=1e-5)
  assert not np.allclose(out[0, 1:3], after_attention[0, 1:3])


@pytest.mark.slow
def test_aux_losses_are_sown_in_training_only():
  layer = _moe(num_experts=4, load_balance_weight=0.5, z_loss_weight=0.25, router="top2",
               second_expert_policy="random", router_jitter=0.01)  # training-only paths
  layer.router[...] = jnp.zeros_like(layer.router[...])  # uniform router
  x = jax.random.normal(jax.random.key(3), (2, 4, EMB))
  captured = nnx.jit(lambda m, x, r, train: nnx.capture(m, AuxLoss)(
      x, deterministic=not train, rngs=r), static_argnums=3)
  _, sown = captured(layer, x, nnx.Rngs(dropout=0), False)
  assert not jax.tree.leaves(sown)  # evaluation sows nothing
  _, sown = captured(layer, x, nnx.Rngs(dropout=0), True)
  assert set(sown) == {"moe_load_balance", "moe_router_z"}
  # Uniform router: load balance E · Σ f_e / E = 1 exactly; z = log(E)².
  expected = 0.5 * 1.0 + 0.25 * np.log(4.0) ** 2
  total = sum(float(jnp.sum(v)) for v in jax.tree.leaves(sown))
  np.testing.assert_allclose(total, expected, rtol=1e-6)


@pytest.mark.slow
def test_aux_losses_of_a_model_reach_the_training_loss(tiny, tokens):
  model = models.build(dict(tiny, num_layers=2, moe={"num_experts": 2}), head="classifier",
                       vocab_size=10, num_classes=3, max_length=8, rngs=nnx.Rngs(0))
  _, aux = nnx.jit(lambda m, t, r: call_with_aux_loss(m, t, deterministic=False, rngs=r))(
      model, tokens, nnx.Rngs(dropout=0))
  assert float(aux) > 0
  assert not jax.tree.leaves(nnx.state(model, AuxLoss))  # nothing left in the model


@pytest.mark.slow
@pytest.mark.parametrize("router", ["top1", "top2"])
def test_one_expert_with_full_capacity_is_the_dense_mlp(router):
  moe = {"num_experts": 1, "router": router, "capacity_factor_eval": 1.0, "every": 1}
  sparse = Block(EMB, 2, MLP, dropout_rate=0.0, moe=moe, rngs=nnx.Rngs(0))
  dense = Block(EMB, 2, MLP, dropout_rate=0.0, rngs=nnx.Rngs(0))
  nnx.update(dense.attention, nnx.state(sparse.attention))
  dense.mlp_in.kernel[...] = sparse.moe.wi[...][0]
  dense.mlp_in.bias[...] = sparse.moe.bi[...][0]
  dense.mlp_out.kernel[...] = sparse.moe.wo[...][0]
  dense.mlp_out.bias[...] = sparse.moe.bo[...][0]
  x = jax.random.normal(jax.random.key(4), (2, 8, EMB))
  mask = jnp.ones((2, 8), bool).at[1, 6:].set(False)
  real = np.asarray(mask)
  np.testing.assert_allclose(np.asarray(_jit_call(sparse, x, mask=mask, deterministic=True))[real],
                             np.asarray(_jit_call(dense, x, mask=mask, deterministic=True))[real],
                             rtol=1e-5, atol=1e-6)


def test_gradients_reach_router_and_experts():
  layer = _moe(num_experts=2, router="top2")
  graphdef, params = nnx.split(layer, nnx.Param)
  x = jax.random.normal(jax.random.key(5), (2, 8, EMB))

  def loss(params):
    return jnp.sum(nnx.merge(graphdef, params)(x, deterministic=True) ** 2)

  grads = jax.jit(jax.grad(loss))(params)
  for name in ("router", "wi", "bi", "wo", "bo"):
    g = np.asarray(grads[name][...])
    assert np.all(np.isfinite(g)) and np.any(g != 0), name


def test_capacity_layers_and_sharding_names():
  assert moe_lib.expert_capacity(8, 4, 2, 1.25) == 5
  assert moe_lib.expert_capacity(8, 1, 2, 2.0) == 8  # at most the group
  encoder = Encoder(10, 8, num_layers=4, emb_dim=EMB, num_heads=2, mlp_dim=MLP,
                    moe={"num_experts": 2, "every": 2}, rngs=nnx.Rngs(0))
  assert [b.moe is not None for b in encoder.blocks] == [False, True, False, True]
  spec = nnx.get_partition_spec(nnx.state(encoder.blocks[1].moe, nnx.Param))
  assert spec["wi"].get_value() == jax.sharding.PartitionSpec("expert", None, None)
  assert spec["router"].get_value() == jax.sharding.PartitionSpec()
  total, activated = moe_lib.activated_params(encoder)
  dense = Encoder(10, 8, num_layers=4, emb_dim=EMB, num_heads=2, mlp_dim=MLP, rngs=nnx.Rngs(0))
  per_expert, router = 2 * EMB * MLP + MLP + EMB, EMB * 2
  assert activated == models.count_params(dense) + 2 * router  # top-1: one expert
  assert total == models.count_params(dense) + 2 * (router + per_expert)
  with pytest.raises(ValueError, match="num_experts"):
    moe_lib.moe_options({"router": "top1"})
  with pytest.raises(ValueError, match="unknown moe options"):
    moe_lib.moe_options({"num_experts": 2, "experts": 3})

"""train_step / eval_step: model state, auxiliary losses, per-token loss,
mixed precision and gradient accumulation, on small models."""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from efficient_transformers import models
from efficient_transformers.models.variables import add_aux_loss
from efficient_transformers.training import steps
from efficient_transformers.training.checkpoints import Checkpoints

MODEL = {"attention": "dense", "num_layers": 1, "emb_dim": 16, "num_heads": 2,
         "mlp_dim": 32, "dropout_rate": 0.0}


class Counting(nnx.Module):
  """Classifier-shaped toy: a BatchStat counts training calls, a Cache counts
  every call, and an aux loss of `aux_weight * sum(w**2)` is sown."""

  def __init__(self, aux_weight=0.0):
    self.w = nnx.Param(jnp.ones((3, 2)))
    self.calls = nnx.BatchStat(jnp.zeros((), jnp.int32))
    self.seen = nnx.Cache(jnp.zeros((), jnp.int32))
    self.aux_weight = aux_weight

  def __call__(self, inputs, *, deterministic, rngs=None):
    if not deterministic:
      self.calls[...] = self.calls[...] + 1
    self.seen[...] = self.seen[...] + 1
    add_aux_loss(self, "penalty", self.aux_weight * jnp.sum(self.w[...] ** 2))
    return jax.nn.one_hot(inputs[:, 0] % 3, 3) @ self.w[...]


def _batch(n=4):
  return {"inputs": jnp.arange(n * 2).reshape(n, 2), "targets": jnp.arange(n) % 2}


def _step(model, tx=None, **kw):
  tx = tx or optax.sgd(0.1)
  graphdef, state = steps.create_train_state(model, tx)
  fn = jax.jit(lambda s, b: steps.train_step(s, b, graphdef=graphdef, tx=tx,
                                             head="classifier", seed=0, **kw))
  return graphdef, state, fn


def test_model_state_is_carried_in_training_and_kept_in_evaluation():
  graphdef, state, fn = _step(Counting())
  for _ in range(3):
    state, _ = fn(state, _batch())
  assert int(state.model_state["calls"][...]) == 3
  sums, after = steps.eval_step(state.params, state.model_state, _batch(),
                                graphdef=graphdef, head="classifier")
  assert int(after["calls"][...]) == 3  # deterministic: running stats untouched
  assert int(after["seen"][...]) == 4  # caches advance in evaluation too
  assert int(steps.reset_caches(after)["seen"][...]) == 0
  assert int(steps.reset_caches(after)["calls"][...]) == 3


def test_aux_loss_is_added_to_the_loss_and_its_gradient_flows():
  plain = _step(Counting(0.0))
  penalised = _step(Counting(0.5))
  (_, s0, fn0), (_, s1, fn1) = plain, penalised
  new0, sums0 = fn0(s0, _batch())
  new1, sums1 = fn1(s1, _batch())
  np.testing.assert_allclose(sums1["aux_loss"], 0.5 * 6.0, rtol=1e-6)
  assert float(sums0["aux_loss"]) == 0.0
  # d/dw of 0.5 * sum(w^2) = w: SGD(0.1) moves the penalised weights 0.1 * w further.
  np.testing.assert_allclose(new0.params["w"][...] - new1.params["w"][...],
                             0.1 * np.ones((3, 2)), rtol=1e-5)


def test_checkpoints_keep_model_state(tmp_path):
  graphdef, state, fn = _step(Counting())
  state, _ = fn(state, _batch())
  ckpt = Checkpoints(str(tmp_path))
  ckpt.save_latest(state, {"best_step": 1})
  ckpt.save_best(1, state.params, state.model_state)
  _, template = steps.create_train_state(Counting(), optax.sgd(0.1))
  restored, meta = ckpt.restore_latest(template)
  assert int(restored.model_state["calls"][...]) == 1 and meta["best_step"] == 1
  params, model_state = ckpt.restore_best(template.params, template.model_state)
  assert int(model_state["calls"][...]) == 1
  np.testing.assert_array_equal(params["w"].value, state.params["w"][...])
  ckpt.close()


def _lm(**kw):
  return models.build(MODEL, head="causal_lm", vocab_size=11, num_classes=0,
                      max_length=8, rngs=nnx.Rngs(params=0))


@pytest.mark.slow
def test_per_token_targets_respect_target_weights():
  graphdef, params, model_state = steps.split_model(_lm())
  rng = np.random.default_rng(0)
  batch = {"inputs": jnp.asarray(rng.integers(1, 11, (2, 8))),
           "targets": jnp.asarray(rng.integers(1, 11, (2, 8))),
           "weights": jnp.array([1.0, 0.0])}
  full, _ = steps.eval_step(params, model_state, batch, graphdef=graphdef, head="causal_lm")
  assert float(full["count"]) == 8  # the padded row counts for nothing
  half = dict(batch, target_weights=jnp.asarray(np.arange(16).reshape(2, 8) < 4, jnp.float32))
  sums, _ = steps.eval_step(params, model_state, half, graphdef=graphdef, head="causal_lm")
  assert float(sums["count"]) == 4 and float(sums["loss"]) < float(full["loss"])


def _classifier():
  return models.build(MODEL, head="classifier", vocab_size=11, num_classes=3,
                      max_length=9, rngs=nnx.Rngs(params=0))


def _classification_batch(n=8):
  rng = np.random.default_rng(1)
  return {"inputs": jnp.asarray(rng.integers(1, 11, (n, 8))),
          "targets": jnp.asarray(rng.integers(0, 3, (n,)))}


@pytest.mark.slow
def test_gradient_accumulation_gives_the_whole_batch_gradient():
  batch = _classification_batch()
  results = []
  for k in (1, 4):
    _, state, fn = _step(_classifier(), tx=optax.sgd(1.0), grad_accum_steps=k)
    new, sums = fn(state, batch)
    results.append((new.params, sums))
  (p1, s1), (p4, s4) = results
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p4)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(s1["loss"], s4["loss"], rtol=1e-6)
  assert float(s4["count"]) == 8


def test_gradient_accumulation_must_divide_the_batch():
  _, state, fn = _step(_classifier(), grad_accum_steps=3)
  with pytest.raises(ValueError, match="grad_accum_steps=3"):
    fn(state, _classification_batch())


@pytest.mark.slow
def test_bfloat16_step_keeps_float32_params_and_tracks_float32_loss():
  batch = _classification_batch()
  out = {}
  for dtype in ("float32", "bfloat16"):
    _, state, fn = _step(_classifier(), tx=optax.adam(1e-3), dtype=dtype)
    new, sums = fn(state, batch)
    out[dtype] = (new, sums)
  new, sums = out["bfloat16"]
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(new.params))
  np.testing.assert_allclose(sums["loss"], out["float32"][1]["loss"], rtol=2e-2)
  assert float(sums["loss"]) != float(out["float32"][1]["loss"])  # really bf16

"""LRA's learning-rate schedules, against values worked out by hand."""

import math

from ml_collections import ConfigDict
import numpy as np
import optax
import pytest

from efficient_transformers.training.optimizer import make_optimizer, make_schedule


def _train_config(**overrides):
  values = dict(schedule="rsqrt", learning_rate=0.05, warmup_steps=1000,
                num_train_steps=5000, weight_decay=0.1, adam_b1=0.9, adam_b2=0.98,
                adam_eps=1e-9, grad_clip_norm=None)
  return ConfigDict({**values, **overrides})


def test_rsqrt_matches_lra_listops():
  # LRA ListOps: peak 0.05 / sqrt(1000) = 1.58e-3 at step 1000, 7.1e-4 at 5000.
  schedule = make_schedule(_train_config())
  assert float(schedule(0)) == 0.0
  assert float(schedule(500)) == pytest.approx(0.05 * 0.5 / math.sqrt(1000), rel=1e-6)
  assert float(schedule(1000)) == pytest.approx(1.5811e-3, rel=1e-4)
  assert float(schedule(5000)) == pytest.approx(0.05 / math.sqrt(5000), rel=1e-6)
  assert float(schedule(5000)) == pytest.approx(7.07e-4, rel=1e-3)


def test_cosine_warms_up_then_decays_to_zero():
  schedule = make_schedule(_train_config(schedule="cosine", learning_rate=1e-3,
                                         warmup_steps=100, num_train_steps=1100))
  assert float(schedule(50)) == pytest.approx(5e-4, rel=1e-5)
  assert float(schedule(100)) == pytest.approx(1e-3, rel=1e-5)
  assert float(schedule(600)) == pytest.approx(5e-4, rel=1e-4)  # half-way: cos(pi/2)
  assert float(schedule(1100)) == pytest.approx(0.0, abs=1e-9)


def test_unknown_schedule_lists_valid_ones():
  with pytest.raises(ValueError, match="'nope'.*rsqrt, cosine, constant"):
    make_schedule(_train_config(schedule="nope"))


def test_weight_decay_is_decoupled_and_scaled_by_the_learning_rate():
  # Zero gradient: Adam's update is 0, so only the decay moves the parameter:
  # p <- p - lr * weight_decay * p (AdamW; flax.optim.Adam's weight_decay too).
  tx = make_optimizer(_train_config(schedule="constant", warmup_steps=1,
                                    learning_rate=0.1, weight_decay=0.5))
  params = {"w": np.ones(3, np.float32)}
  state = tx.init(params)
  updates, _ = tx.update({"w": np.zeros(3, np.float32)}, state, params)
  np.testing.assert_allclose(optax.apply_updates(params, updates)["w"],
                             1 - 0.1 * 0.5 * 0.0, atol=1e-7)  # step 0: lr = 0
  updates, _ = tx.update({"w": np.zeros(3, np.float32)}, _, params)
  np.testing.assert_allclose(optax.apply_updates(params, updates)["w"],
                             1 - 0.1 * 0.5, rtol=1e-6)


def test_gradient_clipping_rescales_to_the_global_norm():
  """Clipped gradients (3, 4) -> (0.6, 0.8) update exactly like unclipped (0.6, 0.8)."""
  def run(clip, gradients):
    tx = make_optimizer(_train_config(schedule="constant", warmup_steps=1,
                                      learning_rate=1.0, weight_decay=0.0,
                                      grad_clip_norm=clip))
    params = {"w": np.zeros(2, np.float32)}
    state = tx.init(params)
    for g in gradients:
      updates, state = tx.update({"w": np.asarray(g, np.float32)}, state, params)
    return np.asarray(updates["w"])

  clipped = run(1.0, [(3.0, 4.0), (0.6, 0.8)])
  np.testing.assert_allclose(clipped, run(None, [(0.6, 0.8), (0.6, 0.8)]), rtol=1e-6)
  assert not np.allclose(run(None, [(3.0, 4.0), (0.6, 0.8)]), clipped, rtol=1e-3)

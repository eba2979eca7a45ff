"""Pure, jittable train and eval steps over NNX models split into (graphdef, params).

The model is carried as `params` (an nnx.State of nnx.Param) plus a static
graphdef; `nnx.merge` rebuilds it inside the step (the functional NNX style
recommended for small models). Dropout keys are derived from (seed, step), so a
resumed run draws exactly the same masks as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import flax
from flax import nnx
import jax
import jax.numpy as jnp
import optax

# Which batch arrays feed the model, by head (lra's arrays: inputs / inputs1, inputs2).
HEAD_INPUTS = {"classifier": ("inputs",), "matcher": ("inputs1", "inputs2")}


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any  # nnx.State of nnx.Param
  opt_state: Any


def _logits(graphdef, params, batch, head, *, deterministic, rngs=None):
  model = nnx.merge(graphdef, params)
  inputs = [batch[key] for key in HEAD_INPUTS[head]]
  return model(*inputs, deterministic=deterministic, rngs=rngs)


def _sums(logits, targets, weights):
  """Summed loss, correct predictions and example count (weights mask padding)."""
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return {"loss": jnp.sum(loss * weights), "correct": jnp.sum(correct * weights),
          "count": jnp.sum(weights)}


def train_step(state: TrainState, batch, *, graphdef, tx, head, seed):
  """One AdamW step on the mean cross-entropy; returns (state, metric sums)."""
  dropout_key = jax.random.fold_in(jax.random.key(seed), state.step)

  def loss_fn(params):
    logits = _logits(graphdef, params, batch, head, deterministic=False,
                     rngs=nnx.Rngs(dropout=dropout_key))
    sums = _sums(logits, batch["targets"], jnp.ones(logits.shape[0], jnp.float32))
    return sums["loss"] / sums["count"], sums

  grads, sums = jax.grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  sums["grad_norm"] = optax.tree.norm(grads)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), sums


def eval_step(params, batch, *, graphdef, head):
  """Metric sums over one (possibly padded) eval batch; `weights` marks real rows."""
  logits = _logits(graphdef, params, batch, head, deterministic=True)
  return _sums(logits, batch["targets"], batch["weights"])

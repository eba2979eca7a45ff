"""Pure, jittable train and eval steps over NNX models split into (graphdef, state).

The model is carried as three pieces (the functional NNX style recommended for
small models; see models/variables.py for the kinds):
  params       nnx.Param — trained by the optimiser;
  model_state  every other variable (nnx.BatchStat running statistics,
               nnx.Cache segment memory) — updated by the forward pass in
               training, carried between steps and checkpointed;
and a static graphdef; `nnx.merge` rebuilds the model inside the step. Auxiliary
losses sown during the forward pass (`AuxLoss`) are added to the training loss.

Mixed precision (`dtype="bfloat16"`): the float32 parameters are cast to bf16
for the forward and backward pass (bf16 activations and matmuls); attention
softmax statistics stay float32 inside every mechanism, logits are cast to
float32 before the loss, and gradients and optimiser state are float32.

Gradient accumulation (`grad_accum_steps=k`): the batch is cut into k equal
micro-batches processed one after another (`lax.scan`); the summed gradient is
exactly that of the whole batch's mean loss, with activation memory of one
micro-batch. Dropout keys are fold_in(fold_in(seed, step), micro-batch).

Dropout keys are derived from (seed, step), so a resumed run draws exactly the
same masks as an uninterrupted one.

Targets [B] (classification) give a per-example cross-entropy; targets [B, L]
(language modelling) a per-token one, weighted by an optional `target_weights`
[B, L]. Eval batches carry `weights` [B] (1 = real row, 0 = padding).
"""

from __future__ import annotations

from typing import Any

import flax
from flax import nnx
import jax
import jax.numpy as jnp
import optax

from efficient_transformers.models.variables import call_with_aux_loss

# Which batch arrays feed the model, by head (lra's arrays: inputs / inputs1, inputs2).
HEAD_INPUTS = {"classifier": ("inputs",), "matcher": ("inputs1", "inputs2"),
               "causal_lm": ("inputs",), "transformer_xl": ("inputs",)}
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any  # nnx.State of nnx.Param
  model_state: Any  # nnx.State of every other variable (often empty)
  opt_state: Any


def split_model(model: nnx.Module):
  """(graphdef, params, model_state) of a freshly built model."""
  return nnx.split(model, nnx.Param, ...)


def create_train_state(model: nnx.Module, tx: optax.GradientTransformation):
  """(graphdef, TrainState at step 0) for `model` and optimiser `tx`."""
  graphdef, params, model_state = split_model(model)
  return graphdef, TrainState(step=jnp.asarray(0, jnp.int32), params=params,
                              model_state=model_state, opt_state=tx.init(params))


def reset_caches(model_state):
  """model_state with every nnx.Cache zeroed (zero means empty memory)."""
  caches, rest = nnx.split_state(model_state, nnx.Cache, ...)
  return nnx.merge_state(jax.tree.map(jnp.zeros_like, caches), rest)


def _cast(params, dtype):
  if dtype == jnp.float32:
    return params
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating)
                      else x, params)


def _forward(graphdef, params, model_state, batch, head, *, deterministic, rngs=None,
             dtype=jnp.float32):
  """(float32 logits, summed aux loss, new model_state)."""
  # Fresh Variable objects at this trace level (a forward pass in training
  # assigns to them; NNX refuses to mutate Variables made at another level).
  model_state = jax.tree.map(lambda x: x, model_state)
  model = nnx.merge(graphdef, _cast(params, dtype), model_state)
  inputs = [batch[key] for key in HEAD_INPUTS[head]]
  logits, aux_loss = call_with_aux_loss(model, *inputs, deterministic=deterministic,
                                        rngs=rngs)
  _, _, new_model_state = nnx.state(model, nnx.Param, nnx.Intermediate, ...)
  return logits.astype(jnp.float32), aux_loss, new_model_state


def _weights(batch):
  """Per-target weights: `weights` [B] (eval padding) times `target_weights` [B, L]."""
  targets = batch["targets"]
  weights = batch.get("weights", jnp.ones(targets.shape[0], jnp.float32))
  if targets.ndim == 2:
    weights = weights[:, None] * batch.get("target_weights",
                                           jnp.ones(targets.shape, jnp.float32))
  return weights


def _sums(logits, targets, weights):
  """Summed loss, correct predictions and target count (weights mask padding)."""
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return {"loss": jnp.sum(loss * weights), "correct": jnp.sum(correct * weights),
          "count": jnp.sum(weights)}


def _micro_batches(batch, k):
  def split(x):
    if x.shape[0] % k:
      raise ValueError(f"batch of {x.shape[0]} rows cannot be cut into "
                       f"grad_accum_steps={k} equal micro-batches; make "
                       "config.train.batch_size a multiple of it")
    return x.reshape(k, x.shape[0] // k, *x.shape[1:])
  return jax.tree.map(split, batch)


def train_step(state: TrainState, batch, *, graphdef, tx, head, seed,
               dtype: str = "float32", grad_accum_steps: int = 1):
  """One optimiser step on the batch's mean loss (+ aux losses); (state, metric sums)."""
  compute_dtype = COMPUTE_DTYPES[dtype]
  step_key = jax.random.fold_in(jax.random.key(seed), state.step)
  total_count = jnp.sum(_weights(batch))

  def loss_fn(params, model_state, micro, key):
    logits, aux_loss, model_state = _forward(
        graphdef, params, model_state, micro, head, deterministic=False,
        rngs=nnx.Rngs(dropout=key), dtype=compute_dtype)
    sums = _sums(logits, micro["targets"], _weights(micro))
    sums["aux_loss"] = aux_loss / grad_accum_steps
    return sums["loss"] / total_count + sums["aux_loss"], (sums, model_state)

  grad_fn = jax.grad(loss_fn, has_aux=True)
  if grad_accum_steps == 1:
    grads, (sums, model_state) = grad_fn(state.params, state.model_state, batch, step_key)
  else:
    def accumulate(carry, xs):
      grads, sums, model_state = carry
      index, micro = xs
      g, (s, model_state) = grad_fn(state.params, model_state, micro,
                                    jax.random.fold_in(step_key, index))
      return (jax.tree.map(jnp.add, grads, g), jax.tree.map(jnp.add, sums, s),
              model_state), None

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    zero_sums = {k: jnp.zeros((), jnp.float32)
                 for k in ("loss", "correct", "count", "aux_loss")}
    (grads, sums, model_state), _ = jax.lax.scan(
        accumulate, (zeros, zero_sums, state.model_state),
        (jnp.arange(grad_accum_steps), _micro_batches(batch, grad_accum_steps)))
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  sums["grad_norm"] = optax.tree.norm(grads)
  return state.replace(step=state.step + 1, params=params, model_state=model_state,
                       opt_state=opt_state), sums


def eval_step(params, model_state, batch, *, graphdef, head, dtype: str = "float32"):
  """(metric sums over one eval batch, model_state after it).

  Running statistics are left unchanged by deterministic forward passes; nnx.Cache
  memory (Transformer-XL) advances, so ordered eval batches see their past.
  """
  logits, _, model_state = _forward(graphdef, params, model_state, batch, head,
                                    deterministic=True, dtype=COMPUTE_DTYPES[dtype])
  return _sums(logits, batch["targets"], _weights(batch)), model_state

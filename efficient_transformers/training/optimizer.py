"""AdamW with LRA's learning-rate schedules (optax).

LRA (google-research/long-range-arena, utils/train_utils.py) uses Adam with
decoupled weight decay (b1=0.9, b2=0.98, eps=1e-9) and one of two schedules:
- "rsqrt": base * min(1, step / warmup) / sqrt(max(step, warmup))
  ("constant * linear_warmup * rsqrt_decay"; the text and ListOps tasks),
- "cosine": linear warmup to `base`, then cosine decay to 0 at the last step
  ("constant * linear_warmup * cosine_decay"; image and Pathfinder).
"constant" (linear warmup, then `base`) is there for debugging.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

SCHEDULES = ("rsqrt", "cosine", "constant")


def rsqrt_schedule(base: float, warmup_steps: int) -> optax.Schedule:
  """LRA's linear warmup then inverse-square-root decay (note: the peak value is
  base / sqrt(warmup_steps), e.g. 0.05 / sqrt(1000) = 1.58e-3 for ListOps)."""
  warmup = max(int(warmup_steps), 1)

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    return base * jnp.minimum(1.0, step / warmup) / jnp.sqrt(jnp.maximum(step, warmup))

  return schedule


def make_schedule(train_config) -> optax.Schedule:
  name = train_config.schedule
  base = train_config.learning_rate
  warmup = train_config.warmup_steps
  if name == "rsqrt":
    return rsqrt_schedule(base, warmup)
  if name == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, base, warmup, max(train_config.num_train_steps, warmup + 1))
  if name == "constant":
    return optax.linear_schedule(0.0, base, max(warmup, 1))
  raise ValueError(f"unknown config.train.schedule {name!r}; valid: {', '.join(SCHEDULES)}")


def make_optimizer(train_config) -> optax.GradientTransformation:
  """AdamW(schedule) with optional global-norm clipping (`grad_clip_norm`)."""
  tx = optax.adamw(
      make_schedule(train_config),
      b1=train_config.adam_b1,
      b2=train_config.adam_b2,
      eps=train_config.adam_eps,
      weight_decay=train_config.weight_decay,
  )
  if train_config.get("grad_clip_norm"):
    tx = optax.chain(optax.clip_by_global_norm(train_config.grad_clip_norm), tx)
  return tx

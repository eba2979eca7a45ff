"""Checks that stop a bad config before anything is written to the workdir."""

from __future__ import annotations

import json
import os

from efficient_transformers import attention
from efficient_transformers.training.optimizer import SCHEDULES
import lra

DTYPES = ("float32", "bfloat16")  # training/steps.py COMPUTE_DTYPES


class ConfigError(ValueError):
  """A bad config or missing data, found before the workdir is touched."""

# Fields that may change when a run is resumed in the same workdir.
RESUMABLE_CHANGES = ("train.num_train_steps", "train.eval_every_steps",
                     "train.checkpoint_every_steps", "train.log_every_steps")


def check_config(config) -> None:
  """Raises ConfigError naming the bad value and the valid ones."""
  if config.task not in lra.TASKS:
    raise ConfigError(f"unknown config.task {config.task!r}; valid: {', '.join(sorted(lra.TASKS))}")
  if config.model.attention not in attention.REGISTRY:
    raise ConfigError(f"unknown config.model.attention {config.model.attention!r};"
                     f" registered: {', '.join(sorted(attention.REGISTRY))}")
  if config.train.schedule not in SCHEDULES:
    raise ConfigError(f"unknown config.train.schedule {config.train.schedule!r};"
                     f" valid: {', '.join(SCHEDULES)}")
  if config.train.dtype not in DTYPES:
    raise ConfigError(f"config.train.dtype {config.train.dtype!r} is not supported;"
                     f" valid: {', '.join(DTYPES)}")
  accum = int(config.train.get("grad_accum_steps", 1))
  if accum <= 0 or config.train.batch_size % accum:
    raise ConfigError(f"config.train.grad_accum_steps={accum} must be positive and divide"
                      f" config.train.batch_size={config.train.batch_size}")
  for field in ("batch_size", "eval_batch_size", "num_train_steps", "eval_every_steps",
                "checkpoint_every_steps", "log_every_steps"):
    if int(config.train[field]) <= 0:
      raise ConfigError(f"config.train.{field} must be positive, got {config.train[field]}")


def _flatten(d, prefix=""):
  out = {}
  for key, value in d.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def check_workdir_matches(config, workdir: str) -> None:
  """A workdir holding another run's config is not resumed with this one."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    old = _flatten(json.load(f))
  new = _flatten(json.loads(config.to_json()))
  changed = sorted(k for k in set(old) | set(new)
                   if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
  if changed:
    details = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
    raise ConfigError(
        f"{workdir} holds a run with a different config ({details}). Resuming"
        " would mix two experiments: use a new --workdir, or the old config.")

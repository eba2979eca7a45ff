"""The layout of a sweep: which runs it holds, where each one lives, its command.

A sweep root holds one workdir per run, `ROOT/{model}_{task}/seed{seed}`, made by
`python train.py --config=configs/{model}_{task}.py[:arg] --workdir=...
--config.seed=SEED --config.KEY=VALUE...`; a run is finished when its workdir
holds results.json. scripts/sweep.py runs them, scripts/results_table.py reads
them, scripts/gpu_queue_entries.py builds its training entries with `command`.
"""

from __future__ import annotations

import itertools
import os
import sys

from efficient_transformers import presets


def runs(models, tasks, seeds) -> list[tuple[str, str, int]]:
  """(model, task, seed) for every requested pair that has a config file.

  `models` / `tasks` may be ["all"]. Raises ValueError naming the valid values.
  """
  models = list(presets.MODELS) if list(models) == ["all"] else models
  for model in models:
    if model not in presets.MODELS:
      raise ValueError(f"unknown model {model!r}; valid: {', '.join(presets.MODELS)}")
  out = []
  for model, seed in itertools.product(models, seeds):
    for task in (presets.tasks_of(model) if list(tasks) == ["all"] else tasks):
      if task not in presets.tasks_of(model):
        raise ValueError(f"model {model!r} has no {task!r} config; its tasks:"
                         f" {', '.join(presets.tasks_of(model))}")
      out.append((model, task, int(seed)))
  return out


def config_path(model: str, task: str) -> str:
  """The config file, relative to the repository root."""
  return os.path.join("configs", f"{model}_{task}.py")


def workdir(root: str, model: str, task: str, seed: int) -> str:
  return os.path.join(root, f"{model}_{task}", f"seed{seed}")


def command(repo_root, root, model, task, seed, arg=None, overrides=()) -> list[str]:
  """argv of the run's train.py (run it with cwd=repo_root)."""
  config = config_path(model, task) + (f":{arg}" if arg else "")
  return [sys.executable, os.path.join(repo_root, "train.py"), f"--config={config}",
          f"--workdir={os.path.abspath(workdir(root, model, task, seed))}",
          f"--config.seed={seed}", *(f"--config.{kv}" for kv in overrides)]


def is_finished(root, model, task, seed) -> bool:
  return os.path.exists(os.path.join(workdir(root, model, task, seed), "results.json"))

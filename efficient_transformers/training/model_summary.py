"""A config's model without data or memory: for parameter counts and tracing.

`abstract_model(config)` builds the model a run of `config` would train, with
shapes only (nnx.eval_shape: no parameter memory, no data loading), using the
task's vocabulary and class count from its lra module. `parameter_report`
compares every model's parameter count with the Transformer's on the same task
(LRA's rule of thumb: within 10%).
"""

from __future__ import annotations

from flax import nnx

from efficient_transformers import models
from lra import byte_lm, image, listops, pathfinder, retrieval, text

TASK_MODULES = {"listops": listops, "text": text, "retrieval": retrieval, "image": image,
                "pathfinder": pathfinder, "pathx": pathfinder, "lm": byte_lm}


def head_of(config) -> str:
  """The head a run of `config` uses (as the training loop picks it)."""
  if config.model.get("head"):
    return config.model.head
  if config.task == "lm":
    return "causal_lm"
  return "matcher" if config.task == "retrieval" else "classifier"


def abstract_model(config) -> nnx.Module:
  task = TASK_MODULES[config.task]
  return nnx.eval_shape(lambda: models.build(
      config.model, head=head_of(config), vocab_size=task.VOCAB_SIZE,
      num_classes=getattr(task, "NUM_CLASSES", 0), max_length=config.data.max_length,
      rngs=nnx.Rngs(params=0)))


def parameter_report(make_config, model_names, tasks) -> list[dict]:
  """One record per (model, task): num_params and its ratio to the Transformer's.

  `make_config(model, task)` returns the config (e.g. presets.make).
  """
  records = []
  for task in tasks:
    reference = models.count_params(abstract_model(make_config("transformer", task)))
    for model in model_names:
      count = models.count_params(abstract_model(make_config(model, task)))
      records.append({"model": model, "task": task, "num_params": count,
                      "ratio_to_transformer": count / reference,
                      "within_10_percent": abs(count / reference - 1) <= 0.10})
  return records

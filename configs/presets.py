"""Task defaults and model presets that every configs/{model}_{task}.py combines.

TASKS holds LRA's released hyperparameters per task
(google-research/long-range-arena@cd31e5c, lra_benchmarks/<task>/configs/);
MODELS holds each model's attention and its options. QUICK holds, per task, the
overrides of `get_config("quick")`: a small offline run for this CPU.
See shared notes in docs/ and the config files' docstrings for sources.
"""

from __future__ import annotations

import copy

from ml_collections import config_dict

TASKS = {
    "listops": {
        # lra_benchmarks/listops/configs/base_listops_config.py (after 8d3dc39)
        # + transformer_base.py. The schedule is the function default that
        # listops/train.py really uses: constant * linear_warmup * rsqrt_decay,
        # warmup 1000 (the peak rate is 0.05 / sqrt(1000) = 1.58e-3).
        "data": {"source": "lra_release", "max_length": 2000,
                 "num_train_examples": 96_000,
                 "generator": {"seed": 0, "num_eval_examples": 2_000,
                               "min_length": 500, "max_depth": 10, "max_args": 10}},
        "model": {"num_layers": 4, "emb_dim": 512, "qkv_dim": 512, "mlp_dim": 1024,
                  "num_heads": 8, "dropout_rate": 0.1, "position": "sinusoidal",
                  "pooling": "cls"},
        "train": {"batch_size": 32, "learning_rate": 0.05, "schedule": "rsqrt",
                  "warmup_steps": 1000, "weight_decay": 0.1, "num_train_steps": 5000,
                  "eval_every_steps": 50, "checkpoint_every_steps": 500},
    },
}

QUICK = {
    # ListOps on generated data, short sequences, a small model: about five
    # minutes on 2 CPU cores, and clearly above the majority-class rate.
    "listops": {
        "data": {"source": "generated", "max_length": 128, "num_train_examples": 20_000,
                 "generator": {"num_eval_examples": 1_000, "min_length": 32,
                               "max_depth": 6}},
        "model": {"num_layers": 2, "emb_dim": 64, "qkv_dim": 64, "mlp_dim": 128,
                  "num_heads": 4, "dropout_rate": 0.1},
        "train": {"batch_size": 32, "learning_rate": 0.05, "warmup_steps": 200,
                  "num_train_steps": 2000, "eval_every_steps": 200,
                  "checkpoint_every_steps": 500, "log_every_steps": 100,
                  "eval_batch_size": 250},
    },
}

MODELS = {
    # Vaswani et al. 2017: full softmax attention, LRA's "Transformer" row.
    # impl "chunked" is exact and O(L) in memory; "xla" is the quadratic form,
    # "cudnn" the fused GPU kernel (bf16) -- see attention/dense.py.
    "transformer": {"attention": "dense", "attention_kw": {"impl": "chunked"}},
}

TRAIN_DEFAULTS = {
    # Adam as in every LRA train.py: b1 0.9, b2 0.98, eps 1e-9, decoupled decay.
    "adam_b1": 0.9, "adam_b2": 0.98, "adam_eps": 1e-9,
    "log_every_steps": 50, "eval_batch_size": 32, "dtype": "float32",
}


def _merge(base: dict, overrides: dict) -> dict:
  out = copy.deepcopy(base)
  for key, value in overrides.items():
    if isinstance(value, dict) and isinstance(out.get(key), dict) and out[key]:
      out[key] = _merge(out[key], value)
    else:
      out[key] = copy.deepcopy(value)
  return out


def make(model: str, task: str, arg: str | None = None) -> config_dict.ConfigDict:
  """The config of `model` on `task`; arg "quick" gives the small offline run."""
  if model not in MODELS:
    raise ValueError(f"unknown model preset {model!r}; valid: {sorted(MODELS)}")
  if task not in TASKS:
    raise ValueError(f"unknown task {task!r}; valid: {sorted(TASKS)}")
  if arg not in (None, "", "quick"):
    raise ValueError(f"unknown config argument {arg!r}; valid: 'quick' or none")
  values = _merge(TASKS[task], {"model": MODELS[model]})
  values["train"] = _merge(TRAIN_DEFAULTS, values["train"])
  if arg == "quick":
    values = _merge(values, QUICK[task])
  config = config_dict.ConfigDict({"seed": 0, "task": task, **values})
  config.data.data_dir = config_dict.placeholder(str)
  config.train.grad_clip_norm = config_dict.placeholder(float)
  return config

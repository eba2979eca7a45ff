"""Every configs/{model}_{task}.py exists, builds its model at full size
(abstractly: shapes only) and traces a forward pass of its quick variant.

(Running one training step of every model is test_config_smoke.py's job, on
each model's ListOps config and each task's Transformer config.)
"""

import importlib.util
import pathlib
import subprocess
import sys

from flax import nnx
import jax
import jax.numpy as jnp
import pytest

from efficient_transformers import presets
from efficient_transformers import models
from efficient_transformers.training.model_summary import abstract_model, head_of

pytestmark = pytest.mark.slow  # every config built at full size and traced

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in ROOT.glob("configs/*_*.py") if not p.name.startswith("_"))
def _model_and_task(path):
  for task in sorted(presets.TASKS, key=len, reverse=True):  # "lm" has a "_"
    if path.stem.endswith("_" + task):
      return path.stem[: -len(task) - 1], task
  raise AssertionError(f"{path.name}: no known task suffix")


def _get_config(path, arg):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_every_model_has_a_config_for_every_task():
  result = subprocess.run([sys.executable, "scripts/write_configs.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
  assert result.returncode == 0, f"missing config files:\n{result.stdout}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_builds_and_traces(path):
  model_name, task = _model_and_task(path)
  assert task == _get_config(path, None).task
  config = _get_config(path, None)
  assert models.count_params(abstract_model(config)) > 0
  quick = _get_config(path, "quick")
  for key, value in {"emb_dim": 16, "qkv_dim": 16, "mlp_dim": 16, "num_heads": 2}.items():
    quick.model[key] = value
  model = abstract_model(quick)
  length = quick.data.max_length
  batch = quick.model.get("batch_size") or 2  # segment memory has fixed rows
  inputs = [jnp.ones((batch, length), jnp.int32)] * (2 if head_of(quick) == "matcher" else 1)
  graphdef, state = nnx.split(model)

  def forward(state, *inputs):
    return nnx.merge(graphdef, state)(*inputs, deterministic=True)

  out = jax.eval_shape(forward, state, *inputs)
  assert out.shape[0] == batch, (model_name, task, out.shape)

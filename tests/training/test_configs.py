"""Every config file loads, and transformer_listops carries LRA's released values."""

import importlib.util
import pathlib

import pytest

from configs import presets

CONFIGS = sorted(p for p in pathlib.Path(__file__).resolve().parents[2].glob("configs/*_*.py")
                 if not p.name.startswith("_"))


def _load(path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("arg", [None, "quick"])
def test_config_loads_and_names_its_parts(path, arg):
  task = next(t for t in sorted(presets.TASKS, key=len, reverse=True)  # "lm" has a "_"
              if path.stem.endswith("_" + t))
  model = path.stem[:-len(task) - 1]
  config = _load(path).get_config(arg)
  assert config.task == task
  assert config.model.attention == presets.MODELS[model]["attention"]
  assert "Expected" in _load(path).__doc__


def test_transformer_listops_is_lras_released_config():
  # lra_benchmarks/listops/configs/base_listops_config.py + transformer_base.py
  # @cd31e5c, as summarised in shared/reference/lra.md §2.1.
  config = _load(next(p for p in CONFIGS if p.stem == "transformer_listops")).get_config()
  assert (config.model.num_layers, config.model.emb_dim, config.model.qkv_dim,
          config.model.mlp_dim, config.model.num_heads) == (4, 512, 512, 1024, 8)
  assert config.model.pooling == "cls" and config.model.position == "sinusoidal"
  assert config.model.dropout_rate == 0.1
  assert (config.train.batch_size, config.train.learning_rate, config.train.schedule,
          config.train.warmup_steps, config.train.num_train_steps,
          config.train.weight_decay) == (32, 0.05, "rsqrt", 1000, 5000, 0.1)
  assert (config.train.adam_b1, config.train.adam_b2, config.train.adam_eps) == (0.9, 0.98, 1e-9)
  assert config.data.max_length == 2000 and config.data.source == "lra_release"
  assert config.train.eval_every_steps == 50


def test_unknown_config_argument():
  with pytest.raises(ValueError, match="'big'.*quick"):
    presets.make("transformer", "listops", "big")


@pytest.mark.parametrize("task", sorted(presets.TASKS))
@pytest.mark.parametrize("arg", [None, "quick"])
def test_bigbird_has_one_random_seed_per_layer(task, arg):
  """Was: 4 layer_overrides whatever the depth (bigbird_text:quick has 2 layers;
  the 12-layer LM reused seeds 0-3)."""
  model = presets.make("bigbird", task, arg).model
  assert [dict(o) for o in model.layer_overrides] == [
      {"rng": layer} for layer in range(model.num_layers)]

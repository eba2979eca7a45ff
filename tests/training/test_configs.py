"""Every config file loads, and transformer_listops carries LRA's released values."""

import importlib.util
import pathlib

import pytest

from efficient_transformers import presets

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


def test_options_derived_from_sizes_follow_overrides():
  """presets.MODEL_FITS run after `overrides`: the benchmark's sizes re-derive
  them (no stale copy: 3 layers get 3 BigBird seeds and Funnel stages of 3)."""
  sizes = {"data": {"max_length": 4096}, "model": {"num_layers": 3}}
  bigbird = presets.make("bigbird", "text", overrides=sizes).model
  assert [dict(o) for o in bigbird.layer_overrides] == [{"rng": i} for i in range(3)]
  assert presets.make("funnel", "text", overrides=sizes).model.funnel.block_sizes == (1, 2)
  xl = presets.make("transformer_xl", "lm", overrides={"data": {"max_length": 256}})
  assert (xl.model.mem_len, xl.model.eval_mem_len) == (256, 1024)
  xl.train.batch_size = 8  # one batch size: data layout, memory rows, evaluation
  assert (xl.model.batch_size, xl.train.eval_batch_size, xl.data.options.batch_size) == (8,) * 3


def test_axial_grid_is_left_to_the_sequence():
  """shape None: the mechanism uses the near-square grid of the sequence it
  sees, so --config.data.max_length=784 needs no matching shape."""
  for task in ("listops", "image"):
    assert presets.make("axial", task).model.attention_kw.shape is None


def test_quick_model_overrides():
  assert presets.make("reformer", "listops", "quick").model.attention_kw.chunk_size == 16
  assert presets.make("reformer", "text", "quick").model.attention_kw.chunk_size == 200
  assert presets.make("sinkhorn", "listops", "quick").model.attention_kw.block_size == 16

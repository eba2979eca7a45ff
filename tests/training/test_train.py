"""train_and_evaluate: learns, reports, refuses bad configs before touching the workdir."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import tiny
from efficient_transformers.training import loop
from efficient_transformers.training.config_checks import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  results = loop.train_and_evaluate(tiny.config(), str(workdir))
  return workdir, results


def test_results_json_has_the_design_fields(finished_run):
  workdir, results = finished_run
  on_disk = json.loads((workdir / "results.json").read_text())
  assert on_disk == results
  for field in ("task", "attention", "seed", "num_params", "best_step", "val_accuracy",
                "test_accuracy", "steps_per_sec", "wall_seconds"):
    assert field in results
  assert results["task"] == "listops" and results["attention"] == "dense"
  assert results["model"] == "transformer"  # the preset, not only its attention
  assert 0 < results["best_step"] <= 30 and results["best_step"] % 5 == 0


def test_best_step_is_the_best_validation_step(finished_run):
  workdir, results = finished_run
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  val = [r for r in records if r["split"] == "val"]
  assert [r["step"] for r in val] == [5, 10, 15, 20, 25, 30]
  best = max(val, key=lambda r: (r["accuracy"], -r["step"]))
  assert results["best_step"] == best["step"]
  assert results["val_accuracy"] == pytest.approx(best["accuracy"])
  (test,) = [r for r in records if r["split"] == "test"]
  assert test["step"] == best["step"]
  assert test["accuracy"] == pytest.approx(results["test_accuracy"])
  train = [r for r in records if r["split"] == "train"]
  assert all(np.isfinite(r["loss"]) and r["steps_per_sec"] > 0 for r in train)


def test_workdir_contents(finished_run):
  workdir, _ = finished_run
  assert json.loads((workdir / "config.json").read_text())["task"] == "listops"
  assert any((workdir / "tensorboard").iterdir())
  assert (workdir / "checkpoints" / "latest" / "30").is_dir()
  assert len(list((workdir / "checkpoints" / "best").iterdir())) == 1


@pytest.mark.parametrize("key,value,names", [
    ("model.attention", "nope", ["'nope'", "dense"]),
    ("task", "nope", ["'nope'", "listops"]),
    ("train.schedule", "nope", ["'nope'", "rsqrt", "cosine"]),
    ("data.source", "nope", ["'nope'", "generated", "lra_release"]),
    ("model.pooling", "nope", ["nope"]),
])
def test_bad_config_names_the_bad_and_valid_values(tmp_path, key, value, names):
  with pytest.raises(ConfigError) as error:
    loop.train_and_evaluate(tiny.config(**{key: value}), str(tmp_path / "w"))
  for name in names:
    assert name in str(error.value)
  assert not (tmp_path / "w").exists(), "a bad config must not create the workdir"


def test_missing_data_names_the_path(tmp_path):
  cfg = tiny.config(**{"data.source": "lra_release", "data.data_dir": str(tmp_path)})
  with pytest.raises(ConfigError, match=str(tmp_path / "basic_train.tsv")):
    loop.train_and_evaluate(cfg, str(tmp_path / "w"))


def test_bad_config_never_touches_a_good_checkpoint(finished_run):
  workdir, _ = finished_run
  before = {p: p.stat().st_mtime_ns for p in workdir.rglob("*")}
  for bad in ({"model.attention": "nope"}, {"model.emb_dim": 32},
              {"data.source": "lra_release", "data.data_dir": "/nonexistent"}):
    with pytest.raises(ConfigError):
      loop.train_and_evaluate(tiny.config(**bad), str(workdir))
  assert {p: p.stat().st_mtime_ns for p in workdir.rglob("*")} == before


def test_nan_loss_aborts_and_keeps_the_last_good_checkpoint(tmp_path):
  cfg = tiny.config(**{"train.learning_rate": 1e12, "train.schedule": "constant",
                       "train.warmup_steps": 1, "train.log_every_steps": 1})
  with pytest.raises(FloatingPointError, match="Lower config.train.learning_rate"):
    loop.train_and_evaluate(cfg, str(tmp_path))
  assert not (tmp_path / "results.json").exists()


def test_cli_bad_attention_exits_with_a_clear_message(tmp_path):
  proc = subprocess.run(
      [sys.executable, "train.py", "--config=configs/transformer_listops.py:quick",
       f"--workdir={tmp_path / 'w'}", "--config.model.attention=nope"],
      cwd=ROOT, capture_output=True, text=True, timeout=120,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 2
  assert "unknown config.model.attention 'nope'" in proc.stderr and "dense" in proc.stderr
  assert not (tmp_path / "w").exists()


def test_curriculum_stages_train_on_their_data_then_the_task(tmp_path):
  config = tiny.config()
  config.data.curriculum = [{"options": {"max_depth": 2}, "num_steps": 10},
                            {"options": {"max_depth": 3}, "num_steps": 5}]
  splits = loop.load_splits(config)
  stages = loop.curriculum_stages(config, splits["train"])
  assert [n for _, n in stages] == [10, 5, None]
  assert stages[-1][0] is splits["train"].arrays  # then the task itself
  assert not np.array_equal(stages[0][0]["inputs"], splits["train"].arrays["inputs"])
  results = loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["best_step"] > 0


@pytest.mark.parametrize("stage", [{"options": {"max_depth": 2}, "num_steps": 0},
                                   {"options": {"max_depth": 2}},
                                   {"options": {}, "num_steps": 3, "steps": 3}])
def test_bad_curriculum_stage_is_a_config_error(stage, tmp_path):
  config = tiny.config()
  config.data.curriculum = [stage]
  with pytest.raises(ConfigError, match=r"curriculum\[0\]"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()

"""train_and_evaluate: learns, reports, refuses bad configs before touching the workdir."""

import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys

from flax import nnx
import numpy as np
import pytest

import lra
from tests.training import tiny
from efficient_transformers.training import loop, metrics_log
from efficient_transformers.training.config_checks import ConfigError

pytestmark = pytest.mark.slow  # train_and_evaluate end to end, and train.py subprocesses

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


def _strict_json(text):
  """json.loads that refuses NaN / Infinity (not JSON, RFC 8259)."""
  def refuse(token):
    raise ValueError(f"{token} is not JSON")
  return json.loads(text, parse_constant=refuse)


def _rows(workdir):
  """metrics.jsonl without its timing fields."""
  rows = [_strict_json(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  for row in rows:
    row.pop("steps_per_sec", None)
  return rows


def _untimed(results):
  return {k: v for k, v in results.items() if k not in ("steps_per_sec", "wall_seconds")}


def _snapshot(workdir):
  return {p: (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
          for p in workdir.rglob("*")}


def test_rerun_on_a_finished_workdir_changes_nothing(finished_run, caplog):
  """Was: a rerun evaluated on test again and appended a second test row."""
  workdir, results = finished_run
  before = _snapshot(workdir)
  with caplog.at_level(logging.INFO):
    assert loop.train_and_evaluate(tiny.config(), str(workdir)) == results
  assert "run already finished" in caplog.text
  assert f'"test_accuracy": {results["test_accuracy"]}' in caplog.text
  assert _snapshot(workdir) == before


def test_kill_after_the_test_row_writes_it_once(finished_run, tmp_path):
  """A run killed after its test row but before results.json: the rerun
  evaluates again, with one test row."""
  workdir, results = finished_run
  copy = tmp_path / "copy"
  shutil.copytree(workdir, copy)
  (copy / "results.json").unlink()
  assert _untimed(loop.train_and_evaluate(tiny.config(), str(copy))) == _untimed(results)
  assert _rows(copy) == _rows(workdir)
  assert [r["split"] for r in _rows(copy)].count("test") == 1


def test_restart_before_the_first_checkpoint_drops_the_dead_runs_rows(finished_run,
                                                                      tmp_path):
  """Was: a run killed before its first checkpoint restarted from scratch and
  kept the dead session's rows (each step twice in metrics.jsonl), or failed
  (StepAlreadyExistsError) when the dead session had saved a best checkpoint."""
  workdir, results = finished_run
  copy = tmp_path / "copy"
  shutil.copytree(workdir, copy)
  (copy / "results.json").unlink()
  shutil.rmtree(copy / "checkpoints" / "latest")  # from scratch; a best checkpoint is left
  assert _untimed(loop.train_and_evaluate(tiny.config(), str(copy))) == _untimed(results)
  assert _rows(copy) == _rows(workdir)


def test_metrics_log_keeps_only_rows_up_to_the_restored_step(tmp_path):
  rows = [(2, "train"), (5, "val"), (6, "train"), (8, "train"), (5, "test")]
  log = metrics_log.MetricsLog(str(tmp_path))
  for step, split in rows:
    log.write(step, split, loss=1.0)
  log.close()
  (tmp_path / "metrics.jsonl").write_text(  # a kill mid-write cut the last line
      (tmp_path / "metrics.jsonl").read_text() + '{"step": 9, "spl')
  metrics_log.MetricsLog(str(tmp_path), start_step=6).close()
  assert [(r["step"], r["split"]) for r in _rows(tmp_path)] == [(2, "train"), (5, "val"),
                                                               (6, "train")]
  metrics_log.MetricsLog(str(tmp_path), start_step=0).close()  # from scratch
  assert (tmp_path / "metrics.jsonl").read_text() == ""
  assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_non_finite_values_are_written_as_null(tmp_path):
  log = metrics_log.MetricsLog(str(tmp_path))
  log.write(3, "val", loss=float("nan"), accuracy=0.5, grad_norm=float("inf"))
  log.close()
  assert _strict_json((tmp_path / "metrics.jsonl").read_text()) == {
      "step": 3, "split": "val", "loss": None, "accuracy": 0.5, "grad_norm": None}
  metrics_log.write_results(str(tmp_path), {"test_loss": float("nan"), "best_step": 3,
                                            "x": [float("-inf"), 1.0]})
  assert _strict_json((tmp_path / "results.json").read_text()) == {
      "test_loss": None, "best_step": 3, "x": [None, 1.0]}


def test_a_nan_evaluation_loss_still_gives_strict_json(tmp_path, monkeypatch):
  """Was: `"test_loss": NaN` in results.json, which JSON parsers reject."""
  evaluate = loop.evaluate

  def nan_loss(*args, **kwargs):
    return {**evaluate(*args, **kwargs), "loss": float("nan")}

  monkeypatch.setattr(loop, "evaluate", nan_loss)
  results = loop.train_and_evaluate(tiny.config(**{"train.num_train_steps": 10}),
                                    str(tmp_path))
  on_disk = _strict_json((tmp_path / "results.json").read_text())
  assert on_disk["test_loss"] is None and on_disk["test_accuracy"] == results["test_accuracy"]
  evaluated = [r for r in _rows(tmp_path) if r["split"] in ("val", "test")]
  assert evaluated and all(r["loss"] is None for r in evaluated)


def test_evaluate_logs_its_progress(caplog):
  split = lra.SplitData(arrays={"inputs": np.zeros((10, 4), np.int32),
                                "targets": np.zeros((10,), np.int32)},
                        vocab_size=3, num_classes=2, max_length=4, task="listops",
                        split="val", source="generated")

  def eval_fn(params, model_state, batch):
    n = batch["weights"].sum()
    return {"loss": n, "correct": n, "count": n}, model_state

  with caplog.at_level(logging.INFO):
    metrics = loop.evaluate(eval_fn, None, nnx.State({}), split, 4, name="val",
                            progress_seconds=0)
  assert metrics == {"loss": 1.0, "accuracy": 1.0}
  lines = [r.getMessage() for r in caplog.records if "evaluating on val" in r.getMessage()]
  assert lines[0] == "evaluating on val: 10 examples in 3 batches"
  assert [line.split(": ")[1].split(" ")[0] for line in lines[1:]] == ["1/3", "2/3"]


@pytest.mark.slow
def test_cli_hides_the_tpu_probe_line_on_machines_without_a_tpu(tmp_path):
  """Was: `Unable to initialize backend 'tpu': ... libtpu.so ...` in every
  CPU/GPU run's output."""
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
  proc = subprocess.run(
      [sys.executable, "train.py", "--config=configs/transformer_listops.py:quick",
       f"--workdir={tmp_path / 'w'}", "--config.model.attention=nope"],
      cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
  assert proc.returncode == 2 and "jax " in proc.stderr  # it got past jax.devices()
  assert "Unable to initialize backend 'tpu'" not in proc.stdout + proc.stderr

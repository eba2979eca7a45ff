"""A run killed with SIGKILL at any point and restarted ends exactly like an
uninterrupted one: the same results.json and the same metrics.jsonl, row by row
(timing fields aside). train.py as users run it, in subprocesses."""

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.training import tiny

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]
NUM_STEPS = 40
# Evaluations every 5 steps (tiny.py), checkpoints every 20: a wide window in
# which rows and a best checkpoint exist but no latest checkpoint does.
OVERRIDES = {"train.num_train_steps": NUM_STEPS, "train.checkpoint_every_steps": 20}


def _command(workdir):
  return [sys.executable, str(ROOT / "train.py"),
          "--config=configs/transformer_listops.py:quick", f"--workdir={workdir}",
          *tiny.flags(**OVERRIDES)]


def _env():
  return {**os.environ, "JAX_PLATFORMS": "cpu",
          "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _run(workdir):
  return subprocess.run(_command(workdir), cwd=ROOT, env=_env(), check=True,
                        capture_output=True, text=True, timeout=300)


def _strict_json(text):
  def refuse(token):
    raise ValueError(f"{token} is not JSON")
  return json.loads(text, parse_constant=refuse)


def _records(workdir):
  """metrics.jsonl without its timing fields."""
  lines = pathlib.Path(workdir, "metrics.jsonl").read_text().splitlines()
  records = [_strict_json(line) for line in lines]
  for r in records:
    r.pop("steps_per_sec", None)
  return records


def _results(workdir):
  results = _strict_json(pathlib.Path(workdir, "results.json").read_text())
  for timing in ("steps_per_sec", "wall_seconds"):
    assert results.pop(timing) > 0
  return results


def _checkpoint_steps(workdir, kind="latest"):
  directory = pathlib.Path(workdir, "checkpoints", kind)
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) \
      if directory.exists() else []


def _rows_written(workdir):
  path = pathlib.Path(workdir, "metrics.jsonl")
  return path.read_text().count("\n") if path.exists() else 0


def _start_and_kill(workdir, ready, delay=0.0):
  """Starts train.py on `workdir`; SIGKILLs it `delay` s after `ready(workdir)`."""
  proc = subprocess.Popen(_command(workdir), cwd=ROOT, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None and not ready(workdir):
    time.sleep(0.01)
  time.sleep(delay)
  proc.send_signal(signal.SIGKILL)
  proc.wait()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("straight")
  _run(workdir)
  return workdir


def test_sigkill_then_resume_matches_uninterrupted_run(straight, tmp_path):
  killed = tmp_path / "killed"
  # Kill as soon as a first checkpoint exists: mid-training, between saves.
  _start_and_kill(killed, lambda w: _checkpoint_steps(w))
  assert not (killed / "results.json").exists(), "the run finished before the kill"
  steps = _checkpoint_steps(killed)
  assert steps and steps[-1] < NUM_STEPS

  _run(killed)
  assert _results(killed) == _results(straight)
  assert _records(killed) == _records(straight)


def test_sigkill_before_the_first_checkpoint(straight, tmp_path):
  """Was: the rerun started from scratch but kept the dead run's rows (steps
  2, 4, ... twice in metrics.jsonl), and failed on the best checkpoint of
  step 5 that the dead run had saved (StepAlreadyExistsError)."""
  killed = tmp_path / "killed"
  _start_and_kill(killed, lambda w: _checkpoint_steps(w, "best"))
  assert _rows_written(killed) >= 2 and _checkpoint_steps(killed, "best")
  assert not _checkpoint_steps(killed), "the kill came after the first checkpoint"

  _run(killed)
  assert _records(killed) == _records(straight)
  assert _results(killed) == _results(straight)


def test_sigkill_at_random_points(straight, tmp_path):
  """Three kills, each a random time after a random number of rows (some land
  in a checkpoint save, some in an evaluation), then a run to the end."""
  killed = tmp_path / "killed"
  draw = random.Random(0)
  for _ in range(3):
    rows = _rows_written(killed) + draw.randint(1, 6)
    _start_and_kill(killed, lambda w, rows=rows: _rows_written(w) >= rows,
                    delay=draw.uniform(0, 0.3))
    if (killed / "results.json").exists():
      break
  _run(killed)
  assert _records(killed) == _records(straight)
  assert _results(killed) == _results(straight)


def test_rerun_of_a_finished_run_prints_its_results_and_changes_nothing(straight):
  """Was: the rerun evaluated on test again and appended a second test row."""
  before = {p: (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in straight.rglob("*")}
  proc = _run(straight)
  assert "run already finished" in proc.stderr
  assert '"test_accuracy"' in proc.stderr
  after = {p: (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
           for p in straight.rglob("*")}
  assert after == before

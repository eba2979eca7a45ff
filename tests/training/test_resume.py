"""A run killed with SIGKILL mid-training and restarted ends exactly like an
uninterrupted one (train.py as users run it, in subprocesses)."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import tiny

ROOT = pathlib.Path(__file__).resolve().parents[2]
NUM_STEPS = 40


def _command(workdir):
  return [sys.executable, str(ROOT / "train.py"),
          "--config=configs/transformer_listops.py:quick", f"--workdir={workdir}",
          *tiny.flags(**{"train.num_train_steps": NUM_STEPS})]


def _env():
  return {**os.environ, "JAX_PLATFORMS": "cpu",
          "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _run(workdir):
  subprocess.run(_command(workdir), cwd=ROOT, env=_env(), check=True,
                 capture_output=True, timeout=300)


def _records(workdir):
  """metrics.jsonl without its timing fields."""
  lines = pathlib.Path(workdir, "metrics.jsonl").read_text().splitlines()
  records = [json.loads(line) for line in lines]
  for r in records:
    r.pop("steps_per_sec", None)
  return records


def _results(workdir):
  results = json.loads(pathlib.Path(workdir, "results.json").read_text())
  for timing in ("steps_per_sec", "wall_seconds"):
    assert results.pop(timing) > 0
  return results


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  _run(straight)

  proc = subprocess.Popen(_command(killed), cwd=ROOT, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  latest = killed / "checkpoints" / "latest"
  deadline = time.time() + 240
  # Kill as soon as a first checkpoint exists: mid-training, between saves.
  while time.time() < deadline and proc.poll() is None:
    if latest.exists() and any(p.name.isdigit() for p in latest.iterdir()):
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (killed / "results.json").exists(), "the run finished before the kill"
  steps = sorted(int(p.name) for p in latest.iterdir() if p.name.isdigit())
  assert steps and steps[-1] < NUM_STEPS

  _run(killed)
  assert _results(killed) == _results(straight)
  assert _records(killed) == _records(straight)

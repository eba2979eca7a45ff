"""sweep.py: one workdir per run; killed mid-sweep and rerun, it finishes only the rest."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from tests.training import tiny

pytestmark = pytest.mark.slow  # sweeps of train.py subprocesses

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _command(root, *extra):
  sets = [f"--set={flag[len('--config.'):]}" for flag in tiny.flags()]
  return [sys.executable, "scripts/sweep.py", f"--root={root}", "--models=transformer",
          "--tasks=listops", "--seeds=0,1", "--arg=quick", *sets, *extra]


def _env():
  return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))


def test_print_commands_lists_one_train_py_command_per_run(tmp_path):
  out = subprocess.run(_command(tmp_path, "--print_commands"), cwd=ROOT, env=_env(),
                       capture_output=True, text=True, check=True).stdout.splitlines()
  assert len(out) == 2
  assert all("train.py --config=configs/transformer_listops.py:quick" in line for line in out)
  assert "seed0" in out[0] and "--config.seed=1" in out[1]


def test_killed_sweep_reruns_only_the_remaining_runs(tmp_path):
  first = tmp_path / "transformer_listops" / "seed0" / "results.json"
  second = tmp_path / "transformer_listops" / "seed1" / "results.json"
  proc = subprocess.Popen(_command(tmp_path), cwd=ROOT, env=_env(), start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while not first.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the run it started
  proc.wait()
  assert first.exists() and not second.exists()
  finished_at = first.stat().st_mtime
  out = subprocess.run(_command(tmp_path), cwd=ROOT, env=_env(), capture_output=True,
                       text=True, check=True).stdout
  assert "1 finished, 1 to run" in out
  assert second.exists() and first.stat().st_mtime == finished_at


def test_unknown_model_is_a_usage_error(tmp_path):
  result = subprocess.run([sys.executable, "scripts/sweep.py", f"--root={tmp_path}",
                           "--models=nope"], cwd=ROOT, env=_env(), capture_output=True,
                          text=True)
  assert result.returncode != 0 and "unknown model 'nope'" in result.stderr

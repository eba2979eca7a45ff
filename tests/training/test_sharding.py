"""Data parallelism: 4 CPU devices, and 2 processes joined by jax.distributed,
compute the same training steps as one device with the same global batch."""

import json
import os
import socket
import subprocess
import sys
import types

import numpy as np
import pytest

from tests.training import tiny
from efficient_transformers.training import sharding

pytestmark = pytest.mark.slow  # forced multi-device and multi-process runs

WORKER = os.path.join(os.path.dirname(__file__), "data_parallel_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _env(num_devices, **extra):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, **extra)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
  env.pop("JAX_COORDINATOR_ADDRESS", None)
  return env


def _run(out, num_devices, *extra, **env):
  return subprocess.Popen([sys.executable, WORKER, str(out), *extra],
                          env=_env(num_devices, **env),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc):
  output, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, output[-3000:]
  return output


def _assert_same(a, b):
  a, b = np.load(a), np.load(b)
  np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-5)
  for key in a.files:
    if key.startswith("p"):
      np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
  out = tmp_path_factory.mktemp("one") / "out.npz"
  _finish(_run(out, 1))
  assert int(np.load(out)["devices"]) == 1
  return out


def test_four_devices_equal_one_device(one_device, tmp_path):
  out = tmp_path / "four.npz"
  _finish(_run(out, 4))
  assert int(np.load(out)["devices"]) == 4
  _assert_same(one_device, out)


def test_experts_split_over_an_expert_axis_equal_one_device(tmp_path):
  one, four = tmp_path / "one.npz", tmp_path / "four.npz"
  _finish(_run(one, 1, WORKER_MOE="1"))
  _finish(_run(four, 4, WORKER_MOE="1", EXPERT_PARALLELISM="2"))
  assert int(np.load(four)["devices"]) == 4
  _assert_same(one, four)


def test_two_processes_agree_with_each_other_and_with_one_device(one_device, tmp_path):
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  outs = [tmp_path / f"proc{i}.npz" for i in range(2)]
  procs = [_run(outs[i], 1, f"localhost:{port}", "2", str(i)) for i in range(2)]
  outputs = [_finish(p) for p in procs]
  if any("gloo" in o.lower() and "not" in o.lower() and "available" in o.lower()
         for o in outputs):
    pytest.skip("CPU collectives (gloo) are not available in this jaxlib")
  assert int(np.load(outs[0])["devices"]) == 2
  _assert_same(outs[0], outs[1])
  _assert_same(one_device, outs[0])


def test_batch_size_must_split_over_devices():
  four = types.SimpleNamespace(devices=np.empty(4))
  sharding.check_batch_size(12, "config.train.batch_size", four)
  with pytest.raises(ValueError, match="batch_size=10 must be a multiple of the number"
                     r" of devices \(4\)"):
    sharding.check_batch_size(10, "config.train.batch_size", four)


def test_train_py_on_four_devices_matches_one_device(tmp_path):
  """The loop's own path (replicated state, sharded train and eval batches)."""
  results = {}
  for devices in (1, 4):
    workdir = tmp_path / f"d{devices}"
    flags = tiny.flags(**{"train.num_train_steps": 6, "train.eval_batch_size": 8})
    subprocess.run([sys.executable, "train.py", "--config=configs/transformer_listops.py:quick",
                    f"--workdir={workdir}", *flags], cwd=ROOT, env=_env(devices), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    results[devices] = json.loads((workdir / "results.json").read_text())
  assert results[1]["val_accuracy"] == results[4]["val_accuracy"]
  np.testing.assert_allclose(results[1]["test_loss"], results[4]["test_loss"], rtol=1e-4)

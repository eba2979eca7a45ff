"""What a GPU queue run leaves in --out: three files, rewritten after every entry.

  summary.json       every entry tried: status (done, failed, killed,
                     not_started), estimate and its basis beside the measured
                     seconds, the entry's results (test verdict, benchmark
                     step times, accuracies), the environment line
  summary.md         the same as a table
  artifacts.tar.gz   WORK/entries/<id>/ (log.txt and the entry's outputs:
                     env.json, junit.xml, benchmark .json/.md) and, for each
                     run, runs/<quick|lra>/<model>_<task>/seed<s>/ results.json,
                     config.json and metrics.jsonl (no checkpoints or events);
                     a file over MAX_FILE_BYTES is cut to its last bytes (logs)
                     or left out (listed in summary.json)

The device tool brings back at most 8 files of 16 MiB each; this stays at 3.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import xml.etree.ElementTree as ET

MAX_FILE_BYTES = 4 << 20
RUN_FILES = ("results.json", "config.json", "metrics.jsonl")


def read_json(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def tail(path: str, lines: int) -> list[str]:
  try:
    with open(path, "rb") as f:
      f.seek(max(0, os.path.getsize(path) - 20000))
      return f.read().decode(errors="replace").splitlines()[-lines:]
  except OSError:
    return []


def _junit(path: str) -> dict | None:
  try:
    root = ET.parse(path).getroot()
  except (OSError, ET.ParseError):
    return None
  suites = [root] if root.tag == "testsuite" else list(root)
  total = {k: sum(int(s.get(k, 0)) for s in suites)
           for k in ("tests", "failures", "errors", "skipped")}
  total["passed"] = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
  total["verdict"] = (f"{total['passed']} passed, {total['failures']} failed, "
                      f"{total['errors']} errors, {total['skipped']} skipped")
  return total


def measurements(entry: dict, entry_dir: str, work: str) -> dict:
  """The entry's results read from its outputs; "complete": False if missing."""
  import gpu_queue_entries as qe  # pylint: disable=import-outside-toplevel
  kind = entry["kind"]
  if kind == "env":
    env = read_json(os.path.join(entry_dir, "env.json"))
    return {"line": env["line"], "missing": env["missing"]} if env else {"complete": False}
  if kind == "tests":
    junit = _junit(os.path.join(entry_dir, "junit.xml"))
    return junit if junit else {"complete": False}
  if kind == "bench_kernels":
    data = read_json(os.path.join(entry_dir, "bench_kernels.json"))
    if not data:
      return {"complete": False}
    records = data["records"]
    return {"records": len(records), "errors": sum("error" in r for r in records)}
  if kind in ("bench_dense", "bench_train"):
    data = read_json(os.path.join(entry_dir, f"{kind}.json"))
    if not data:
      return {"complete": False}
    records = data["results"]
    out = {"records": len(records)}
    for r in records:
      out[r["status"]] = out.get(r["status"], 0) + 1
    if kind == "bench_train":
      out["step_seconds"] = {str(r["length"]): r["seconds"] for r in records
                             if r["status"] == "ok"}
    return out
  if kind == "train":
    results = read_json(os.path.join(qe.workdir(entry, work), "results.json"))
    if not results:
      return {"complete": False}
    keys = ("test_accuracy", "val_accuracy", "best_step", "num_train_steps",
            "steps_per_sec", "wall_seconds", "num_params", "test_majority_class_rate")
    return {k: results[k] for k in keys if k in results}
  return {}


def _add(tar: tarfile.TarFile, path: str, name: str, left_out: list[str]) -> None:
  size = os.path.getsize(path)
  if size <= MAX_FILE_BYTES:
    tar.add(path, arcname=name)
  elif name.endswith((".txt", ".log")):
    with open(path, "rb") as f:
      f.seek(size - MAX_FILE_BYTES)
      data = f.read()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    left_out.append(f"{name}: cut to its last {MAX_FILE_BYTES} bytes")
  else:
    left_out.append(f"{name}: {size} bytes, left out")


def _tar(work: str, path: str) -> list[str]:
  left_out = []
  with tarfile.open(path, "w:gz") as tar:
    entries = os.path.join(work, "entries")
    for dirpath, _, files in sorted(os.walk(entries)):
      for name in sorted(files):
        full = os.path.join(dirpath, name)
        _add(tar, full, os.path.join("entries", os.path.relpath(full, entries)), left_out)
    runs = os.path.join(work, "runs")
    for dirpath, _, files in sorted(os.walk(runs)):
      if "checkpoints" in dirpath or "tensorboard" in dirpath:
        continue
      for name in sorted(set(files) & set(RUN_FILES)):
        full = os.path.join(dirpath, name)
        _add(tar, full, os.path.join("runs", os.path.relpath(full, runs)), left_out)
  return left_out


def markdown(summary: dict) -> str:
  env = summary.get("env") or {}
  lines = [f"# GPU queue run ({summary['mode']}), {summary['started']}", "",
           env.get("line", "environment: not recorded"), "",
           f"Budget {summary['budget_s']:.0f} s, used {summary['elapsed_s']:.0f} s.", "",
           "| entry | status | estimate (s) | measured (s) | result | basis / reason |",
           "|---|---|---:|---:|---|---|"]
  for r in summary["entries"]:
    result = r.get("verdict") or ""
    if "test_accuracy" in r:
      result = f"test {r['test_accuracy']:.4f}, val {r['val_accuracy']:.4f}, " \
               f"{r.get('steps_per_sec', 0):.2f} steps/s"
    elif "records" in r:
      result = f"{r['records']} records"
    note = r.get("reason") or r.get("estimate_basis", "")
    lines.append(f"| {r['id']} | {r['status']} | {r.get('estimate_s', '')} | "
                 f"{r.get('seconds', '')} | {result} | {note} |")
  return "\n".join(lines) + "\n"


def write(out: str, summary: dict, work: str) -> None:
  """summary.json, summary.md and artifacts.tar.gz in `out` (atomic renames)."""
  os.makedirs(out, exist_ok=True)
  tmp_tar = os.path.join(out, ".artifacts.tar.gz.tmp")
  summary = dict(summary, left_out=_tar(work, tmp_tar))
  os.replace(tmp_tar, os.path.join(out, "artifacts.tar.gz"))
  for name, text in (("summary.json", json.dumps(summary, indent=1, default=str)),
                     ("summary.md", markdown(summary))):
    tmp = os.path.join(out, f".{name}.tmp")
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, os.path.join(out, name))

"""`gpu_queue.py --mark_done --from=DIR`: a fetched GPU run into the queue and docs/.

Reads DIR/summary.json and DIR/artifacts.tar.gz (gpu_queue_pack.py) and
1. marks each finished entry "done" in the queue with its result (date,
   device, measured seconds beside the estimate and its basis, the entry's
   figures); an entry that failed, was killed or did not start stays pending
   and keeps the attempt in `last_attempt`;
2. merges the figures into docs/benchmarks/<device>.json and rewrites
   docs/benchmarks/<device>.md (environment, test verdict, the Pallas kernel
   table, dense chunked/cudnn/xla, LRA Table 2 at 1K-8K with its plots
   <device>_train_time.png / _memory.png, and every run);
3. copies each finished run's results.json (with device, data source,
   overrides and estimate added), config.json and metrics.jsonl to
   docs/results/<device>/<quick|lra>/<model>_<task>/seed<s>/.
<device> is "gpu_" + the device kind in lower case ("NVIDIA H200" -> gpu_h200).
Then commit: the command prints the paths to `git add`.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tarfile
import tempfile

import gpu_queue_pack as pack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def device_slug(env: dict) -> str:
  kind = ((env.get("device") or {}).get("device_kind") or "unknown").lower()
  words = [w for w in kind.replace("-", " ").split() if w not in ("nvidia", "tesla")]
  return "gpu_" + "_".join(words) if (env.get("device") or {}).get("backend") == "gpu" \
      else "_".join(["other"] + words)


def _bench_train_report(reports: list[dict]) -> dict | None:
  from efficient_transformers.benchmarking import report as report_lib  # pylint: disable=import-outside-toplevel
  if not reports:
    return None
  merged = {k: v for k, v in reports[-1].items() if k != "results"}
  by_key = {}
  for rep in reports:
    for r in rep["results"]:
      by_key[(r["model"], r["length"], r["phase"])] = r
  merged["results"] = list(by_key.values())
  report_lib.add_ratios(merged["results"], merged["baseline"])
  merged["exponents"] = report_lib.exponents(merged["results"], "train_step",
                                             merged["settings"].get("fit_min", 2048),
                                             merged["settings"].get("fit_max", 8192))
  return merged


def _runs_table(runs: list[dict]) -> list[str]:
  from efficient_transformers import published  # pylint: disable=import-outside-toplevel
  lines = ["| run | data | test acc. | val acc. | LRA paper | steps/s | wall (s) | "
           "estimate (s) | settings |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
  for r in sorted(runs, key=lambda r: r["id"]):
    paper = published.LRA_TABLE1.get(r["model"], {}).get(r["task"]) if not r.get("arg") \
        else None
    lines.append(
        f"| {r['id']} | {r.get('data_source', '')} | {100 * r['test_accuracy']:.2f} | "
        f"{100 * r['val_accuracy']:.2f} | {'' if paper is None else f'{paper:.2f}'} | "
        f"{r.get('steps_per_sec', 0):.2f} | {r.get('wall_seconds', 0):.0f} | "
        f"{r.get('estimate_s', '')} | {' '.join(r.get('set', []))} |")
  return lines


def markdown(doc: dict, slug: str) -> str:
  from efficient_transformers.benchmarking import report as report_lib  # pylint: disable=import-outside-toplevel
  import bench_kernels  # pylint: disable=import-outside-toplevel
  env = doc.get("env", {})
  installed = ", ".join(env.get("installed_from_wheels") or [])
  missing = ", ".join(env.get("missing") or [])
  lines = [f"# {slug}: figures from the GPU queue (scripts/gpu_queue.py)", "",
           "Written by `python3 scripts/gpu_queue.py --mark_done --from=DIR` from the runs "
           "of docs/gpu.md; every section says when it was measured.", "",
           "## Environment", "", env.get("line", "not recorded"), "",
           f"Installed from carried wheels: {installed or 'nothing'}; missing: "
           f"{missing or 'nothing'}.", ""]
  tests = doc.get("tests")
  if tests:
    lines += ["## Tests compiled for the GPU", "",
              f"{tests.get('verdict')} ({tests.get('date')}; "
              f"`{' '.join(tests.get('paths', []))}`, JAX_PLATFORMS=cuda).", ""]
  for pattern, data in sorted(doc.get("kernels", {}).items()):
    header = (f"## Pallas block-sparse vs dense: {pattern}\n\n{data['device']}, jax "
              f"{data['jax']}, {data['date']}")
    lines += [bench_kernels.markdown(data["records"], header)]
  for name, rep in sorted(doc.get("dense", {}).items()):
    lines += [f"## Dense attention: chunked vs cudnn vs xla ({name})", "",
              report_lib.markdown(rep)]
  if doc.get("train_benchmark"):
    lines += ["## LRA Table 2: a training step of every model", "",
              f"![time]({slug}_train_time.png) ![memory]({slug}_train_memory.png)", "",
              report_lib.markdown(doc["train_benchmark"])]
  if doc.get("runs"):
    lines += ["## Runs", "", "Accuracy in %; the data column says which source each run "
              "used; estimate beside the measured wall time.", ""]
    lines += _runs_table(list(doc["runs"].values())) + [""]
  return "\n".join(lines) + "\n"


def _publish_run(rec: dict, entry: dict, extracted: str, docs_root: str, slug: str,
                 env: dict) -> list[str]:
  sub = os.path.join(entry.get("arg") or "lra", f"{entry['model']}_{entry['task']}",
                     f"seed{entry['seed']}")
  src = os.path.join(extracted, "runs", sub)
  dst = os.path.join(docs_root, "docs", "results", slug, sub)
  os.makedirs(dst, exist_ok=True)
  for name in pack.RUN_FILES:
    if os.path.exists(os.path.join(src, name)):
      shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
  results = pack.read_json(os.path.join(dst, "results.json")) or {}
  results.update(device=env.get("line", slug), device_slug=slug,
                 data_source=entry.get("data_source"), overrides=entry.get("set", []),
                 estimate_s=rec.get("estimate_s"), estimate_basis=rec.get("estimate_basis"),
                 measured_s=rec.get("seconds"))
  with open(os.path.join(dst, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  return [dst]


def mark_done(from_dir: str, queue: dict, docs_root: str = ROOT) -> list[str]:
  """Updates `queue` (in place) and docs/ from a fetched run; returns written paths."""
  summary = pack.read_json(os.path.join(from_dir, "summary.json"))
  if summary is None:
    raise SystemExit(f"{from_dir}/summary.json: missing or unreadable")
  if summary["mode"] == "tiny" and os.path.abspath(docs_root) == ROOT:
    raise SystemExit("a --tiny run is a smoke test: its figures are not committed "
                     "(pass --docs_root elsewhere to try --mark_done on it)")
  env = summary.get("env") or {}
  slug = device_slug(env)
  date = summary["started"]
  entries = {e["id"]: e for e in queue["entries"]}
  bench_dir = os.path.join(docs_root, "docs", "benchmarks")
  os.makedirs(bench_dir, exist_ok=True)
  doc_path = os.path.join(bench_dir, f"{slug}.json")
  doc = pack.read_json(doc_path) or {}
  written = [doc_path, os.path.join(bench_dir, f"{slug}.md")]
  with tempfile.TemporaryDirectory() as extracted:
    tar_path = os.path.join(from_dir, "artifacts.tar.gz")
    if os.path.exists(tar_path):
      with tarfile.open(tar_path) as tar:
        tar.extractall(extracted, filter="data")
    entry_out = lambda rec, name: pack.read_json(
        os.path.join(extracted, "entries", rec["id"], name))
    if env:
      doc["env"] = {"date": date, **{k: env.get(k) for k in (
          "line", "device", "packages", "packages_before", "installed_from_wheels",
          "missing", "fashion_mnist")}}
    train_reports = [doc["train_benchmark"]] if doc.get("train_benchmark") else []
    for rec in summary["entries"]:
      entry = entries.get(rec["id"])
      if entry is None or entry["kind"] in ("env", "data"):
        continue
      attempt = {"date": date, "device": slug, **{k: rec[k] for k in (
          "status", "reason", "estimate_s", "estimate_basis", "seconds") if k in rec}}
      if rec["status"] != "done":
        entry["last_attempt"] = attempt
        continue
      entry["status"] = "done"
      entry.pop("last_attempt", None)
      entry["result"] = {**{k: v for k, v in rec.items() if k not in (
          "id", "kind", "status", "command", "log_tail", "set", "title", "model", "task",
          "seed", "arg", "pattern", "head_dim", "data_source", "started_at_s")}, **attempt}
      kind = entry["kind"]
      if kind == "tests":
        doc["tests"] = {"date": date, "paths": entry.get("paths", []),
                        **{k: rec.get(k) for k in ("verdict", "tests", "passed",
                                                   "failures", "errors", "skipped")}}
      elif kind == "bench_kernels":
        doc.setdefault("kernels", {})[entry["pattern"]] = entry_out(rec, "bench_kernels.json")
      elif kind == "bench_dense":
        doc.setdefault("dense", {})[f"head_dim {entry['head_dim']}"] = entry_out(
            rec, "bench_dense.json")
      elif kind == "bench_train":
        train_reports.append(entry_out(rec, "bench_train.json"))
      elif kind == "train":
        written += _publish_run(rec, entry, extracted, docs_root, slug, env)
        doc.setdefault("runs", {})[entry["id"]] = {
            "id": entry["id"], "model": entry["model"], "task": entry["task"],
            "arg": entry.get("arg"), "seed": entry["seed"], "set": entry.get("set", []),
            "data_source": entry.get("data_source"), "date": date,
            **{k: rec.get(k) for k in ("test_accuracy", "val_accuracy", "steps_per_sec",
                                       "wall_seconds", "estimate_s", "seconds")}}
    merged = _bench_train_report([r for r in train_reports if r])
    if merged:
      from efficient_transformers.benchmarking import report as report_lib  # pylint: disable=import-outside-toplevel
      doc["train_benchmark"] = merged
      written += report_lib.plot(merged, os.path.join(bench_dir, f"{slug}_train"))
  doc["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  with open(doc_path, "w") as f:
    json.dump(doc, f, indent=1, default=str)
  with open(os.path.join(bench_dir, f"{slug}.md"), "w") as f:
    f.write(markdown(doc, slug))
  done = sum(1 for r in summary["entries"] if r["status"] == "done"
             and entries.get(r["id"], {}).get("kind") not in ("env", "data", None))
  print(f"marked {done} entries done; wrote {len(written)} paths. Commit with:\n  git add "
        + " ".join(sorted({os.path.relpath(p, docs_root) for p in written}))
        + " scripts/gpu_queue.json")
  return written

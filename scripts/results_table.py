r"""The table users cite: every results.json under a sweep root, beside LRA's numbers.

  python scripts/results_table.py --root=sweeps/lra [--out=sweeps/lra/results.md]
      [--plot=sweeps/lra/results.png] [--benchmark=docs/benchmarks/train_cpu.json]

Reads ROOT/{model}_{task}/seed*/results.json (scripts/sweep.py's layout; the
task is read from each workdir's config.json). Writes a markdown table: per
model and task, test accuracy (%) as mean ± sample std over seeds (n seeds),
the LRA paper's Table 1 number and our difference; an Avg column over the
five tasks LRA averages (Path-X excluded, as the paper) when a model has all
five. Also a plot in the style of LRA's Figure 3: average accuracy against
training speed (steps/s from the runs' results.json, on the Text task when
present, else over all tasks), bubble area = peak memory from a
`scripts/benchmark.py --mode=train` JSON when given (otherwise equal bubbles).
"""

from __future__ import annotations

import collections
import glob
import json
import os

from absl import app
from absl import flags
import numpy as np

from efficient_transformers import published

_ROOT = flags.DEFINE_string("root", None, "Sweep root (scripts/sweep.py --root).")
_OUT = flags.DEFINE_string("out", None, "Markdown output (default ROOT/results.md).")
_PLOT = flags.DEFINE_string("plot", None, "PNG output (default ROOT/results.png).")
_BENCHMARK = flags.DEFINE_string("benchmark", None, "benchmark.py train-mode JSON (memory).")
flags.mark_flag_as_required("root")

AVERAGED_TASKS = ("listops", "text", "retrieval", "image", "pathfinder")


def collect(root: str) -> dict[tuple[str, str], list[dict]]:
  """(model, task) -> the results.json dicts of its seeds."""
  runs = collections.defaultdict(list)
  for path in sorted(glob.glob(os.path.join(root, "*", "seed*", "results.json"))):
    workdir = os.path.dirname(path)
    with open(path) as f:
      results = json.load(f)
    task = results["task"]
    run_name = os.path.basename(os.path.dirname(workdir))
    if not run_name.endswith("_" + task):
      raise ValueError(f"{path}: directory {run_name!r} is not {{model}}_{task}")
    runs[(run_name[: -len(task) - 1], task)].append(results)
  return dict(runs)


def summarise(runs) -> dict[tuple[str, str], dict]:
  """(model, task) -> mean, std (sample; 0 for one seed), n, steps_per_sec, paper."""
  out = {}
  for (model, task), results in runs.items():
    accuracy = np.array([100 * r["test_accuracy"] for r in results])
    out[(model, task)] = {
        "mean": float(accuracy.mean()), "n": len(accuracy),
        "std": float(accuracy.std(ddof=1)) if len(accuracy) > 1 else 0.0,
        "steps_per_sec": float(np.mean([r["steps_per_sec"] for r in results])),
        "paper": published.LRA_TABLE1.get(model, {}).get(task)}
  return out


def _cell(entry) -> str:
  if entry is None:
    return "—"
  text = f"{entry['mean']:.2f} ± {entry['std']:.2f} ({entry['n']})"
  if entry["paper"] is not None:
    text += f"<br>paper {entry['paper']:.2f} ({entry['mean'] - entry['paper']:+.2f})"
  return text


def average(summary, model) -> float | None:
  values = [summary.get((model, task)) for task in AVERAGED_TASKS]
  return None if None in values else float(np.mean([v["mean"] for v in values]))


def markdown(summary) -> str:
  models = sorted({m for m, _ in summary})
  tasks = [t for t in (*published.LRA_TASKS, "lm") if any(t == k for _, k in summary)]
  lines = ["Test accuracy (%), mean ± std over seeds (number of seeds); LRA paper"
           " (Table 1) and our difference below.", "",
           "| model | " + " | ".join(tasks) + " | Avg |",
           "|---" * (len(tasks) + 2) + "|"]
  for model in models:
    avg = average(summary, model)
    paper = published.LRA_TABLE1.get(model)
    paper_avg = (np.mean([paper[t] for t in AVERAGED_TASKS]) if paper else None)
    avg_text = "—" if avg is None else f"{avg:.2f}" + (
        f"<br>paper {paper_avg:.2f} ({avg - paper_avg:+.2f})" if paper_avg else "")
    lines.append(f"| {model} | " + " | ".join(_cell(summary.get((model, t))) for t in tasks)
                 + f" | {avg_text} |")
  return "\n".join(lines) + "\n"


def plot(summary, path, memory=None) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4.5))
  for model in sorted({m for m, _ in summary}):
    entries = {t: e for (m, t), e in summary.items() if m == model}
    accuracy = average(summary, model)
    if accuracy is None:
      accuracy = float(np.mean([e["mean"] for e in entries.values()]))
    speed_entries = [entries["text"]] if "text" in entries else list(entries.values())
    speed = float(np.mean([e["steps_per_sec"] for e in speed_entries]))
    size = 300 * (memory.get(model, 1.0) if memory else 1.0)
    ax.scatter(speed, accuracy, s=size, alpha=0.5)
    ax.annotate(model, (speed, accuracy), fontsize=8, ha="center")
  ax.set_xlabel("training speed (steps/s)")
  ax.set_ylabel("accuracy (%)")
  ax.set_title("accuracy vs speed" + (" (area = memory)" if memory else ""))
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _memory(path) -> dict[str, float]:
  """model -> memory relative to the largest, from a `benchmark.py --mode=train`
  JSON (records with model, length, status, bytes), at the longest length
  that the most models ran."""
  with open(path) as f:
    records = [r for r in json.load(f)["records"]
               if r.get("status") == "ok" and r.get("bytes")]
  if not records:
    return {}
  counts = collections.Counter(r["length"] for r in records)
  length = max(counts, key=lambda n: (counts[n], n))
  by_model = {r["model"]: r["bytes"] for r in records if r["length"] == length}
  top = max(by_model.values())
  return {m: b / top for m, b in by_model.items()}


def main(argv):
  del argv
  summary = summarise(collect(_ROOT.value))
  if not summary:
    raise app.UsageError(f"no results.json under {_ROOT.value}/*/seed*/")
  text = markdown(summary)
  out = _OUT.value or os.path.join(_ROOT.value, "results.md")
  with open(out, "w") as f:
    f.write(text)
  print(text)
  png = _PLOT.value or os.path.join(_ROOT.value, "results.png")
  plot(summary, png, _memory(_BENCHMARK.value) if _BENCHMARK.value else None)
  print(f"wrote {out} and {png}")


if __name__ == "__main__":
  app.run(main)

r"""Each model's parameter count against the Transformer's on the same task.

LRA's rule: models are compared at roughly equal size (parameter counts within
about 10% of the task's Transformer). This prints, per task, every model's
count and ratio, marking those outside 10%, and writes the markdown table.

  python scripts/param_counts.py [--out=docs/param_counts.md] [--tasks=listops,text]
"""

from __future__ import annotations

from absl import app
from absl import flags

from efficient_transformers import presets
from efficient_transformers import published
from efficient_transformers.training.model_summary import parameter_report

_OUT = flags.DEFINE_string("out", "docs/param_counts.md", "Markdown output.")
_TASKS = flags.DEFINE_list("tasks", list(published.LRA_TASKS), "Tasks.")


def markdown(records, tasks) -> str:
  models = list(dict.fromkeys(r["model"] for r in records))
  cell = {(r["model"], r["task"]): r for r in records}
  lines = ["Parameters of each model (full-size config) and the ratio to the task's"
           " Transformer; **bold** = outside LRA's 10%.", "",
           "| model | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
  for model in models:
    cells = []
    for task in tasks:
      r = cell[(model, task)]
      text = f"{r['num_params']:,} ({r['ratio_to_transformer']:.2f}x)"
      cells.append(text if r["within_10_percent"] else f"**{text}**")
    lines.append(f"| {model} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  lra_models = [m for m in presets.MODELS if "lm" not in presets.tasks_of(m)]
  records = parameter_report(presets.make, lra_models, _TASKS.value)
  text = markdown(records, _TASKS.value)
  print(text)
  outside = [f"{r['model']}/{r['task']}" for r in records if not r["within_10_percent"]]
  print(f"{len(outside)} of {len(records)} outside 10%: {', '.join(outside) or 'none'}")
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      f.write(text)


if __name__ == "__main__":
  app.run(main)

r"""Runs models x tasks x seeds, one workdir per run, resumably.

  python scripts/sweep.py --root=sweeps/lra --models=transformer,performer \
      --tasks=listops,text --seeds=0,1,2 [--arg=quick] \
      [--set=train.num_train_steps=1000 --set=data.data_dir=$HOME/lra_data ...]

Each run is `python train.py --config=configs/{model}_{task}.py[:arg]
--workdir=ROOT/{model}_{task}/seed{seed} --config.seed=SEED --config.KEY=VALUE...`.
A run whose workdir holds results.json is finished and skipped; an interrupted
one resumes from its checkpoint (train.py does that), so killing the sweep and
rerunning the same command finishes only what remains. Runs go one after
another on this machine, each run's output in ROOT/logs/{model}_{task}_seed{seed}.log;
a failed run is reported and the sweep goes on (exit status 1 at the end).

  --print_commands   prints the remaining runs' commands, one per line, for a
                     cluster scheduler (e.g. `... | xargs -P 4 -I{} sh -c {}`,
                     or one line per job array task), and runs nothing.

`--models=all` / `--tasks=all` take every preset
(efficient_transformers/presets.py; the layout: efficient_transformers/sweeps.py) and every task it has configs for. Then: python scripts/results_table.py --root=ROOT.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

from absl import app
from absl import flags

from efficient_transformers import sweeps

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_ROOT = flags.DEFINE_string("root", None, "Sweep directory: one workdir per run.")
_MODELS = flags.DEFINE_list("models", ["transformer"], "Model presets, or 'all'.")
_TASKS = flags.DEFINE_list("tasks", ["listops"], "Tasks, or 'all'.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds (config.seed).")
_ARG = flags.DEFINE_string("arg", None, "Config argument, e.g. 'quick'.")
_SET = flags.DEFINE_multi_string("set", [], "KEY=VALUE config overrides for every run.")
_PRINT = flags.DEFINE_bool("print_commands", False, "Print the remaining commands only.")
flags.mark_flag_as_required("root")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    todo = sweeps.runs(_MODELS.value, _TASKS.value, _SEEDS.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  remaining = [r for r in todo if not sweeps.is_finished(_ROOT.value, *r)]
  if _PRINT.value:
    for run in remaining:
      print(f"cd {shlex.quote(ROOT_DIR)} && " + shlex.join(
          sweeps.command(ROOT_DIR, _ROOT.value, *run, arg=_ARG.value, overrides=_SET.value)))
    return
  print(f"sweep {_ROOT.value}: {len(todo)} runs, {len(todo) - len(remaining)} finished,"
        f" {len(remaining)} to run", flush=True)
  logs = os.path.join(_ROOT.value, "logs")
  os.makedirs(logs, exist_ok=True)
  failed = []
  for index, (model, task, seed) in enumerate(remaining, 1):
    name = f"{model}_{task}_seed{seed}"
    log_path = os.path.join(logs, f"{name}.log")
    print(f"[{index}/{len(remaining)}] {name} ... (log: {log_path})", flush=True)
    start = time.time()
    with open(log_path, "a") as log:
      status = subprocess.run(sweeps.command(ROOT_DIR, _ROOT.value, model, task, seed,
                                             arg=_ARG.value, overrides=_SET.value),
                              cwd=ROOT_DIR, stdout=log, stderr=subprocess.STDOUT).returncode
    took = f"{time.time() - start:.0f} s"
    if status == 0 and sweeps.is_finished(_ROOT.value, model, task, seed):
      print(f"[{index}/{len(remaining)}] {name} finished in {took}", flush=True)
    else:
      failed.append(name)
      print(f"[{index}/{len(remaining)}] {name} FAILED (exit {status}, {took}); see"
            f" {log_path}", flush=True)
  if failed:
    print(f"{len(failed)} runs failed: {', '.join(failed)}; rerun the same command to"
          " retry them (finished runs are skipped)")
    sys.exit(1)
  print(f"done: python scripts/results_table.py --root={_ROOT.value}")


if __name__ == "__main__":
  app.run(main)

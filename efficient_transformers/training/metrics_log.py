"""What a run writes besides checkpoints: `<workdir>/metrics.jsonl` (one JSON
object a line), TensorBoard event files (tensorboardX, no TensorFlow needed) and
`<workdir>/results.json`.

Both JSON files are strict JSON (RFC 8259) that any parser reads: a non-finite
value (NaN, +-inf, e.g. the loss of a diverged evaluation) is written as `null`,
never as the `NaN` / `Infinity` tokens that Python's json module emits by
default. results.json is written whole or not at all (temporary file + rename),
so its existence means the run finished.

metrics.jsonl holds the history of exactly one run: when a run restarts at step
S (resumed from the checkpoint of step S, or S = 0 from scratch), rows after S
and any `test` row (written only once training is done) are dropped first, so a
run killed at any moment and restarted ends with the same rows, in the same
order, as one that was never interrupted.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from tensorboardX import SummaryWriter

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"


def finite_or_none(value: Any) -> Any:
  """`value` with every non-finite float (at any depth of dicts, lists,
  tuples) replaced by None."""
  if isinstance(value, dict):
    return {k: finite_or_none(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [finite_or_none(v) for v in value]
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def dumps(value: Any, **kwargs) -> str:
  """Strict JSON: non-finite floats become null (json.dumps(allow_nan=False))."""
  return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)


def write_text_atomically(path: str, text: str) -> None:
  """`path` holds either its old content or `text`, whenever the process dies."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_results(workdir: str, results: dict) -> None:
  """Writes `<workdir>/results.json` (strict JSON, atomically)."""
  write_text_atomically(os.path.join(workdir, RESULTS_FILE), dumps(results, indent=2) + "\n")


def read_results(workdir: str) -> dict | None:
  """The results of a finished run in `workdir`, or None."""
  path = os.path.join(workdir, RESULTS_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


class MetricsLog:
  """Appends {"step", "split", <metric>: value, ...} records.

  `start_step`: the step the run starts from (that of the restored checkpoint,
  0 for a fresh start): records after it and `test` records already in the file
  are dropped, and TensorBoard hides its events after it (`purge_step`).
  `enabled=False` (every process but the first of a multi-host run) writes nothing.
  """

  def __init__(self, workdir: str, *, enabled: bool = True, start_step: int = 0):
    self.path = os.path.join(workdir, METRICS_FILE)
    self.enabled = enabled
    self._tensorboard = None
    if enabled:
      self.truncate_after(start_step)
      self._tensorboard = SummaryWriter(os.path.join(workdir, "tensorboard"),
                                        purge_step=start_step + 1)

  def truncate_after(self, step: int) -> None:
    """Drops records newer than `step`, and test records: a resumed run replays
    those steps (and evaluates on test again at the end). Atomic."""
    if not self.enabled or not os.path.exists(self.path):
      return
    kept = []
    with open(self.path) as f:
      for line in f:
        try:
          record = json.loads(line)
        except ValueError:  # a line cut short by a kill mid-write
          continue
        if record["step"] <= step and record["split"] != "test":
          kept.append(line if line.endswith("\n") else line + "\n")
    write_text_atomically(self.path, "".join(kept))

  def write(self, step: int, split: str, **metrics) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), "split": split,
              **{k: float(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(dumps(record) + "\n")
    for name, value in metrics.items():
      self._tensorboard.add_scalar(f"{split}/{name}", float(value), int(step))

  def close(self) -> None:
    if self._tensorboard is not None:
      self._tensorboard.close()

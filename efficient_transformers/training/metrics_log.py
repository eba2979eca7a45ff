"""Where metrics go: `<workdir>/metrics.jsonl` (one JSON object a line) and
TensorBoard event files (tensorboardX, no TensorFlow needed)."""

from __future__ import annotations

import json
import os

from tensorboardX import SummaryWriter


class MetricsLog:
  """Appends {"step", "split", <metric>: value, ...} records.

  `enabled=False` (every process but the first of a multi-host run) writes nothing.
  """

  def __init__(self, workdir: str, *, enabled: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = enabled
    self._tensorboard = (SummaryWriter(os.path.join(workdir, "tensorboard"))
                         if enabled else None)

  def truncate_after(self, step: int) -> None:
    """Drops records newer than `step`: a resumed run replays those steps."""
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(kept)
    os.replace(tmp, self.path)

  def write(self, step: int, split: str, **metrics) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), "split": split,
              **{k: float(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    for name, value in metrics.items():
      self._tensorboard.add_scalar(f"{split}/{name}", float(value), int(step))

  def close(self) -> None:
    if self._tensorboard is not None:
      self._tensorboard.close()

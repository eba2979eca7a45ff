"""`SplitData`: one split of one Long Range Arena task, as numpy arrays.

Long Range Arena (LRA): Tay et al., "Long Range Arena: A Benchmark for
Efficient Transformers", ICLR 2021. Every task loader (`lra.load`) returns a
`SplitData`; it knows nothing of models or frameworks.

Array conventions:
- single-sequence tasks: `inputs` int32 [N, max_length], 0 = padding;
- two-sequence tasks (Retrieval): `inputs1`, `inputs2` int32 [N, max_length];
- `targets` int32 [N], class ids in [0, num_classes); language-modelling
  streams (task `lm`, lra/byte_lm.py) have per-token `targets` int32 [N, L] and `ordered=True`:
  their rows must be read in order (row r of batch t continues row r of batch
  t-1), never shuffled.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SPLITS = ("train", "val", "test")  # the split names of every task


def check_split_and_source(task: str, split: str, source: str, sources) -> None:
  """ValueError naming the bad split or source of `task` and the valid ones."""
  if source not in sources:
    raise ValueError(f"unknown {task} source {source!r}; valid: {tuple(sources)}")
  if split not in SPLITS:
    raise ValueError(f"unknown {task} split {split!r}; valid: {SPLITS}")


@dataclasses.dataclass(frozen=True)
class SplitData:
  """One split of one task: arrays, plus what a model needs to know."""

  arrays: dict[str, np.ndarray]
  vocab_size: int
  num_classes: int
  max_length: int
  task: str
  split: str
  source: str
  ordered: bool = False  # rows form consecutive segments: batch in order

  def __post_init__(self):
    if "targets" not in self.arrays:
      raise ValueError(
          f"arrays must contain 'targets'; got {sorted(self.arrays)}")
    sizes = {name: len(array) for name, array in self.arrays.items()}
    if len(set(sizes.values())) != 1:
      raise ValueError(f"arrays disagree on the number of examples: {sizes}")

  def __len__(self) -> int:
    return len(self.arrays["targets"])

  def majority_class_rate(self) -> float:
    """Fraction of examples with the most frequent target (0.0 if empty)."""
    targets = self.arrays["targets"].reshape(-1)
    if len(targets) == 0:
      return 0.0
    counts = np.bincount(targets, minlength=self.num_classes)
    return float(counts.max() / len(targets))

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
from typing import Iterator

import numpy as np

SPLITS = ("train", "val", "test")  # the split names of every task


class DataError(ValueError):
  """A bad value in a data file, found while a split is loaded.

  The message names the file, where in it (a line, an example, an archive
  member), the bad value and what was expected:

    /data/basic_test.tsv, line 3: label '12'; expected a class id in 0..9

  Every reader raises it (`lra.listops`, `retrieval`, `pathfinder`, `text`,
  `image`), and `lra.load` raises it for labels or token ids out of range.
  A ValueError, so train.py reports it as one `error:` line (exit 2), before
  anything is written to the workdir.
  """

  def __init__(self, path: str | None, where: str, got: str, expected: str,
               hint: str = ""):
    self.path, self.where, self.got, self.expected = path, where, got, expected
    place = f"{path}, {where}" if path else where
    message = f"{place}: {got}; expected {expected}"
    super().__init__(f"{message}. {hint}" if hint else message)


def show(value, limit: int = 60) -> str:
  """repr(value), shortened to about `limit` characters for a message."""
  text = repr(value)
  return text if len(text) <= limit else f"{text[:limit - 6]}...{text[-3:]}"


def decode_line(raw: bytes, path: str, line_number: int) -> str:
  """One line of a text file as str; DataError naming it if not UTF-8."""
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise DataError(path, f"line {line_number}",
                    f"bytes that are not UTF-8 text "
                    f"({show(raw[e.start:e.start + 4])} at byte {e.start + 1})",
                    "a UTF-8 text file (is this the right file?)") from None


def text_lines(path: str) -> Iterator[str]:
  """The lines of a UTF-8 file, line ends kept (for csv.reader, whose
  `line_num` then counts them); DataError naming the first line that is not
  UTF-8."""
  with open(path, "rb") as f:
    for line_number, raw in enumerate(f, start=1):
      yield decode_line(raw, path, line_number)


CUT_SHORT = " (the file ends in the middle of this line: is it cut short?)"


def ends_mid_line(path: str) -> bool:
  """True if a non-empty file does not end with a newline (cut short?)."""
  with open(path, "rb") as f:
    f.seek(0, 2)
    if f.tell() == 0:
      return False
    f.seek(-1, 2)
    return f.read(1) != b"\n"


def check_ids(data: "SplitData") -> None:
  """DataError if a target is not a class id or an input not a token id.

  `lra.load` runs it on every split it returns (read, generated or cached),
  so out-of-range values stop the run at loading time instead of becoming a
  NaN loss later. The readers check their files first, naming the line.
  """
  checks = [("targets", "label", data.num_classes,
             "a class id in 0..{} ({} classes)")]
  checks += [(name, "token id", data.vocab_size, "a token id in 0..{} (vocabulary of {})")
             for name in ("inputs", "inputs1", "inputs2") if name in data.arrays]
  for name, what, size, expected in checks:
    values = data.arrays[name]
    if values.size == 0 or (values.min() >= 0 and values.max() < size):
      continue
    bad = np.flatnonzero(((values < 0) | (values >= size)).reshape(len(values), -1)
                         .any(axis=1))[0]
    row = values[bad].reshape(-1)
    value = row[(row < 0) | (row >= size)][0]
    raise DataError(None, f"{data.task} {data.split} split (source {data.source!r}), "
                    f"example {bad} ({name})", f"{what} {int(value)}",
                    expected.format(size - 1, size),
                    "The data does not fit the task: a wrong file or data_dir,"
                    " or a stale entry of the lra cache (lra/cache.py)?")


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

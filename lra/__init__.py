"""lra: Long Range Arena data (Tay et al., "Long Range Arena: A Benchmark for
Efficient Transformers", ICLR 2021), as numpy arrays. No jax, no models.

- `dataset`: `SplitData`, one split of one task; `DataError`, the error of
  every reader for a bad value (file, line or example, value, expectation).
- `listops`: ListOps (Nangia & Bowman 2018): seeded generator, evaluator, LRA
  TSV files, fixed-vocabulary tokenizer, loader.
- `text`, `retrieval`, `image`: IMDB bytes, AAN byte pairs, grayscale
  CIFAR-10 (and the offline stand-ins movie_reviews and fashion_mnist).
- `byte_lm` (task "lm"): byte-level language modelling over the IMDB reviews as one
  stream (not LRA; for Transformer-XL), ordered rows of parallel sub-streams.
- `pathfinder`: Pathfinder (32x32) and Path-X (128x128): the release's PNG
  files, or our seeded generator (`pathfinder_generator`).
- `cache`: the disk cache of tokenised splits.
- `batching`: deterministic, resumable train batches; padded eval batches.

    data = lra.load("listops", "train", source="generated", data_dir="/tmp/lra")
    for batch in lra.train_batches(data.arrays, 32, seed=0): ...
"""

from __future__ import annotations

import functools

from lra import byte_lm
from lra import image
from lra import listops
from lra import pathfinder
from lra import retrieval
from lra import text
from lra.batching import eval_batches, staged_batches, train_batches
from lra.dataset import DataError, SplitData, check_ids

TASKS = {"listops": listops.load, "text": text.load,
         "retrieval": retrieval.load, "image": image.load}
TASKS["pathfinder"] = pathfinder.load  # 32x32 by default; see its resolution.
TASKS["pathx"] = functools.partial(pathfinder.load, resolution=128)
TASKS["lm"] = byte_lm.load  # not LRA: byte-level LM stream (Transformer-XL).


def load(task: str, split: str, *, source: str, data_dir: str | None = None,
         max_length: int | None = None, **options) -> SplitData:
  """Loads `split` of `task` (see TASKS; `lra.listops.load` for options).

  Raises `DataError` (a ValueError) naming the file and line of a bad value,
  or the example whose label or token id is outside the task's classes or
  vocabulary; FileNotFoundError for missing data.
  """
  if task not in TASKS:
    raise ValueError(f"unknown LRA task {task!r}; valid: {sorted(TASKS)}")
  data = TASKS[task](split, source=source, data_dir=data_dir,
                     max_length=max_length, **options)
  check_ids(data)
  return data


__all__ = ["TASKS", "DataError", "SplitData", "eval_batches", "load", "staged_batches", "train_batches"]

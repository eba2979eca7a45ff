"""Deterministic, resumable batching of `SplitData.arrays` (numpy only).

- `train_batches`: infinite; epoch e is the permutation drawn from
  `np.random.default_rng([seed, epoch])` (or the identity when
  `shuffle=False`, for ordered language-modelling streams), cut into
  N // batch_size batches (the remainder is dropped). The batch at global step s depends only on
  (seed, s), so resuming a run at step s needs no replay:
  `train_batches(..., start_step=s)` starts with exactly that batch.
- `staged_batches`: a curriculum: stage k's arrays for its steps, then the
  next stage's; the last stage runs forever. Within a stage, batches are
  `train_batches`' (its step counted from the stage's start), so a run
  resumed at any step again needs no replay.
- `eval_batches`: finite and in order; every example appears once; the last
  batch is padded to batch_size by repeating row 0, and each batch carries
  float32 `weights` (1 = real example, 0 = padding) for weighted metrics.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

Batch = dict[str, np.ndarray]


def _num_examples(arrays: dict[str, np.ndarray], batch_size: int) -> int:
  if not arrays:
    raise ValueError("arrays is empty")
  sizes = {name: len(array) for name, array in arrays.items()}
  if len(set(sizes.values())) != 1:
    raise ValueError(f"arrays disagree on the number of examples: {sizes}")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1; got {batch_size}")
  return next(iter(sizes.values()))


def train_batches(arrays: dict[str, np.ndarray], batch_size: int, *, seed: int,
                  start_step: int = 0, shuffle: bool = True) -> Iterator[Batch]:
  """Yields batches forever (shuffled per epoch unless `shuffle=False`),
  starting at global step `start_step`."""
  num_examples = _num_examples(arrays, batch_size)
  if batch_size > num_examples:
    raise ValueError(f"batch_size {batch_size} > number of examples "
                     f"{num_examples}")
  if start_step < 0:
    raise ValueError(f"start_step must be >= 0; got {start_step}")
  steps_per_epoch = num_examples // batch_size
  return _train_batches(arrays, batch_size, seed, start_step, steps_per_epoch, shuffle)


def _train_batches(arrays, batch_size, seed, step, steps_per_epoch, shuffle):
  epoch, permutation = None, None
  while True:
    if step // steps_per_epoch != epoch:
      epoch = step // steps_per_epoch
      num_examples = len(next(iter(arrays.values())))
      permutation = (np.random.default_rng([seed, epoch]).permutation(num_examples)
                     if shuffle else np.arange(num_examples))
    start = (step % steps_per_epoch) * batch_size
    indices = permutation[start:start + batch_size]
    yield {name: array[indices] for name, array in arrays.items()}
    step += 1


def staged_batches(stages: list[tuple[dict[str, np.ndarray], int | None]],
                   batch_size: int, *, seed: int, start_step: int = 0,
                   shuffle: bool = True) -> Iterator[Batch]:
  """Yields batches forever from `stages` = [(arrays, num_steps), ...], in order;
  the last stage's num_steps is None (it never ends). Starts at global step
  `start_step`: stage k's batch j is `train_batches(arrays_k, ...)`'s batch j."""
  if not stages or stages[-1][1] is not None:
    raise ValueError("the last stage must have num_steps None (it never ends)")
  if any(n is None or n < 1 for _, n in stages[:-1]):
    raise ValueError(f"every stage but the last needs num_steps >= 1; got "
                     f"{[n for _, n in stages]}")
  for k, (arrays, _) in enumerate(stages):  # Checked now, not when stage k starts.
    if batch_size > _num_examples(arrays, batch_size):
      raise ValueError(f"stage {k}: batch_size {batch_size} > number of examples "
                       f"{_num_examples(arrays, batch_size)}")
  return _staged_batches(stages, batch_size, seed, start_step, shuffle)


def _staged_batches(stages, batch_size, seed, start_step, shuffle):
  stage_start = 0
  for arrays, num_steps in stages:
    stage_end = None if num_steps is None else stage_start + num_steps
    if stage_end is None or start_step < stage_end:
      first = max(start_step - stage_start, 0)
      batches = train_batches(arrays, batch_size, seed=seed, start_step=first,
                              shuffle=shuffle)
      if stage_end is None:
        yield from batches
        return
      for _ in range(stage_end - stage_start - first):
        yield next(batches)
    stage_start = stage_end


def eval_batches(arrays: dict[str, np.ndarray], batch_size: int
                 ) -> Iterator[Batch]:
  """Yields every example once, in order, in batches of exactly batch_size."""
  num_examples = _num_examples(arrays, batch_size)
  if "weights" in arrays:
    raise ValueError("arrays already has a 'weights' entry")
  return _eval_batches(arrays, batch_size, num_examples)


def _eval_batches(arrays, batch_size, num_examples):
  for start in range(0, num_examples, batch_size):
    real = min(batch_size, num_examples - start)
    indices = np.arange(start, start + batch_size)
    indices[real:] = 0  # Padding repeats row 0: real data, so no NaN risk.
    batch = {name: array[indices] for name, array in arrays.items()}
    batch["weights"] = (np.arange(batch_size) < real).astype(np.float32)
    yield batch

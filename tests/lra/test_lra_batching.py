"""Deterministic, resumable train batches and padded eval batches."""

import itertools

import numpy as np
import pytest

import lra

N = 10


def arrays():
  return dict(inputs=np.arange(N * 3, dtype=np.int32).reshape(N, 3),
              targets=np.arange(N, dtype=np.int32))


def take(iterator, n):
  return list(itertools.islice(iterator, n))


def assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for name in x:
      np.testing.assert_array_equal(x[name], y[name])


def test_train_batches_are_deterministic_and_seeded():
  a = take(lra.train_batches(arrays(), 3, seed=0), 9)
  assert_batches_equal(a, take(lra.train_batches(arrays(), 3, seed=0), 9))
  b = take(lra.train_batches(arrays(), 3, seed=1), 9)
  assert any((x["targets"] != y["targets"]).any() for x, y in zip(a, b))


def test_train_epochs_are_permutations_without_remainder():
  # 10 examples, batch 3: 3 steps per epoch, one example dropped each epoch.
  batches = take(lra.train_batches(arrays(), 3, seed=0), 6)
  for epoch in (batches[:3], batches[3:]):
    targets = np.concatenate([b["targets"] for b in epoch])
    assert len(set(targets)) == 9
  for b in batches:
    assert b["inputs"].shape == (3, 3)
    np.testing.assert_array_equal(b["inputs"][:, 0], 3 * b["targets"])
  first, second = (np.concatenate([b["targets"] for b in e])
                   for e in (batches[:3], batches[3:]))
  assert (first != second).any()


@pytest.mark.parametrize("start_step", [0, 1, 2, 3, 4, 7])
def test_resume_equals_fresh_iterator(start_step):
  fresh = take(lra.train_batches(arrays(), 3, seed=5), start_step + 4)
  resumed = take(
      lra.train_batches(arrays(), 3, seed=5, start_step=start_step), 4)
  assert_batches_equal(fresh[start_step:], resumed)


def test_train_batch_size_too_large():
  with pytest.raises(ValueError, match="batch_size"):
    lra.train_batches(arrays(), N + 1, seed=0)


@pytest.mark.parametrize("batch_size", [1, 3, 5, 10, 16])
def test_eval_batches_cover_each_example_once(batch_size):
  batches = list(lra.eval_batches(arrays(), batch_size))
  assert len(batches) == -(-N // batch_size)
  seen = []
  for b in batches:
    assert b["weights"].dtype == np.float32
    assert all(v.shape[0] == batch_size for v in b.values())
    real = b["weights"] == 1
    assert set(b["weights"]) <= {0.0, 1.0}
    assert real[:real.sum()].all()  # Real rows first, padding last.
    seen.extend(b["targets"][real])
    np.testing.assert_array_equal(b["inputs"][:, 0], 3 * b["targets"])
  assert seen == list(range(N))


def _stage(value, n=12):
  return {"inputs": np.full((n, 3), value, np.int32),
          "targets": np.arange(n, dtype=np.int32)}


def test_staged_batches_switch_at_stage_boundaries():
  stages = [(_stage(1), 3), (_stage(2), 2), (_stage(3), None)]
  batches = lra.staged_batches(stages, 4, seed=0)
  first = [int(next(batches)["inputs"][0, 0]) for _ in range(8)]
  assert first == [1, 1, 1, 2, 2, 3, 3, 3]


def test_staged_batches_resume_without_replay_and_match_train_batches():
  stages = [(_stage(1), 3), (_stage(2), 2), (_stage(3), None)]
  whole = lra.staged_batches(stages, 4, seed=5)
  reference = [next(whole) for _ in range(9)]
  for start in range(9):
    resumed = lra.staged_batches(stages, 4, seed=5, start_step=start)
    for expected in reference[start:]:
      got = next(resumed)
      np.testing.assert_array_equal(got["targets"], expected["targets"])
      np.testing.assert_array_equal(got["inputs"], expected["inputs"])
  # Within a stage, the batches are train_batches' counted from the stage start.
  second = lra.train_batches(stages[1][0], 4, seed=5)
  np.testing.assert_array_equal(reference[3]["targets"], next(second)["targets"])
  np.testing.assert_array_equal(reference[4]["targets"], next(second)["targets"])


def test_staged_batches_reject_bad_stages():
  with pytest.raises(ValueError, match="last stage"):
    lra.staged_batches([(_stage(1), 3)], 4, seed=0)
  with pytest.raises(ValueError, match="num_steps >= 1"):
    lra.staged_batches([(_stage(1), 0), (_stage(2), None)], 4, seed=0)
  # A later stage too small for the batch is an error at once, not mid-run.
  with pytest.raises(ValueError, match="stage 1: batch_size 4 > number of examples 2"):
    lra.staged_batches([(_stage(1), 3), (_stage(2, n=2), None)], 4, seed=0)

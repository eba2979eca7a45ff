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

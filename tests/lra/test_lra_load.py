"""lra.load: sources, the generated-data cache, SplitData and error messages."""

import os

import numpy as np
import pytest

import lra
from lra import listops

SMALL = dict(min_length=10, max_length=60, max_depth=5, max_args=5,
             num_train_examples=20, num_eval_examples=8, seed=3)


def test_generated_in_memory():
  data = lra.load("listops", "val", source="generated", **SMALL)
  assert isinstance(data, lra.SplitData)
  assert len(data) == 8
  assert data.arrays["inputs"].shape == (8, 60)
  assert data.arrays["inputs"].dtype == data.arrays["targets"].dtype == np.int32
  assert (data.vocab_size, data.num_classes, data.max_length) == (16, 10, 60)
  assert (data.task, data.split, data.source) == ("listops", "val", "generated")
  expected = listops.generate(**SMALL)["val"]
  np.testing.assert_array_equal(data.arrays["targets"],
                                [e.target for e in expected])
  counts = np.bincount(data.arrays["targets"])
  assert data.majority_class_rate() == counts.max() / 8


def test_generated_cache_is_written_and_reused(tmp_path, monkeypatch):
  first = lra.load("listops", "train", source="generated",
                   data_dir=str(tmp_path), **SMALL)
  (cache_dir,) = tmp_path.iterdir()
  assert cache_dir.name.startswith("listops_generated_")
  names = sorted(p.name for p in cache_dir.iterdir())
  assert names == ["basic_test.tsv", "basic_train.tsv", "basic_val.tsv",
                   "params.json"]
  mtimes = {p: p.stat().st_mtime_ns for p in cache_dir.iterdir()}

  def fail(**kwargs):
    raise AssertionError("regenerated despite the cache")

  monkeypatch.setattr(listops, "generate", fail)
  for split in listops.SPLITS:
    lra.load("listops", split, source="generated", data_dir=str(tmp_path),
             **SMALL)
  again = lra.load("listops", "train", source="generated",
                   data_dir=str(tmp_path), **SMALL)
  for name in first.arrays:
    np.testing.assert_array_equal(first.arrays[name], again.arrays[name])
  assert {p: p.stat().st_mtime_ns for p in cache_dir.iterdir()} == mtimes


def test_cache_dir_depends_on_every_parameter(tmp_path):
  base = listops.generated_params(**SMALL)
  dirs = {listops.generated_cache_dir(str(tmp_path), base)}
  for key in base:
    dirs.add(listops.generated_cache_dir(str(tmp_path),
                                         dict(base, **{key: base[key] + 1})))
  assert len(dirs) == len(base) + 1


def test_lra_release_reads_tsvs(tmp_path):
  splits = listops.generate(**SMALL)
  listops.write_splits(str(tmp_path), splits)
  data = lra.load("listops", "test", source="lra_release",
                  data_dir=str(tmp_path))
  assert data.max_length == 2000 and data.arrays["inputs"].shape == (8, 2000)
  short = lra.load("listops", "test", source="lra_release",
                   data_dir=str(tmp_path), max_length=7)
  np.testing.assert_array_equal(short.arrays["inputs"],
                                data.arrays["inputs"][:, :7])
  np.testing.assert_array_equal(data.arrays["targets"],
                                [e.target for e in splits["test"]])


def test_lra_release_missing_files(tmp_path):
  path = os.path.join(str(tmp_path), "basic_train.tsv")
  with pytest.raises(FileNotFoundError) as info:
    lra.load("listops", "train", source="lra_release", data_dir=str(tmp_path))
  message = str(info.value)
  for part in (path, "lra_release.gz", "listops-1000", 'source="generated"'):
    assert part in message
  with pytest.raises(FileNotFoundError, match="data_dir"):
    lra.load("listops", "train", source="lra_release")


@pytest.mark.parametrize("kwargs, names", [
    (dict(task="pathfinder128", split="train", source="generated"),
     ["pathfinder128", "listops"]),
    (dict(task="listops", split="validation", source="generated"),
     ["validation", "train", "val", "test"]),
    (dict(task="listops", split="train", source="tfds"),
     ["tfds", "generated", "lra_release"]),
    (dict(task="listops", split="train", source="generated", depth=3),
     ["depth", "max_depth"]),
    (dict(task="listops", split="train", source="lra_release", seed=1),
     ["seed"]),
])
def test_unknown_names_are_listed(kwargs, names):
  with pytest.raises(ValueError) as info:
    lra.load(**kwargs)
  for name in names:
    assert name in str(info.value)


def test_lra_needs_neither_jax_nor_flax():
  import subprocess
  import sys
  code = ("import sys, lra; bad = {'jax', 'flax'} & set(sys.modules); "
          "assert not bad, bad")
  root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
  subprocess.run([sys.executable, "-c", code], check=True, cwd=root,
                 env=dict(os.environ, PYTHONPATH=root))

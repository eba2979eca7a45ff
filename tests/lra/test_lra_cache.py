"""lra.cache: hit, miss on any key change, no partial entries, max_examples."""

import os

import numpy as np
import pytest

from lra import cache
from lra import dataset
from tests.lra.lra_fixtures import isolated_cache  # pylint: disable=unused-import


def make_split(n=5):
  return dataset.SplitData(
      arrays=dict(inputs=np.arange(n * 3, dtype=np.int32).reshape(n, 3),
                  targets=np.arange(n, dtype=np.int32) % 2),
      vocab_size=7, num_classes=2, max_length=3, task="t", split="train",
      source="s")


def load(key, folder, build=make_split, **kwargs):
  return cache.load(build, task="t", source="s", split="train", key=key,
                    cache_dir=str(folder), **kwargs)


def test_second_load_reads_the_cache(tmp_path):
  calls = []

  def build():
    calls.append(1)
    return make_split()

  first = load({"a": 1}, tmp_path, build)
  again = load({"a": 1}, tmp_path, build)
  assert len(calls) == 1
  assert again == dataset.SplitData(**{**first.__dict__, "arrays": again.arrays})
  for name in first.arrays:
    np.testing.assert_array_equal(first.arrays[name], again.arrays[name])
    assert again.arrays[name].dtype == np.int32
  (entry,) = os.listdir(tmp_path)
  assert entry.startswith("t_s_train_") and entry.endswith(".npz")
  load({"a": 2}, tmp_path, build)
  assert len(calls) == 2 and len(os.listdir(tmp_path)) == 2


def test_failed_build_leaves_nothing(tmp_path):
  def build():
    raise ValueError("bad line")

  with pytest.raises(ValueError, match="bad line"):
    load({"a": 1}, tmp_path / "c", build)
  assert not (tmp_path / "c").exists() or not os.listdir(tmp_path / "c")


def test_unreadable_entry_is_rebuilt(tmp_path):
  load({"a": 1}, tmp_path)
  (entry,) = tmp_path.iterdir()
  entry.write_bytes(b"garbage")
  data = load({"a": 1}, tmp_path)
  assert len(data) == 5 and entry.stat().st_size > 100


def test_changed_source_file_changes_the_key(tmp_path):
  source = tmp_path / "f.tsv"
  source.write_text("x")
  before = cache.entry_path("d", "t", "s", "train",
                            {"files": cache.fingerprint([str(source)])})
  source.write_text("xy")
  after = cache.entry_path("d", "t", "s", "train",
                           {"files": cache.fingerprint([str(source)])})
  assert before != after


def test_max_examples_and_disabled_cache(tmp_path, monkeypatch):
  assert len(load({"a": 1}, tmp_path, max_examples=2)) == 2
  assert len(load({"a": 1}, tmp_path)) == 5
  with pytest.raises(ValueError, match="max_examples"):
    load({"a": 1}, tmp_path, max_examples=0)
  monkeypatch.setenv(cache.ENV_VAR, "")
  assert cache.resolve_dir() is None
  monkeypatch.delenv(cache.ENV_VAR)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert cache.resolve_dir() == str(tmp_path / "xdg/efficient_transformers/lra")
  assert cache.resolve_dir(str(tmp_path)) == str(tmp_path)

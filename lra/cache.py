"""A disk cache of tokenised splits, so that the second run starts at once.

One `.npz` file per (task, source, split, key): the key holds everything the
arrays depend on (max_length, the loader's options and format version, and the
size and modification time of every source file read), hashed into the file
name, so changing any of them builds a new entry instead of reading a stale
one. A build that fails writes nothing; a finished one is written to a
temporary file and renamed into place, so no reader ever sees a partial entry.

Where: the `cache_dir` option of `lra.load`, else $LRA_CACHE_DIR, else
$XDG_CACHE_HOME/efficient_transformers/lra (default ~/.cache/...). An empty
string ("") turns caching off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable, Iterable

from absl import logging
import numpy as np

from lra import dataset

ENV_VAR = "LRA_CACHE_DIR"
_FORMAT_VERSION = 1
_META = ("vocab_size", "num_classes", "max_length", "task", "split", "source", "ordered")


def resolve_dir(cache_dir: str | None = None) -> str | None:
  """The cache folder to use, or None when caching is turned off ("")."""
  if cache_dir is None:
    cache_dir = os.environ.get(ENV_VAR)
  if cache_dir is None:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    cache_dir = os.path.join(base, "efficient_transformers", "lra")
  return cache_dir or None


def fingerprint(paths: Iterable[str]) -> list[list]:
  """[path, size, mtime_ns] of each file: a changed source invalidates."""
  out = []
  for path in paths:
    stat = os.stat(path)
    out.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
  return out


def entry_path(cache_dir: str, task: str, source: str, split: str,
               key: dict) -> str:
  """cache_dir/{task}_{source}_{split}_{sha256 of the key}.npz."""
  text = json.dumps(dict(key, format=_FORMAT_VERSION), sort_keys=True)
  digest = hashlib.sha256(text.encode()).hexdigest()[:16]
  return os.path.join(cache_dir, f"{task}_{source}_{split}_{digest}.npz")


def _read(path: str) -> dataset.SplitData:
  with np.load(path, allow_pickle=False) as entry:
    meta = json.loads(str(entry["__meta__"]))
    arrays = {name: entry[name] for name in entry.files if name != "__meta__"}
  return dataset.SplitData(arrays=arrays, **meta)


def _write(path: str, data: dataset.SplitData) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  meta = {name: getattr(data, name) for name in _META}
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, "wb") as f:
      np.savez(f, __meta__=np.array(json.dumps(meta)), **data.arrays)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def first(data: dataset.SplitData, max_examples: int | None
          ) -> dataset.SplitData:
  """The first `max_examples` examples of a split (all of them if None)."""
  if max_examples is None:
    return data
  if int(max_examples) < 1:
    raise ValueError(f"max_examples must be >= 1; got {max_examples}")
  arrays = {name: array[:int(max_examples)]
            for name, array in data.arrays.items()}
  return dataclasses.replace(data, arrays=arrays)


def load(build: Callable[[], dataset.SplitData], *, task: str, source: str,
         split: str, key: dict, cache_dir: str | None = None,
         max_examples: int | None = None) -> dataset.SplitData:
  """The cached split for `key`, built (and stored) by `build()` if absent.

  Args:
    build: makes the whole split; called only on a cache miss.
    task, source, split: name the entry.
    key: JSON-serialisable; everything the arrays depend on.
    cache_dir: see the module docstring ("" = no cache).
    max_examples: keep only the first examples (applied after the cache, so
      it does not create new entries).
  """
  folder = resolve_dir(cache_dir)
  if folder is None:
    return first(build(), max_examples)
  path = entry_path(folder, task, source, split, key)
  if os.path.exists(path):
    try:
      data = _read(path)
      logging.info("LRA %s/%s/%s: read cached %s", task, source, split, path)
      return first(data, max_examples)
    except (OSError, ValueError, KeyError) as e:  # Unreadable: rebuild it.
      logging.warning("LRA cache entry %s is unreadable (%s); rebuilding",
                      path, e)
  data = build()
  _write(path, data)
  logging.info("LRA %s/%s/%s: cached %d examples in %s", task, source, split,
               len(data), path)
  return first(data, max_examples)

"""Small files in the official LRA / TFDS / Debian formats, for tests.

- `write_aclimdb_archive`: aclImdb_v1.tar.gz layout (aclImdb/{train,test}/
  {pos,neg}/<id>_<rating>.txt, plus unsup/ and imdb.vocab that are ignored).
- `write_cifar_archive`: cifar-10-binary.tar.gz (records of 1 label byte +
  3072 pixel bytes, planes R, G, B) or cifar-10-python.tar.gz (pickled dicts
  with b"data" [N, 3072] uint8 and b"labels").
- `write_idx`: an IDX file of unsigned bytes (gzip optional).
- `write_aan_release`: new_aan_pairs.{train,eval,test}.tsv, used by
  tests/training/test_config_smoke.py for the retrieval task.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from lra import retrieval


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(data)
  archive.addfile(info, io.BytesIO(data))


def write_aclimdb_archive(path: str, reviews: dict[str, list[tuple[bytes, int]]]
                          ) -> None:
  """reviews: {'train'|'test': [(text, label 0|1), ...]}."""
  with tarfile.open(path, "w:gz") as archive:
    _add(archive, "aclImdb/imdb.vocab", b"the\nmovie\n")
    _add(archive, "aclImdb/train/unsup/0_0.txt", b"unlabelled review")
    for split, rows in reviews.items():
      for i, (text, label) in enumerate(rows):
        polarity = "pos" if label else "neg"
        _add(archive, f"aclImdb/{split}/{polarity}/{i}_{7 if label else 2}.txt",
             text)
      _add(archive, f"aclImdb/{split}/urls_pos.txt", b"http://example.com\n")


def write_cifar_archive(path: str, images: dict[str, np.ndarray],
                        labels: dict[str, np.ndarray], *, kind: str) -> None:
  """images: {'train'|'test': uint8 [N, 32, 32, 3]}; train is cut into 5."""
  folder = {"binary": "cifar-10-batches-bin", "python": "cifar-10-batches-py"}[kind]
  suffix = ".bin" if kind == "binary" else ""
  with tarfile.open(path, "w:gz") as archive:
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog",
             b"frog", b"horse", b"ship", b"truck"]
    meta = (b"\n".join(names) + b"\n" if kind == "binary" else
            pickle.dumps({b"label_names": names, b"num_vis": 3072}))
    _add(archive, f"{folder}/batches.meta{'.txt' if suffix else ''}", meta)
    for split in ("train", "test"):
      planes = images[split].transpose(0, 3, 1, 2).reshape(-1, 3072)
      parts = (np.array_split(np.arange(len(planes)), 5) if split == "train"
               else [np.arange(len(planes))])
      for number, rows in enumerate(parts, start=1):
        name = (f"data_batch_{number}" if split == "train" else "test_batch")
        if kind == "binary":
          records = np.concatenate(
              [labels[split][rows, None].astype(np.uint8), planes[rows]], 1)
          data = records.tobytes()
        else:
          data = pickle.dumps({b"batch_label": b"fixture",
                               b"labels": [int(l) for l in labels[split][rows]],
                               b"data": planes[rows]})
        _add(archive, f"{folder}/{name}{suffix}", data)


def write_idx(path: str, array: np.ndarray) -> None:
  """IDX of unsigned bytes: 0 0 0x08 ndim, big-endian dims, data."""
  array = np.asarray(array, np.uint8)
  header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(header + array.tobytes())


def write_fashion_mnist(folder: str, num_train: int = 20, num_test: int = 10,
                        seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The four Fashion-MNIST .gz files of random images; returns them."""
  rng = np.random.default_rng(seed)
  out = {}
  for part, num in (("train", num_train), ("t10k", num_test)):
    images = rng.integers(0, 256, (num, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, num, dtype=np.uint8)
    write_idx(os.path.join(folder, f"{part}-images-idx3-ubyte.gz"), images)
    write_idx(os.path.join(folder, f"{part}-labels-idx1-ubyte.gz"), labels)
    out[part] = images, labels
  return out


def aan_rows(num: int, seed: int = 0) -> list[tuple]:
  """Learnable pairs: label 1 iff both texts share their topic word."""
  rng = np.random.default_rng(seed)
  topics = ["parsing", "translation", "tagging", "summarization"]
  rows = []
  for i in range(num):
    label = int(rng.integers(2))
    first = int(rng.integers(len(topics)))
    second = first if label else (first + 1 + int(rng.integers(3))) % 4
    text1 = f"We study {topics[first]} with models. " * int(rng.integers(1, 4))
    text2 = f"b'A {topics[second]} paper, \"quoted\".' " * int(rng.integers(1, 4))
    rows.append((label, f"P{i:02d}-1", f"P{i:02d}-2", text1, text2))
  return rows


def write_aan_release(folder: str, num_train: int = 32, num_eval: int = 8
                      ) -> str:
  """new_aan_pairs.{train,eval,test}.tsv under folder; returns folder."""
  os.makedirs(folder, exist_ok=True)
  sizes = {"train": num_train, "val": num_eval, "test": num_eval}
  for seed, (split, num) in enumerate(sizes.items()):
    retrieval.write_tsv(retrieval.tsv_path(folder, split), aan_rows(num, seed))
  return folder


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
  """Import into a test module: its lra cache lives in tmp_path/cache."""
  monkeypatch.setenv("LRA_CACHE_DIR", str(tmp_path / "cache"))
  return tmp_path / "cache"

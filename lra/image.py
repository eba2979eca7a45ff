"""Image: pixel-sequence classification of grayscale images (LRA's "Image").

Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009
(CIFAR-10), as used by Long Range Arena (Tay et al., ICLR 2021): a 32x32
image, converted to grayscale and flattened row by row into 1024 pixels, 10
classes; no 2-D information, no augmentation.

Grayscale, bit-exact with LRA's `tf.image.rgb_to_grayscale` on uint8 images,
in float32: f = rgb * (1/255); g = 0.2989 R + 0.5870 G + 0.1140 B;
gray = trunc(g * 255.5) (TF's convert_image_dtype back to uint8).

Token ids: id = pixel + 1 (1..256), VOCAB_SIZE = 257, 0 is never a pixel.
LRA fed raw pixel values (vocab 256) to models that treat id 0 as padding,
so its models masked out black pixels; we shift by one so that no pixel is
mistaken for padding (the only deviation from LRA's pipeline).

Splits as LRA's: "train" = train[:90%] (45,000), "val" = train[90%:]
(5,000), "test" = test (10,000).

Sources:
- "tfds": TFDS `cifar10`, through `tfds.data_source` when prepared in
  data_dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets), else straight
  from `cifar-10-binary.tar.gz` (TFDS's manual-download file) or
  `cifar-10-python.tar.gz` in data_dir/downloads/manual/ or data_dir. From an
  archive, examples are put in TFDS's record order (md5 of split name + key,
  tensorflow_datasets/core/hashing.py), so that train[:90%] is the same 45,000
  images as TFDS's.
- "fashion_mnist": Fashion-MNIST (Xiao et al. 2017), 28x28 grayscale (784
  pixels), 10 classes, from the Debian package `dataset-fashion-mnist` (IDX
  files in /usr/share/datasets/fashion-mnist, or data_dir). An OFFLINE
  STAND-IN, not LRA's task: its numbers are not comparable with LRA's. Splits
  train[:90%] (54,000) / train[90%:] (6,000) / t10k (10,000), in file order.

Options: downsample (1): average non-overlapping d x d pixel blocks (rounded
to the nearest integer) before flattening, e.g. 2 makes Fashion-MNIST 14 x 14
= 196 pixels: for short CPU runs only, NOT part of LRA's task. cache_dir (see
lra.cache) and max_examples (first N examples).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import pickle
import tarfile

import numpy as np

from lra import cache
from lra import dataset
from lra import text

SPLITS = dataset.SPLITS
SOURCES = ("tfds", "fashion_mnist")
NUM_CLASSES = 10
VOCAB_SIZE = 257  # 256 pixel values + padding (never used).
TRAIN_FRACTION = 90  # Percent of the train file in split "train".
RGB_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)
CIFAR_ARCHIVES = ("cifar-10-binary.tar.gz", "cifar-10-python.tar.gz")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte",
                                 "train-labels-idx1-ubyte"),
                       "test": ("t10k-images-idx3-ubyte",
                                "t10k-labels-idx1-ubyte")}
_VERSION = 1
_CIFAR_HELP = (
    "Get CIFAR-10: download https://www.cs.toronto.edu/~kriz/"
    "cifar-10-binary.tar.gz into <data_dir>/downloads/manual/ (read directly, "
    "no tfds needed), or prepare TFDS's cifar10 in <data_dir> (`python "
    "scripts/prepare_data.py --output_dir=<dir> --tasks=image --cifar_archive="
    "cifar-10-binary.tar.gz --tfds_data_dir=<data_dir> --tfds_prepare`). "
    "Offline: source=\"fashion_mnist\".")
_FASHION_HELP = ("Install it with `apt-get install dataset-fashion-mnist`, or "
                 "pass data_dir=<folder of the Fashion-MNIST IDX files>.")


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
  """uint8 [..., 3] -> uint8 [...], as tf.image.rgb_to_grayscale."""
  flt = rgb.astype(np.float32) * np.float32(1 / 255)
  gray = flt @ RGB_WEIGHTS
  return (gray * np.float32(255.5)).astype(np.uint8)


def downsample_images(images: np.ndarray, factor: int) -> np.ndarray:
  """uint8 [N, H, W] -> uint8 [N, H/f, W/f]: rounded means of f x f blocks."""
  num, height, width = images.shape
  if factor < 1 or height % factor or width % factor:
    raise ValueError(f"downsample must be >= 1 and divide the image size "
                     f"{height}x{width}; got {factor}")
  blocks = images.reshape(num, height // factor, factor, width // factor, factor)
  sums = blocks.sum(axis=(2, 4), dtype=np.int64)
  return ((2 * sums + factor * factor) // (2 * factor * factor)).astype(np.uint8)


def pixel_ids(images: np.ndarray) -> np.ndarray:
  """uint8 [N, H, W] -> int32 [N, H*W] ids (pixel + 1), row-major."""
  return images.reshape(len(images), -1).astype(np.int32) + 1


def tfds_order(num: int, split: str) -> np.ndarray:
  """Indices of keys 0..num-1 in TFDS's record order for `split`."""
  hashes = [int(hashlib.md5(f"{split}{i}".encode()).hexdigest(), 16)
            for i in range(num)]
  return np.array(sorted(range(num), key=hashes.__getitem__), np.int64)


# --------------------------------------------------------- CIFAR archives


class _NumpyOnlyUnpickler(pickle.Unpickler):
  """CIFAR's python batches hold numpy arrays and lists: allow nothing else."""

  def find_class(self, module, name):
    if module.split(".")[0] == "numpy" and name in (
        "_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"):
      return super().find_class(module, name)
    raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _cifar_batch(name: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 32, 32, 3], labels) of one binary or python batch."""
  if name.endswith(".bin"):
    records = np.frombuffer(data, np.uint8)
    if records.size % 3073:
      raise ValueError(f"size {records.size} is not a multiple of 3073 bytes")
    records = records.reshape(-1, 3073)
    labels, pixels = records[:, 0], records[:, 1:]
  else:
    batch = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    labels = np.asarray(batch[b"labels"], np.uint8)
    pixels = np.asarray(batch[b"data"], np.uint8)
  images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  if len(images) != len(labels):
    raise ValueError(f"{len(labels)} labels for {len(images)} images")
  return images, labels


def check_labels(labels: np.ndarray, path: str, where: str) -> None:
  """DataError naming `where` and the index of the first label > 9."""
  bad = np.flatnonzero(np.asarray(labels) >= NUM_CLASSES)
  if len(bad):
    raise dataset.DataError(path, f"{where} {bad[0]}", f"label {labels[bad[0]]}",
                            f"a class id in 0..{NUM_CLASSES - 1}")


def read_cifar_archive(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{'train'|'test': (gray uint8 [N, 32, 32], labels)} in archive order."""
  binary = "binary" in os.path.basename(path)
  folder = "cifar-10-batches-bin" if binary else "cifar-10-batches-py"
  suffix = ".bin" if binary else ""
  names = {"train": [f"data_batch_{i}{suffix}" for i in range(1, 6)],
           "test": [f"test_batch{suffix}"]}
  members = {}
  try:
    with tarfile.open(path) as archive:
      for member in archive:
        if member.isfile() and os.path.dirname(member.name) == folder:
          members[os.path.basename(member.name)] = (
              archive.extractfile(member).read())
  except (tarfile.TarError, OSError, EOFError) as e:
    raise ValueError(f"{path}: not a readable CIFAR-10 tar archive ({e}). "
                     f"{_CIFAR_HELP}") from e
  out = {}
  for split, files in names.items():
    images, labels = [], []
    for name in files:
      if name not in members:
        raise ValueError(f"{path}: {folder}/{name} is missing. {_CIFAR_HELP}")
      try:
        batch_images, batch_labels = _cifar_batch(name, members[name])
      except (ValueError, KeyError, pickle.UnpicklingError, EOFError) as e:
        raise dataset.DataError(path, f"member {folder}/{name}", f"malformed "
                                f"data ({e})", "a CIFAR-10 batch. "
                                f"{_CIFAR_HELP}") from None
      check_labels(batch_labels, path, f"member {folder}/{name}, record")
      images.append(rgb_to_gray(batch_images))
      labels.append(batch_labels)
    out[split] = np.concatenate(images), np.concatenate(labels)
  return out


@functools.lru_cache(maxsize=1)
def _cifar_archive_in_tfds_order(path: str, size: int, mtime_ns: int):
  del size, mtime_ns  # Only in the lru key.
  out = {}
  for split, (images, labels) in read_cifar_archive(path).items():
    order = tfds_order(len(labels), split)
    out[split] = images[order], labels[order]
  return out


# ---------------------------------------------------------- Fashion-MNIST


def read_idx(path: str) -> np.ndarray:
  """An IDX file (optionally .gz) of unsigned bytes, as a uint8 array."""
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError) as e:
    raise ValueError(f"{path}: unreadable ({e}). {_FASHION_HELP}") from e
  if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
    raise ValueError(f"{path}: not an IDX file of unsigned bytes (magic "
                     f"{data[:4].hex()}). {_FASHION_HELP}")
  ndim = data[3]
  shape = tuple(np.frombuffer(data, ">u4", ndim, offset=4).astype(int))
  size = int(np.prod(shape))
  if len(data) != 4 + 4 * ndim + size:
    raise ValueError(f"{path}: {len(data)} bytes, but the header {shape} "
                     f"needs {4 + 4 * ndim + size}. {_FASHION_HELP}")
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_files(data_dir: str | None, part: str) -> tuple[str, str]:
  folder = data_dir or FASHION_MNIST_DIR
  paths = []
  for stem in FASHION_MNIST_FILES[part]:
    candidates = [os.path.join(folder, stem + ext) for ext in (".gz", "")]
    found = [p for p in candidates if os.path.isfile(p)]
    if not found:
      raise FileNotFoundError(f"Fashion-MNIST file not found: {candidates[0]}"
                              f" (or without .gz). {_FASHION_HELP}")
    paths.append(found[0])
  return paths[0], paths[1]


# --------------------------------------------------------------- loader


def _slice(num: int, split: str) -> slice:
  cut = (num * TRAIN_FRACTION + 50) // 100  # TFDS rounds percent to nearest.
  return slice(0, cut) if split == "train" else slice(cut, num)


def load(split: str, *, source: str, data_dir: str | None = None,
         max_length: int | None = None, cache_dir: str | None = None,
         max_examples: int | None = None, downsample: int = 1,
         **options) -> dataset.SplitData:
  """Loads one split of LRA Image (`inputs` int32 [N, H*W], `targets`)."""
  dataset.check_split_and_source("image", split, source, SOURCES)
  if options:
    raise ValueError(f"unknown image option(s) {sorted(options)}; valid: "
                     "['cache_dir', 'downsample', 'max_examples']")
  downsample = int(downsample)
  part = "test" if split == "test" else "train"
  if source == "fashion_mnist":
    files = fashion_mnist_files(data_dir, part)

    def read():
      images, labels = read_idx(files[0]), read_idx(files[1])
      if images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise ValueError(f"{files[0]}, {files[1]}: shapes {images.shape} and "
                         f"{labels.shape} are not [N, 28, 28] and [N]")
      check_labels(labels, files[1], "example")
      return images, labels
  else:
    kind, path, root = text.find_tfds("cifar10", CIFAR_ARCHIVES, data_dir,
                                      _CIFAR_HELP)
    files = [path if kind == "archive" else
             os.path.join(path, "dataset_info.json")]

    def read():
      if kind == "prepared":
        images, labels = text.read_tfds("cifar10", part, root,
                                        ("image", "label"))
        return rgb_to_gray(np.stack(images)), np.asarray(labels)
      stat = os.stat(path)
      return _cifar_archive_in_tfds_order(path, stat.st_size,
                                          stat.st_mtime_ns)[part]
  side = 28 if source == "fashion_mnist" else 32
  if downsample < 1 or side % downsample:
    raise ValueError(f"downsample must be >= 1 and divide {side}; got "
                     f"{downsample}")
  num_pixels = (side // downsample) ** 2
  if max_length not in (None, num_pixels):
    raise ValueError(f"image source {source!r} with downsample={downsample} "
                     f"has {num_pixels} pixels; got max_length={max_length} "
                     "(leave it unset)")

  def build():
    images, labels = read()
    if split != "test":
      rows = _slice(len(labels), split)
      images, labels = images[rows], labels[rows]
    if downsample > 1:
      images = downsample_images(images, downsample)
    return dataset.SplitData(
        arrays=dict(inputs=pixel_ids(images),
                    targets=np.asarray(labels, np.int32).reshape(-1)),
        vocab_size=VOCAB_SIZE, num_classes=NUM_CLASSES, max_length=num_pixels,
        task="image", split=split, source=source)

  key = dict(kind=source if source == "fashion_mnist" else kind,
             downsample=downsample, version=_VERSION,
             files=cache.fingerprint(files))
  return cache.load(build, task="image", source=source, split=split, key=key,
                    cache_dir=cache_dir, max_examples=max_examples)

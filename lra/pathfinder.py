"""Pathfinder and Path-X: the LRA release's files, and our own generator.

Pathfinder (Linsley et al., NeurIPS 2018), as used by Long Range Arena (Tay et
al., ICLR 2021): is there a path between the two marked dots? Pixels are the
tokens, the image flattened row by row: 1024 tokens for Pathfinder (32x32),
16384 for Path-X (128x128); 2 classes. Token id = pixel + 1 (vocab 257), as in
`lra.image`: LRA fed raw pixels to models that mask id 0 as padding, which hid
every black pixel (most of a Pathfinder image).

Release layout (`lra_release.gz`; LRA reads one difficulty folder):
  <data_dir>/pathfinder{32,64,128,256}/curv_{baseline,contour_length_9,
      contour_length_14}/{metadata/<k>.npy, imgs/<k>/sample_<i>.png}
The metadata `.npy` files of the release are TEXT, one image a line,
space-separated: `imgs/<k> sample_<i>.png <i> <label> ...` (fields 0, 1, 3 are
used); the original script's binary `np.save` files are read too. Zero-byte
images are skipped (LRA filters empty images). The kept images, in metadata
file order (by number) and line order, are split 80/10/10 into train, val and
test, as LRA's `split[:80%]`, `[80%:90%]`, `[90%:]`.

Source "generated" draws images with `lra.pathfinder_generator` (seeded,
LRA's settings per resolution): num_train_examples, then num_eval_examples for
val and for test. With data_dir, they are written once, in the release layout,
under data_dir/pathfinder_generated_<hash of the options>/ (the lra_release
source reads that folder too), and read back on later runs.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import shutil

from absl import logging
import numpy as np
from PIL import Image

from lra import cache
from lra import dataset
from lra import image
from lra import pathfinder_generator as generator

RESOLUTIONS = tuple(generator.RESOLUTIONS)
DIFFICULTIES = tuple(generator.DIFFICULTIES)
SOURCES = ("generated", "lra_release")
SPLITS = dataset.SPLITS
VOCAB_SIZE = image.VOCAB_SIZE  # 256 pixel values + 1 (padding, unused).
NUM_CLASSES = 2
SPLIT_FRACTIONS = (0.8, 0.9)  # train [:80%], val [80%:90%], test [90%:].
_GENERATOR_VERSION = 1  # Bump when the generator's output changes.
_GENERATED_OPTIONS = ("seed", "num_train_examples", "num_eval_examples")
_VERSION = 1  # Of the tokenised arrays in lra.cache.
_HELP = (
    "Get LRA's files: download "
    "https://storage.googleapis.com/long-range-arena/lra_release.gz, run "
    "`tar xf lra_release.gz`, and pass data_dir=<...>/lra_release/lra_release "
    "(the folder holding pathfinder32/ ...). Or use source=\"generated\", "
    "which draws the images offline.")


def folder_name(resolution: int, difficulty: str) -> str:
  return os.path.join(f"pathfinder{resolution}", f"curv_{difficulty}")


def find_folder(data_dir: str, resolution: int, difficulty: str) -> str:
  """The difficulty folder (holding metadata/) under data_dir, or an error."""
  candidates = [os.path.join(data_dir, folder_name(resolution, difficulty)),
                os.path.join(data_dir, f"curv_{difficulty}"), data_dir]
  for folder in candidates:
    if os.path.isdir(os.path.join(folder, "metadata")):
      return folder
  raise FileNotFoundError(
      f"no Pathfinder metadata/ folder found; looked in: "
      f"{', '.join(os.path.join(c, 'metadata') for c in candidates)}. {_HELP}")


# ------------------------------------------------------- release files


def read_metadata(folder: str) -> list[tuple[str, int, str, int]]:
  """(image path, label, metadata file, line number) of every listed image."""
  files = glob.glob(os.path.join(folder, "metadata", "*.npy"))
  if not files:
    raise FileNotFoundError(f"no metadata/*.npy files in {folder}. {_HELP}")
  stem = lambda f: os.path.splitext(os.path.basename(f))[0]
  files.sort(key=lambda f: (not stem(f).isdigit(),
                            int(stem(f)) if stem(f).isdigit() else 0, f))
  records = []
  for path in files:
    with open(path, "rb") as f:
      raw = f.read()
    if raw.startswith(b"\x93NUMPY"):  # The generator script's own np.save.
      try:
        rows = [" ".join(map(str, r)) for r in np.load(path, allow_pickle=False)]
      except (ValueError, OSError, EOFError) as e:
        raise dataset.DataError(path, "header", f"an unreadable .npy file ({e})",
                                "text lines or np.save'd string rows "
                                f"(metadata of the release). {_HELP}") from None
    else:
      rows = [dataset.decode_line(line, path, line_no)
              for line_no, line in enumerate(raw.split(b"\n"), 1)]
    for line_no, line in enumerate(rows, 1):
      if not line.strip():
        continue
      parts = line.split()
      if len(parts) < 4 or parts[3] not in ("0", "1"):
        got = (f"label {dataset.show(parts[3])}" if len(parts) >= 4 else
               f"{len(parts)} fields {dataset.show(line)}")
        raise dataset.DataError(path, f"line {line_no}", got,
                                "`imgs/<k> sample_<i>.png <i> <label 0|1> ...`")
      records.append((os.path.join(folder, parts[0], parts[1]),
                      int(parts[3]), path, line_no))
  return records


def read_images(folder: str, resolution: int | None = None):
  """(images uint8 [N, n, n], labels int32 [N]), empty images skipped."""
  images, labels, skipped = [], [], 0
  for path, label, meta, line_no in read_metadata(folder):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path} (listed in {meta}, line {line_no}) "
                              f"does not exist. {_HELP}")
    if os.path.getsize(path) == 0:
      skipped += 1
      continue
    try:
      with Image.open(path) as im:
        pixels = np.asarray(im.convert("L"), np.uint8)
    except (OSError, ValueError, SyntaxError) as e:  # PIL's decoding errors.
      raise dataset.DataError(meta, f"line {line_no}", f"image {path}, "
                              f"unreadable ({e})", "a PNG image") from None
    n = resolution or (images[0].shape[0] if images else pixels.shape[0])
    if pixels.shape != (n, n):
      raise dataset.DataError(meta, f"line {line_no}", f"image {path} of "
                              f"shape {pixels.shape}", f"({n}, {n}) pixels")
    images.append(pixels)
    labels.append(label)
  if skipped:
    logging.info("Pathfinder: skipped %d empty images in %s", skipped, folder)
  if not images:
    raise ValueError(f"no non-empty images listed under {folder}")
  return np.stack(images), np.asarray(labels, np.int32)


def write_release(folder: str, images: np.ndarray, labels: np.ndarray, *,
                  images_per_batch: int = 1000, fields: str = "") -> None:
  """Writes imgs/<k>/sample_<i>.png and text metadata/<k>.npy, as released.

  `fields` fills the metadata columns after the label (the original's
  continuity, contour_length, ...); only columns 0, 1 and 3 are read.
  """
  for start in range(0, len(images), images_per_batch):
    k = start // images_per_batch
    os.makedirs(os.path.join(folder, "imgs", str(k)), exist_ok=True)
    os.makedirs(os.path.join(folder, "metadata"), exist_ok=True)
    lines = []
    for i in range(start, min(start + images_per_batch, len(images))):
      name = f"sample_{i - start}.png"
      Image.fromarray(images[i], "L").save(
          os.path.join(folder, "imgs", str(k), name))
      lines.append(f"imgs/{k} {name} {i - start} {int(labels[i])} {fields}"
                   .rstrip())
    with open(os.path.join(folder, "metadata", f"{k}.npy"), "w") as f:
      f.write("\n".join(lines) + "\n")


def split_bounds(num_examples: int) -> dict[str, tuple[int, int]]:
  """LRA's 80/10/10 split of one difficulty folder, as index ranges."""
  a, b = (int(round(f * num_examples)) for f in SPLIT_FRACTIONS)
  return {"train": (0, a), "val": (a, b), "test": (b, num_examples)}


# ----------------------------------------------------------- generated


def generated_params(resolution: int, difficulty: str, **options) -> dict:
  params = dict(seed=0, num_train_examples=160_000, num_eval_examples=20_000,
                resolution=resolution, difficulty=difficulty)
  params.update(options)
  return params


def _generate_splits(params: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  sizes = dict(train=params["num_train_examples"],
               val=params["num_eval_examples"],
               test=params["num_eval_examples"])
  images, labels = generator.generate(
      sum(sizes.values()), resolution=params["resolution"],
      difficulty=params["difficulty"], seed=params["seed"])
  return _cut(images, labels, sizes)


def _cut(images, labels, sizes):
  out, offset = {}, 0
  for split, size in sizes.items():
    out[split] = images[offset:offset + size], labels[offset:offset + size]
    offset += size
  return out


@functools.lru_cache(maxsize=1)
def _generate_in_memory(key: str):
  return _generate_splits(json.loads(key))


def _load_generated(data_dir: str | None, params: dict):
  key = json.dumps(dict(params, version=_GENERATOR_VERSION), sort_keys=True)
  if data_dir is None:
    return _generate_in_memory(key)
  root = os.path.join(data_dir, "pathfinder_generated_" +
                      hashlib.sha256(key.encode()).hexdigest()[:12])
  folder = os.path.join(root, folder_name(params["resolution"],
                                          params["difficulty"]))
  if not os.path.exists(os.path.join(root, "params.json")):
    logging.info("Pathfinder: generating %s into %s", params, root)
    splits = _generate_splits(params)
    tmp = f"{root}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp_folder = os.path.join(tmp, folder_name(params["resolution"],
                                               params["difficulty"]))
    s = generator.settings(params["resolution"], params["difficulty"])
    fields = " ".join(str(v) for v in (
        s["continuity"], s["contour_length"], s["distractor_length"],
        s["paddle_length"], s["paddle_thickness"],
        "/".join(map(str, s["paddle_margins"])), len(s["paddle_contrasts"])))
    write_release(tmp_folder, np.concatenate([splits[s][0] for s in SPLITS]),
                  np.concatenate([splits[s][1] for s in SPLITS]), fields=fields)
    with open(os.path.join(tmp, "params.json"), "w") as f:
      f.write(key)
    os.replace(tmp, root)  # Atomic: a half-written cache is never seen.
    return splits
  logging.info("Pathfinder: reading cached %s", folder)
  images, labels = read_images(folder, params["resolution"])
  return _cut(images, labels, dict(train=params["num_train_examples"],
                                   val=params["num_eval_examples"],
                                   test=params["num_eval_examples"]))


# --------------------------------------------------------------- loader


def load(split: str, *, source: str, data_dir: str | None = None,
         max_length: int | None = None, resolution: int = 32,
         difficulty: str = "contour_length_14", cache_dir: str | None = None,
         max_examples: int | None = None, **options) -> dataset.SplitData:
  """Loads one split: `inputs` int32 [N, resolution**2] (pixel + 1), `targets`.

  Args:
    split: "train", "val" or "test".
    source: "lra_release" reads the release folder (see the module doc);
      "generated" draws images with our generator.
    data_dir: "lra_release": the folder holding pathfinder{resolution}/ (or
      that folder, or the difficulty folder itself). "generated": optional;
      the images are also written there in the release layout.
    max_length: must be None or resolution**2 (images are not cut).
    resolution: 32 (LRA Pathfinder), 64, 128 (Path-X) or 256.
    difficulty: "baseline" (6 paddles), "contour_length_9" or
      "contour_length_14" (LRA's choice, the default); "generated" only:
      "no_distractors" (baseline without distractor snakes: an easier
      stand-in of our own for short CPU runs, not an LRA level) and
      "no_distractors_2", "_3", "_4" (the same with 2-, 3-, 4-paddle snakes:
      curriculum stages, config.data.curriculum).
    cache_dir, max_examples: see `lra.cache` (tokenised splits are cached).
    **options: "generated" only: seed (0), num_train_examples (160000),
      num_eval_examples (20000 each for val and test; LRA's 80/10/10 of 200k).
  """
  dataset.check_split_and_source("Pathfinder", split, source, SOURCES)
  generator.settings(resolution, difficulty)  # Validates both.
  length = resolution * resolution
  if max_length not in (None, length):
    raise ValueError(f"Pathfinder {resolution}x{resolution} has length "
                     f"{length}; got max_length={max_length}")
  task = "pathx" if resolution == 128 else "pathfinder"
  if source == "lra_release":
    if options:
      raise ValueError(f"unknown option(s) {sorted(options)} for "
                       "source='lra_release'; valid: resolution, difficulty, "
                       "cache_dir, max_examples")
    if data_dir is None:
      raise FileNotFoundError(f"source='lra_release' needs data_dir. {_HELP}")
    folder = find_folder(data_dir, resolution, difficulty)
    files = sorted(glob.glob(os.path.join(folder, "metadata", "*.npy")))
    key = dict(resolution=resolution, difficulty=difficulty, version=_VERSION,
               files=cache.fingerprint(files))

    def read():
      images, labels = read_images(folder, resolution)
      lo, hi = split_bounds(len(labels))[split]
      return images[lo:hi], labels[lo:hi]
  else:
    unknown = sorted(set(options) - set(_GENERATED_OPTIONS))
    if unknown:
      raise ValueError(f"unknown Pathfinder option(s) {unknown} for "
                       f"source='generated'; valid: {_GENERATED_OPTIONS}, "
                       "resolution, difficulty, cache_dir, max_examples")
    params = generated_params(resolution, difficulty, **options)
    key = dict(params, version=_VERSION, generator=_GENERATOR_VERSION)
    read = lambda: _load_generated(data_dir, params)[split]

  def build():
    images, labels = read()
    return dataset.SplitData(
        arrays=dict(inputs=image.pixel_ids(images),
                    targets=np.asarray(labels, np.int32)),
        vocab_size=VOCAB_SIZE, num_classes=NUM_CLASSES, max_length=length,
        task=task, split=split, source=source)

  return cache.load(build, task=task, source=source, split=split, key=key,
                    cache_dir=cache_dir, max_examples=max_examples)

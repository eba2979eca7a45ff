"""Pathfinder / Path-X loading: the LRA release format, splits, the generator."""

import os

import numpy as np
from PIL import Image
import pytest

import lra
from lra import pathfinder

NO_CACHE = dict(cache_dir="")


def write_fixture(root, counts=(7, 6, 5, 4), resolution=32, empty=(1, 3)):
  """A release folder: metadata 0, 1, 2, 10 (text despite .npy) + PNGs.

  Returns the non-empty images and labels in reading order; the images
  listed at (file index 1, line `empty`) are zero-byte files.
  """
  folder = root / f"pathfinder{resolution}" / "curv_contour_length_14"
  rng = np.random.default_rng(0)
  images, labels = [], []
  for k, count in zip((0, 1, 2, 10), counts):
    (folder / "imgs" / str(k)).mkdir(parents=True)
    lines = []
    for i in range(count):
      label = int(rng.integers(2))
      path = folder / "imgs" / str(k) / f"sample_{i}.png"
      if (k, i) == empty:
        path.write_bytes(b"")
      else:
        pixels = rng.integers(0, 256, (resolution, resolution), np.uint8)
        Image.fromarray(pixels, "L").save(path)
        images.append(pixels)
        labels.append(label)
      lines.append(f"imgs/{k} sample_{i}.png {i} {label} 1.0 14 4 2 0.5 1 1")
    (folder / "metadata").mkdir(exist_ok=True)
    (folder / "metadata" / f"{k}.npy").write_text("\n".join(lines) + "\n")
  return folder, np.stack(images), np.array(labels)


def test_release_is_read_in_order_filtered_and_split_80_10_10(tmp_path):
  folder, images, labels = write_fixture(tmp_path)
  assert len(labels) == 21  # 22 listed, one empty image skipped.
  got = {split: lra.load("pathfinder", split, source="lra_release",
                         data_dir=str(tmp_path), **NO_CACHE)
         for split in pathfinder.SPLITS}
  sizes = [len(got[s]) for s in pathfinder.SPLITS]
  assert sizes == [17, 2, 2]  # round(0.8 * 21), round(0.9 * 21) - 17, rest.
  inputs = np.concatenate([got[s].arrays["inputs"] for s in pathfinder.SPLITS])
  targets = np.concatenate([got[s].arrays["targets"]
                            for s in pathfinder.SPLITS])
  np.testing.assert_array_equal(inputs, images.reshape(21, 1024).astype(np.int32) + 1)
  np.testing.assert_array_equal(targets, labels)
  data = got["train"]
  assert data.arrays["inputs"].dtype == data.arrays["targets"].dtype == np.int32
  assert (data.vocab_size, data.num_classes, data.max_length) == (257, 2, 1024)
  assert (data.task, data.source) == ("pathfinder", "lra_release")


def test_data_dir_may_be_any_level_of_the_release(tmp_path):
  folder, _, labels = write_fixture(tmp_path)
  for data_dir in (tmp_path, folder.parent, folder):
    data = lra.load("pathfinder", "test", source="lra_release",
                    data_dir=str(data_dir), **NO_CACHE)
    np.testing.assert_array_equal(data.arrays["targets"], labels[19:])


def test_binary_metadata_of_the_generator_script_is_read(tmp_path):
  folder, _, labels = write_fixture(tmp_path)
  for path in (folder / "metadata").iterdir():
    rows = [line.split() for line in path.read_text().splitlines()]
    os.remove(path)
    with open(path, "wb") as f:  # np.save of a (n, 11) '<U32' array.
      np.save(f, np.array(rows, "<U32"))
  images, got = pathfinder.read_images(str(folder), 32)
  np.testing.assert_array_equal(got, labels)


def test_errors_name_the_file_and_line(tmp_path):
  with pytest.raises(FileNotFoundError, match="lra_release.gz") as e:
    lra.load("pathfinder", "train", source="lra_release",
             data_dir=str(tmp_path), **NO_CACHE)
  assert "pathfinder32/curv_contour_length_14/metadata" in str(e.value)
  folder, _, _ = write_fixture(tmp_path)
  os.remove(folder / "imgs" / "2" / "sample_3.png")
  with pytest.raises(FileNotFoundError, match=r"2\.npy, line 4"):
    pathfinder.read_images(str(folder))
  (folder / "metadata" / "10.npy").write_text("imgs/10 sample_0.png 0 yes\n")
  with pytest.raises(ValueError, match=r"10\.npy, line 1"):
    pathfinder.read_metadata(str(folder))


def test_wrong_image_size_is_an_error(tmp_path):
  folder, _, _ = write_fixture(tmp_path, resolution=16)
  with pytest.raises(ValueError, match=r"\(32, 32\)"):
    pathfinder.read_images(str(folder), 32)


def test_options_are_checked(tmp_path):
  with pytest.raises(ValueError, match="max_length"):
    lra.load("pathfinder", "train", source="generated", max_length=1000)
  with pytest.raises(ValueError, match="unknown Pathfinder option"):
    lra.load("pathfinder", "train", source="generated", colour=True)
  with pytest.raises(ValueError, match="resolution"):
    lra.load("pathfinder", "train", source="generated", resolution=100)
  with pytest.raises(ValueError, match="source"):
    lra.load("pathfinder", "train", source="tfds")


SMALL = dict(num_train_examples=12, num_eval_examples=4, seed=1,
             difficulty="baseline")


def test_generated_writes_the_release_layout_and_reuses_it(tmp_path,
                                                          monkeypatch):
  splits = {s: lra.load("pathfinder", s, source="generated",
                        data_dir=str(tmp_path), **SMALL, **NO_CACHE)
            for s in pathfinder.SPLITS}
  assert [len(splits[s]) for s in pathfinder.SPLITS] == [12, 4, 4]
  (root,) = tmp_path.iterdir()
  assert root.name.startswith("pathfinder_generated_")
  folder = root / "pathfinder32" / "curv_baseline"
  first = (folder / "metadata" / "0.npy").read_text().splitlines()[0]
  assert first.split()[:3] == ["imgs/0", "sample_0.png", "0"]
  assert first.split()[4:] == ["1.0", "6", "2", "2", "0.5", "1", "1"]

  def fail(*args, **kwargs):
    raise AssertionError("regenerated despite the files")

  monkeypatch.setattr(pathfinder.generator, "generate", fail)
  pathfinder._generate_in_memory.cache_clear()
  again = lra.load("pathfinder", "val", source="generated",
                   data_dir=str(tmp_path), **SMALL, **NO_CACHE)
  np.testing.assert_array_equal(again.arrays["inputs"],
                                splits["val"].arrays["inputs"])
  # The lra_release source reads the same folder, split 80/10/10 of 20.
  release = lra.load("pathfinder", "train", source="lra_release",
                     data_dir=str(root), difficulty="baseline", **NO_CACHE)
  np.testing.assert_array_equal(release.arrays["inputs"], np.concatenate(
      [splits["train"].arrays["inputs"], splits["val"].arrays["inputs"]]))


def test_generated_in_memory_matches_the_generator():
  data = lra.load("pathfinder", "test", source="generated", **SMALL,
                  **NO_CACHE)
  images, labels = pathfinder.generator.generate(20, seed=1,
                                                 difficulty="baseline")
  np.testing.assert_array_equal(data.arrays["inputs"],
                                images[16:].reshape(4, 1024).astype(np.int32) + 1)
  np.testing.assert_array_equal(data.arrays["targets"], labels[16:])


def test_pathx_is_128_by_128():
  data = lra.load("pathx", "val", source="generated", num_train_examples=1,
                  num_eval_examples=1, difficulty="baseline", **NO_CACHE)
  assert data.arrays["inputs"].shape == (1, 16384)
  assert (data.task, data.max_length) == ("pathx", 16384)

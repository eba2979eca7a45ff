"""lra.image: LRA's grayscale, CIFAR-10 archives, Fashion-MNIST IDX, errors."""

import hashlib
import importlib.util
import os
import pickle

import numpy as np
import pytest

import lra
from lra import image
from tests.lra.lra_fixtures import isolated_cache  # pylint: disable=unused-import
from tests.lra.lra_fixtures import write_cifar_archive, write_fashion_mnist, write_idx


@pytest.mark.parametrize("rgb, gray", [
    ((0, 0, 0), 0), ((255, 255, 255), 255), ((255, 0, 0), 76),
    ((0, 255, 0), 149), ((0, 0, 255), 29), ((10, 200, 30), 124),
])
def test_grayscale_known_answers(rgb, gray):
  # trunc(255.5 * (0.2989 R + 0.5870 G + 0.1140 B) / 255), as TF.
  assert image.rgb_to_gray(np.array([rgb], np.uint8))[0] == gray


def test_grayscale_matches_the_formula():
  rgb = np.random.default_rng(0).integers(0, 256, (4096, 3), dtype=np.uint8)
  exact = np.floor(255.5 * (rgb.astype(np.float64) / 255) @ [0.2989, 0.5870, 0.1140])
  assert np.mean(image.rgb_to_gray(rgb) == exact) > 0.999


def test_tfds_order_is_md5_of_split_and_key():
  order = image.tfds_order(50, "train")
  hashes = [int(hashlib.md5(f"train{i}".encode()).hexdigest(), 16) for i in order]
  assert hashes == sorted(hashes) and sorted(order) == list(range(50))
  assert (image.tfds_order(50, "test") != order).any()


def cifar_fixture(tmp_path, kind, num_train=20, num_test=6):
  rng = np.random.default_rng(1)
  images = {s: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            for s, n in (("train", num_train), ("test", num_test))}
  labels = {s: rng.integers(0, 10, len(images[s]), dtype=np.uint8) for s in images}
  folder = tmp_path / "downloads" / "manual"
  folder.mkdir(parents=True)
  name = f"cifar-10-{kind}.tar.gz"
  write_cifar_archive(str(folder / name), images, labels, kind=kind)
  return images, labels


@pytest.mark.parametrize("kind", ["binary", "python"])
def test_cifar_archive(tmp_path, kind):
  images, labels = cifar_fixture(tmp_path, kind)
  data = {s: lra.load("image", s, source="tfds", data_dir=str(tmp_path))
          for s in image.SPLITS}
  assert [len(data[s]) for s in image.SPLITS] == [18, 2, 6]  # 90% / 10% / test.
  for split, d in data.items():
    assert d.arrays["inputs"].shape == (len(d), 1024) and d.max_length == 1024
    assert (d.vocab_size, d.num_classes) == (257, 10)
    assert d.arrays["inputs"].min() >= 1  # id = pixel + 1: no pixel is padding.
  order = image.tfds_order(20, "train")
  gray = image.rgb_to_gray(images["train"][order]).reshape(20, 1024) + 1
  train_val = np.concatenate([data["train"].arrays["inputs"], data["val"].arrays["inputs"]])
  np.testing.assert_array_equal(train_val, gray)
  np.testing.assert_array_equal(
      np.concatenate([data["train"].arrays["targets"], data["val"].arrays["targets"]]),
      labels["train"][order])
  test_order = image.tfds_order(6, "test")
  np.testing.assert_array_equal(data["test"].arrays["targets"], labels["test"][test_order])
  # Row-major flattening: pixel (row 1, column 0) is element 32.
  assert train_val[0, 32] == image.rgb_to_gray(images["train"][order[0], 1, 0]) + 1


def test_cifar_python_batches_refuse_foreign_pickles(tmp_path):
  class Evil:
    def __reduce__(self):
      return (os.system, ("true",))
  with pytest.raises(pickle.UnpicklingError, match="refusing"):
    image._cifar_batch("data_batch_1", pickle.dumps({b"data": Evil()}))


def test_cifar_missing_and_malformed(tmp_path):
  with pytest.raises(FileNotFoundError) as info:
    lra.load("image", "train", source="tfds", data_dir=str(tmp_path))
  for part in ("cifar-10-binary.tar.gz", str(tmp_path), "fashion_mnist"):
    assert part in str(info.value)
  (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"\x1f\x8b broken")
  with pytest.raises(ValueError, match="cifar-10-binary.tar.gz"):
    lra.load("image", "train", source="tfds", data_dir=str(tmp_path))


def test_fashion_mnist_fixture(tmp_path):
  parts = write_fashion_mnist(str(tmp_path), num_train=20, num_test=10)
  data = {s: lra.load("image", s, source="fashion_mnist", data_dir=str(tmp_path))
          for s in image.SPLITS}
  assert [len(data[s]) for s in image.SPLITS] == [18, 2, 10]
  train_images, train_labels = parts["train"]
  np.testing.assert_array_equal(data["val"].arrays["inputs"],
                                train_images[18:].reshape(2, 784).astype(np.int32) + 1)
  np.testing.assert_array_equal(data["train"].arrays["targets"], train_labels[:18])
  np.testing.assert_array_equal(data["test"].arrays["targets"], parts["t10k"][1])
  assert data["test"].max_length == 784
  with pytest.raises(ValueError, match="784 pixels"):
    lra.load("image", "test", source="fashion_mnist", data_dir=str(tmp_path),
             max_length=128)


def test_fashion_mnist_errors(tmp_path):
  with pytest.raises(FileNotFoundError) as info:
    lra.load("image", "train", source="fashion_mnist", data_dir=str(tmp_path))
  assert str(tmp_path / "train-images-idx3-ubyte.gz") in str(info.value)
  assert "dataset-fashion-mnist" in str(info.value)
  write_fashion_mnist(str(tmp_path))
  path = tmp_path / "train-labels-idx1-ubyte.gz"
  write_idx(str(path), np.zeros((3, 2), np.uint8))
  with pytest.raises(ValueError, match="shapes"):
    lra.load("image", "train", source="fashion_mnist", data_dir=str(tmp_path))
  path.write_bytes(b"\x00\x00\x0d\x01")  # Not gzip: unreadable.
  with pytest.raises(ValueError, match=str(path)):
    lra.load("image", "train", source="fashion_mnist", data_dir=str(tmp_path))
  raw = tmp_path / "raw-idx"
  raw.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
  with pytest.raises(ValueError, match="needs 13"):
    image.read_idx(str(raw))


@pytest.mark.skipif(not os.path.isdir(image.FASHION_MNIST_DIR),
                    reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_debian_package():
  data = lra.load("image", "val", source="fashion_mnist", max_examples=100)
  assert len(data) == 100 and data.arrays["inputs"].shape == (100, 784)
  test = lra.load("image", "test", source="fashion_mnist")
  assert len(test) == 10_000 and np.bincount(test.arrays["targets"]).tolist() == [1000] * 10


def test_downsample(tmp_path):
  blocks = np.array([[[0, 1, 10, 10], [2, 2, 10, 11], [255, 255, 0, 0],
                      [255, 254, 0, 1]]], np.uint8)
  np.testing.assert_array_equal(image.downsample_images(blocks, 2),
                                [[[1, 10], [255, 0]]])  # 1.25, 10.25, 254.75, 0.25
  parts = write_fashion_mnist(str(tmp_path), num_train=20, num_test=4)
  data = lra.load("image", "test", source="fashion_mnist", data_dir=str(tmp_path),
                  downsample=2)
  assert data.max_length == 196 and data.arrays["inputs"].shape == (4, 196)
  np.testing.assert_array_equal(
      data.arrays["inputs"], image.downsample_images(parts["t10k"][0], 2).reshape(4, 196) + 1)
  for bad in (0, 3):
    with pytest.raises(ValueError, match="downsample"):
      lra.load("image", "test", source="fashion_mnist", data_dir=str(tmp_path),
               downsample=bad)


def test_prepared_tfds_cifar10(tmp_path, monkeypatch):
  from lra import text  # pylint: disable=g-import-not-at-top
  folder = tmp_path / "cifar10" / "3.0.2"
  folder.mkdir(parents=True)
  (folder / "dataset_info.json").write_text("{}")
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
  labels = np.arange(10) % 10
  monkeypatch.setattr(text, "read_tfds", lambda name, split, root, fields: (
      list(rgb), list(labels)))
  val = lra.load("image", "val", source="tfds", data_dir=str(tmp_path))
  np.testing.assert_array_equal(val.arrays["inputs"],
                                image.rgb_to_gray(rgb[9:]).reshape(1, 1024) + 1)
  np.testing.assert_array_equal(val.arrays["targets"], [9])


@pytest.mark.skipif(importlib.util.find_spec("tensorflow_datasets") is None,
                    reason="tensorflow-datasets not installed (optional)")
def test_read_tfds_cifar10_with_mock_data(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from lra import text  # pylint: disable=g-import-not-at-top
  with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
    images, labels = text.read_tfds("cifar10", "test", str(tmp_path), ("image", "label"))
  gray = image.rgb_to_gray(np.stack(images))
  assert gray.shape == (3, 32, 32) and len(labels) == 3

"""Bad data files: every reader's error names the file, the line (or example,
or archive member), the bad value and what was expected (lra.DataError)."""

import tarfile

import numpy as np
import pytest

import lra
from lra import dataset
from lra import image
from lra import listops
from lra import pathfinder
from lra import text
from tests.lra.lra_fixtures import isolated_cache  # pylint: disable=unused-import
from tests.lra.lra_fixtures import write_aclimdb_archive, write_fashion_mnist

GOOD = "( ( ( [MAX 2 ) 9 ) ] )"
HEADER = b"Source\tTarget\n"


def listops_files(folder, test_rows: bytes = None, train_rows: bytes = None):
  """basic_{train,val,test}.tsv with two good rows each, or the given rows."""
  good = f"{GOOD}\t9\n( ( [MIN 3 ) ] )\t3\n".encode()
  for split, rows in (("train", train_rows), ("val", None), ("test", test_rows)):
    (folder / f"basic_{split}.tsv").write_bytes(HEADER + (good if rows is None else rows))
  return folder


def load_listops(folder, split="test"):
  return lra.load("listops", split, source="lra_release", data_dir=str(folder))


@pytest.mark.parametrize("rows, where, got, expected", [
    # Cut short in the middle of the last line (no tab, no newline).
    (f"{GOOD}\t9\n( ( [MIN 3 ) 4".encode(), "line 3", "1 tab-separated field",
     "expected 2: Source<TAB>Target"),
    (f"{GOOD}\t9\n{GOOD}\t\xff\n".encode("latin-1"), "line 3", "not UTF-8",
     "expected a UTF-8 text file"),
    (f"{GOOD}\tnine\n".encode(), "line 2", "label 'nine'", "expected a class id in 0..9"),
    (f"{GOOD}\t9\n{GOOD}\t12\n".encode(), "line 3", "label '12'",
     "expected a class id in 0..9"),
    (f"{GOOD}\t9\n{GOOD}\t-1\n".encode(), "line 3", "label '-1'",
     "expected a class id in 0..9"),
    (f"{GOOD}\t9\n{GOOD}\t9\textra\n".encode(), "line 3", "3 tab-separated fields",
     "expected 2"),
    (f"{GOOD}\t9\n( ( [MEAN 1 ) ] )\t1\n".encode(), "line 3", "token '[MEAN'",
     "expected a ListOps token"),
])
def test_listops_bad_line(tmp_path, rows, where, got, expected):
  folder = listops_files(tmp_path, test_rows=rows)
  with pytest.raises(lra.DataError) as info:
    load_listops(folder)
  message = str(info.value)
  assert message.startswith(f"{folder / 'basic_test.tsv'}, {where}: "), message
  assert got in message and expected in message, message


def test_listops_cut_short_says_so(tmp_path):
  folder = listops_files(tmp_path, test_rows=f"{GOOD}\t9\n( ( [MIN 3".encode())
  with pytest.raises(lra.DataError, match="cut short"):
    load_listops(folder)
  folder = listops_files(tmp_path, test_rows=f"( ( [MIN 3\n{GOOD}\t9\n".encode())
  with pytest.raises(lra.DataError) as info:  # Not the last line: not cut short.
    load_listops(folder)
  assert "line 2" in str(info.value) and "cut short" not in str(info.value)


def test_listops_bad_header_names_the_file(tmp_path):
  path = tmp_path / "basic_test.tsv"
  path.write_bytes(b"\x89PNG\r\n\x1a\n")
  with pytest.raises(lra.DataError, match=f"{path}, line 1: bytes that are not UTF-8"):
    listops.read_tsv(str(path))


def test_listops_good_file_with_blank_and_crlf_lines(tmp_path):
  path = tmp_path / "basic_test.tsv"
  path.write_bytes(HEADER + f"{GOOD}\t9\r\n\r\n( ( [MIN 3 ) ] )\t3\n".encode())
  assert listops.read_tsv(str(path)) == [listops.Example(GOOD, 9),
                                         listops.Example("( ( [MIN 3 ) ] )", 3)]


def test_retrieval_cut_short(tmp_path):
  path = tmp_path / "new_aan_pairs.test.tsv"
  path.write_bytes(b"1.0\ta\tb\tt1\tt2\n0.0\ta\tb\tthe text is c")
  with pytest.raises(lra.DataError) as info:
    lra.load("retrieval", "test", source="lra_release", data_dir=str(tmp_path))
  message = str(info.value)
  assert message.startswith(f"{path}, line 2: 4 tab-separated fields"), message
  assert "cut short" in message and "expected 5: label id1 id2 text1 text2" in message


def write_pathfinder(root, labels=(0, 1, 1, 0, 1, 0, 1, 0, 1, 1)):
  folder = root / "pathfinder32" / "curv_contour_length_14"
  images = np.zeros((len(labels), 32, 32), np.uint8)
  pathfinder.write_release(str(folder), images, np.array(labels), images_per_batch=5)
  return folder


def test_pathfinder_metadata_binary_bytes(tmp_path):
  folder = write_pathfinder(tmp_path)
  meta = folder / "metadata" / "1.npy"
  meta.write_bytes(meta.read_bytes().replace(b"imgs/1 sample_2", b"imgs/1 sam\xffple_2"))
  with pytest.raises(lra.DataError) as info:
    pathfinder.read_metadata(str(folder))
  assert str(info.value).startswith(f"{meta}, line 3: bytes that are not UTF-8")


def test_pathfinder_metadata_bad_label(tmp_path):
  folder = write_pathfinder(tmp_path)
  meta = folder / "metadata" / "0.npy"
  meta.write_text(meta.read_text().replace("imgs/0 sample_4.png 4 1", "imgs/0 sample_4.png 4 2"))
  with pytest.raises(lra.DataError, match=rf"{meta}, line 5: label '2'; expected"):
    lra.load("pathfinder", "train", source="lra_release", data_dir=str(tmp_path))


def test_pathfinder_unreadable_image_names_its_metadata_line(tmp_path):
  folder = write_pathfinder(tmp_path)
  png = folder / "imgs" / "1" / "sample_1.png"
  png.write_bytes(b"not a png")
  with pytest.raises(lra.DataError) as info:
    pathfinder.read_images(str(folder), 32)
  message = str(info.value)
  assert message.startswith(f"{folder / 'metadata' / '1.npy'}, line 2: image {png}")
  assert "expected a PNG image" in message


def test_imdb_archive_cut_short_names_the_member(tmp_path):
  rng = np.random.default_rng(0)
  reviews = {split: [(rng.integers(32, 127, 3000, np.uint8).tobytes(), i % 2)
                     for i in range(8)] for split in ("train", "test")}
  path = tmp_path / text.TFDS_ARCHIVE
  write_aclimdb_archive(str(path), reviews)
  raw = path.read_bytes()
  path.write_bytes(raw[:len(raw) // 2])
  with pytest.raises(lra.DataError) as info:
    lra.load("text", "train", source="tfds", data_dir=str(tmp_path))
  message = str(info.value)
  assert message.startswith(f"{path}, member aclImdb/") or message.startswith(
      f"{path}, the member after aclImdb/"), message
  assert "expected a complete aclImdb_v1.tar.gz" in message


def test_fashion_mnist_label_out_of_range(tmp_path):
  write_fashion_mnist(str(tmp_path))
  from tests.lra.lra_fixtures import write_idx  # pylint: disable=g-import-not-at-top
  labels = np.arange(10, dtype=np.uint8) % 10
  labels[7] = 12
  write_idx(str(tmp_path / "t10k-labels-idx1-ubyte.gz"), labels)
  with pytest.raises(lra.DataError) as info:
    lra.load("image", "test", source="fashion_mnist", data_dir=str(tmp_path))
  assert str(info.value).startswith(
      f"{tmp_path / 't10k-labels-idx1-ubyte.gz'}, example 7: label 12; expected a class"
      " id in 0..9"), str(info.value)


def test_cifar_label_out_of_range_names_member_and_record(tmp_path):
  from tests.lra.lra_fixtures import write_cifar_archive  # pylint: disable=g-import-not-at-top
  images = {s: np.zeros((n, 32, 32, 3), np.uint8) for s, n in (("train", 10), ("test", 4))}
  labels = {"train": np.arange(10) % 10, "test": np.array([1, 2, 11, 3])}
  path = tmp_path / "cifar-10-binary.tar.gz"
  write_cifar_archive(str(path), images, labels, kind="binary")
  with pytest.raises(lra.DataError, match=rf"{path}, member cifar-10-batches-bin/"
                     r"test_batch.bin, record 2: label 11; expected a class id in 0..9"):
    image.read_cifar_archive(str(path))


@pytest.mark.parametrize("arrays, message", [
    (dict(inputs=np.ones((3, 4), np.int32), targets=np.array([1, 12, 0], np.int32)),
     "example 1 (targets): label 12; expected a class id in 0..9 (10 classes)"),
    (dict(inputs=np.array([[1, 2], [3, 16], [0, 0]], np.int32),
          targets=np.zeros(3, np.int32)),
     "example 1 (inputs): token id 16; expected a token id in 0..15"),
    (dict(inputs=np.ones((3, 4), np.int32), targets=np.array([0, 0, -1], np.int32)),
     "example 2 (targets): label -1"),
])
def test_load_checks_labels_and_token_ids_of_every_split(monkeypatch, arrays, message):
  """Any source (a prepared TFDS dataset, a cache entry) is range-checked."""
  def fake_load(split, **kwargs):
    del kwargs
    return dataset.SplitData(arrays=arrays, vocab_size=16, num_classes=10,
                             max_length=arrays["inputs"].shape[1], task="listops",
                             split=split, source="fake")
  monkeypatch.setitem(lra.TASKS, "listops", fake_load)
  with pytest.raises(lra.DataError, match=r"listops test split \(source 'fake'\), "
                     + message.replace("(", r"\(").replace(")", r"\)")):
    lra.load("listops", "test", source="fake")


def test_data_error_reads_well():
  error = dataset.DataError("/d/basic_test.tsv", "line 3", "label '12'",
                            "a class id in 0..9", "See the docs")
  assert str(error) == ("/d/basic_test.tsv, line 3: label '12'; expected a class id in"
                        " 0..9. See the docs")
  assert isinstance(error, ValueError)
  assert dataset.show("x" * 200).endswith("...xx'") and len(dataset.show("x" * 200)) <= 60


def test_good_archive_still_reads(tmp_path):
  path = tmp_path / text.TFDS_ARCHIVE
  write_aclimdb_archive(str(path), {"train": [(b"good", 1)], "test": [(b"bad", 0)]})
  assert text.read_imdb_archive(str(path)) == {"train": ([b"good"], [1]),
                                               "test": ([b"bad"], [0])}
  assert tarfile.is_tarfile(path)

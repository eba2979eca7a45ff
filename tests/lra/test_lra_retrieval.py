"""lra.retrieval: AAN pair TSVs in LRA's format, encoding, errors."""

import os

import numpy as np
import pytest

import lra
from lra import retrieval
from lra import text
from tests.lra.lra_fixtures import aan_rows, isolated_cache, write_aan_release  # pylint: disable=unused-import


def test_reads_lras_tsv_format(tmp_path):
  write_aan_release(str(tmp_path), num_train=6, num_eval=3)
  names = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tsv")
  assert names == ["new_aan_pairs.eval.tsv", "new_aan_pairs.test.tsv",
                   "new_aan_pairs.train.tsv"]
  line = (tmp_path / "new_aan_pairs.train.tsv").read_bytes().split(b"\n")[0]
  assert line.split(b"\t")[0] in (b"0.0", b"1.0")
  rows = aan_rows(3, seed=1)  # The fixture's val rows.
  data = lra.load("retrieval", "val", source="lra_release", data_dir=str(tmp_path))
  assert sorted(data.arrays) == ["inputs1", "inputs2", "targets"]
  assert data.arrays["inputs1"].shape == data.arrays["inputs2"].shape == (3, 4000)
  assert (data.vocab_size, data.num_classes, data.max_length) == (257, 2, 4000)
  np.testing.assert_array_equal(data.arrays["targets"], [r[0] for r in rows])
  for i, row in enumerate(rows):
    assert text.decode_bytes(data.arrays["inputs1"][i]) == row[3].encode()
    assert text.decode_bytes(data.arrays["inputs2"][i]) == row[4].encode()  # b'..' kept


def test_truncation_and_raw_bytes(tmp_path):
  long = "\u00e9" * 6000  # 12,000 bytes: LRA keeps the first 10,000.
  retrieval.write_tsv(retrieval.tsv_path(str(tmp_path), "train"),
                      [(1, "a", "b", long, "xy")])
  data = lra.load("retrieval", "train", source="lra_release",
                  data_dir=str(tmp_path), max_length=12_000)
  assert (data.arrays["inputs1"][0] != 0).sum() == 10_000
  short = lra.load("retrieval", "train", source="lra_release",
                   data_dir=str(tmp_path), max_length=5)
  np.testing.assert_array_equal(short.arrays["inputs1"][0], [196, 170, 196, 170, 196])
  np.testing.assert_array_equal(short.arrays["inputs2"][0], [121, 122, 0, 0, 0])


@pytest.mark.parametrize("line, problem", [
    (b"1.0\ta\tb\tonly four", "4 tab-separated fields"),
    (b"yes\ta\tb\tt1\tt2", "label 'yes'; expected 0 or 1"),
    (b"2.0\ta\tb\tt1\tt2", "label '2.0'; expected 0 or 1"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, problem):
  path = tmp_path / "new_aan_pairs.test.tsv"
  path.write_bytes(b"0.0\ta\tb\tt1\tt2\n" + line + b"\n")
  with pytest.raises(ValueError) as info:
    lra.load("retrieval", "test", source="lra_release", data_dir=str(tmp_path))
  assert f"{path}, line 2: " in str(info.value) and problem in str(info.value)
  assert "lra_release.gz" in str(info.value)
  cache_dir = tmp_path / "cache"
  assert not cache_dir.exists() or not list(cache_dir.iterdir())


def test_missing_files(tmp_path):
  with pytest.raises(FileNotFoundError) as info:
    lra.load("retrieval", "val", source="lra_release", data_dir=str(tmp_path))
  assert str(tmp_path / "new_aan_pairs.eval.tsv") in str(info.value)
  assert "lra_release.gz" in str(info.value)
  with pytest.raises(FileNotFoundError, match="data_dir"):
    lra.load("retrieval", "val", source="lra_release")
  with pytest.raises(ValueError, match="lra_release"):
    lra.load("retrieval", "val", source="generated")


def test_prepare_data_extracts_lras_release(tmp_path):
  import importlib.util  # pylint: disable=g-import-not-at-top
  import io
  import tarfile
  path = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "prepare_data.py")
  spec = importlib.util.spec_from_file_location("prepare_data", path)
  prepare_data = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(prepare_data)
  write_aan_release(str(tmp_path / "src"), num_train=4, num_eval=2)
  release = tmp_path / "lra_release.gz"
  with tarfile.open(release, "w:gz") as archive:  # LRA's nested layout.
    for split_file in sorted((tmp_path / "src").iterdir()):
      archive.add(split_file, f"lra_release/lra_release/tsv_data/{split_file.name}")
    info = tarfile.TarInfo("lra_release/lra_release/listops-1000/basic_test.tsv")
    data = b"Source\tTarget\n( [MAX 1 2 ] )\t2\n"
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))
  out = tmp_path / "out"
  prepare_data.extract_release(str(release), ["retrieval", "listops"], str(out))
  assert sorted(p.name for p in (out / "tsv_data").iterdir()) == sorted(
      p.name for p in (tmp_path / "src").iterdir())
  assert (out / "listops-1000" / "basic_test.tsv").read_bytes() == data
  data = lra.load("retrieval", "train", source="lra_release",
                  data_dir=str(out / "tsv_data"))
  assert len(data) == 4

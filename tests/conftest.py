"""Test-wide settings: CPU only, so tests never depend on an accelerator.

Tiers: tests marked `slow` (end-to-end training, subprocesses, several
processes or devices, the heaviest equivalence checks, and the variant classes
of a mechanism's contract) are left out by `pytest -m "not slow"`, the quick
local run; CI and the README's test command run everything.
"""

import os

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _is_contract_variant(cls) -> bool:
  """A Test class deriving from another Test class: the same contract, other options."""
  return cls is not None and any(
      base.__name__.startswith("Test") for base in cls.__mro__[1:])


def pytest_collection_modifyitems(config, items):
  del config
  for item in items:
    if _is_contract_variant(getattr(item, "cls", None)):
      item.add_marker(pytest.mark.slow)

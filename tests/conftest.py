"""Test-wide settings: CPU only, so tests never depend on an accelerator.

Tiers: tests marked `slow` (end-to-end training, subprocesses, several
processes or devices, the heaviest equivalence checks, and the variant classes
of a mechanism's contract) are left out by `pytest -m "not slow"`, the quick
local run, which also draws one example per property test instead of four
(hypothesis profile "quick"); CI and the README's test command run everything.
"""

import os

import hypothesis
import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

hypothesis.settings.register_profile("full", max_examples=4)
hypothesis.settings.register_profile("quick", max_examples=1)


def pytest_configure(config):
  quick = config.getoption("markexpr", "").replace(" ", "") == "notslow"
  hypothesis.settings.load_profile("quick" if quick else "full")


def _is_contract_variant(cls) -> bool:
  """A Test class deriving from another Test class: the same contract, other options."""
  return cls is not None and any(
      base.__name__.startswith("Test") for base in cls.__mro__[1:])


def pytest_collection_modifyitems(config, items):
  del config
  for item in items:
    if _is_contract_variant(getattr(item, "cls", None)):
      item.add_marker(pytest.mark.slow)

"""The registry, `pattern()`, and that every registered mechanism is in the shared base."""

import importlib
import pathlib

import numpy as np
import pytest

from tests.attention.attention_contract import AttentionContract
from efficient_transformers import attention


def test_unknown_name_lists_registered_names():
  with pytest.raises(ValueError, match="unknown attention 'nope'.*dense"):
    attention.get("nope")


def test_registry_is_a_plain_dict_of_callables():
  assert type(attention.REGISTRY) is dict
  assert all(callable(fn) for fn in attention.REGISTRY.values())
  assert set(attention.PATTERNS) <= set(attention.REGISTRY)


def test_pattern_unknown_name():
  with pytest.raises(ValueError, match="unknown attention 'nope'"):
    attention.pattern("nope", 4, 4)


def test_dense_pattern():
  np.testing.assert_array_equal(attention.pattern("dense", 3, 3), np.ones((1, 3, 3), bool))
  np.testing.assert_array_equal(
      attention.pattern("dense", 2, 3, causal=True)[0],
      [[True, True, False], [True, True, True]])


def test_every_registered_mechanism_joins_the_shared_base():
  for path in pathlib.Path(__file__).parent.glob("test_*.py"):
    importlib.import_module(f"tests.attention.{path.stem}")
  covered = {cls.name for cls in _subclasses(AttentionContract)
             if cls.__name__.startswith("Test")}
  missing = set(attention.REGISTRY) - covered
  assert not missing, f"no AttentionContract test class for: {sorted(missing)}"


def _subclasses(cls):
  for sub in cls.__subclasses__():
    yield sub
    yield from _subclasses(sub)

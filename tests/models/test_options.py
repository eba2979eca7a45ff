"""Option groups of the model config: unknown keys rejected, defaults filled."""

import pytest

from efficient_transformers.models.funnel import funnel_options
from efficient_transformers.models.moe import moe_options
from efficient_transformers.models.options import with_defaults


def test_with_defaults_fills_and_overrides():
  assert with_defaults("g", {"a": 3}, {"a": 1, "b": 2}) == {"a": 3, "b": 2}


@pytest.mark.parametrize("check, group", [
    (lambda o: moe_options(o), "moe"),
    (lambda o: funnel_options({"block_sizes": (1, 1), **o}, num_layers=2), "funnel"),
])
def test_unknown_keys_name_the_group_and_the_valid_keys(check, group):
  with pytest.raises(ValueError, match=rf"unknown {group} options \['typo'\] "
                     rf"\(config.model.{group}\); valid: \["):
    check({"typo": 1})

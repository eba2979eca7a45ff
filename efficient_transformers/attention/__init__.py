"""Attention mechanisms as pure functions, and their registry.

Every mechanism follows one contract (DESIGN.md, "Attention contract"):

    fn(q, k, v, *, mask=None, causal=False, **options) -> out
    q: [batch, q_len, heads, head_dim]; k, v: [batch, kv_len, heads, head_dim]
    mask: optional bool [batch, kv_len], True = real token (key padding)
    out: [batch, q_len, heads, head_dim], same dtype as q

`get(name)` returns the function; `REGISTRY` is the plain dict behind it.
Mechanisms whose support does not depend on the input also register a pattern
function: `pattern(name, q_len, kv_len, causal=..., **options)` returns the
bool [heads or 1, q_len, kv_len] array of the pairs they attend. That array is
the single truth shared by the oracle tests (dense with that `pair_mask` must
equal the mechanism), the Pallas block layouts and the documentation pictures.

Adding a mechanism: write `attention/<name>.py` with the function (and its
pattern function if the support is fixed), add both to the dicts below, and add
a test class to tests/attention/ that subclasses the shared contract base.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from efficient_transformers.attention.dense import dense, dense_pattern
from efficient_transformers.attention.local import local, local_pattern
from efficient_transformers.attention.sliding_window import sliding_window, sliding_window_pattern
from efficient_transformers.attention.longformer import longformer, longformer_pattern
from efficient_transformers.attention.strided import strided, strided_pattern
from efficient_transformers.attention.axial import axial, axial_pattern
from efficient_transformers.attention.bigbird import bigbird, bigbird_pattern
from efficient_transformers.attention.etc import etc, etc_pattern
from efficient_transformers.attention.image_local_1d import image_local_1d, image_local_1d_pattern
from efficient_transformers.attention.image_local_2d import image_local_2d, image_local_2d_pattern
from efficient_transformers.attention.memory_compressed import memory_compressed
from efficient_transformers.attention.linear import linear
from efficient_transformers.attention.linformer import linformer
from efficient_transformers.attention.nystromformer import nystromformer
from efficient_transformers.attention.performer import performer
from efficient_transformers.attention.synthesizer import synthesizer_dense, synthesizer_random

REGISTRY: dict[str, Callable] = {
    "dense": dense,
    "local": local,
    "sliding_window": sliding_window,
    "longformer": longformer,
    "strided": strided,
    "linear": linear,
    "linformer": linformer,
    "nystromformer": nystromformer,
    "performer": performer,
    "synthesizer_dense": synthesizer_dense,
    "synthesizer_random": synthesizer_random,
    "axial": axial,
    "bigbird": bigbird,
    "etc": etc,
    "image_local_1d": image_local_1d,
    "image_local_2d": image_local_2d,
    "memory_compressed": memory_compressed,
}

PATTERNS: dict[str, Callable[..., np.ndarray]] = {
    "dense": dense_pattern,
    "local": local_pattern,
    "sliding_window": sliding_window_pattern,
    "longformer": longformer_pattern,
    "strided": strided_pattern,
    "axial": axial_pattern,
    "bigbird": bigbird_pattern,
    "etc": etc_pattern,
    "image_local_1d": image_local_1d_pattern,
    "image_local_2d": image_local_2d_pattern,
}


def get(name: str) -> Callable:
  """The attention function registered as `name`."""
  try:
    return REGISTRY[name]
  except KeyError:
    raise ValueError(
        f"unknown attention {name!r}; registered: {', '.join(sorted(REGISTRY))}"
    ) from None


def pattern(name: str, q_len: int, kv_len: int, *, causal: bool = False,
            **options) -> np.ndarray:
  """bool [heads or 1, q_len, kv_len]: the pairs `name` attends with `options`."""
  if name not in PATTERNS:
    if name in REGISTRY:
      raise ValueError(
          f"attention {name!r} has no fixed pattern (its support depends on the"
          f" input); fixed patterns: {', '.join(sorted(PATTERNS))}")
    get(name)  # raises the unknown-name error
  return PATTERNS[name](q_len, kv_len, causal=causal, **options)


__all__ = ["REGISTRY", "PATTERNS", "get", "pattern", "dense"]

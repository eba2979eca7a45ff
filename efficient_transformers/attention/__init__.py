"""Attention mechanisms as pure functions, and their registry.

Every mechanism follows one contract (docs/design.md, "The attention contract"):

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

Incremental decoding: `decoder(name)` returns the `Decoder` registered in
`DECODERS` (two pure functions, for causal mechanisms that can run one token at
a time with a bounded state; models/decoding.py uses them):

    state = decoder.init_state(batch, heads, head_dim, max_length, dtype, **options)
    out_t, state = decoder.step(state, q_t, k_t, v_t, key_mask=None, **options)
    q_t, k_t, v_t: [batch, heads, head_dim], the token at the next position;
    key_mask: optional bool [batch], False = padding; out_t as q_t.

Step t equals row t of `fn(q, k, v, causal=True, **options)`. The state is a
KV cache (dense), the current block (local), ring buffers (sliding_window)
(decode_cache.py), or the recurrent state of linear and performer.

Adding a mechanism: write `attention/<name>.py` with the function (and its
pattern function if the support is fixed), add both to the dicts below, and add
a test class to tests/attention/ that subclasses the shared contract base.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

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
from efficient_transformers.attention.routing import routing
from efficient_transformers.attention.sinkhorn import sinkhorn
from efficient_transformers.attention import decode_cache
from efficient_transformers.attention.linear import linear_decode_step, linear_init_decode_state
from efficient_transformers.attention.performer import performer_decode_step, performer_init_decode_state
from efficient_transformers.attention.reformer import reformer
from efficient_transformers.attention.isab import isab

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
    "routing": routing,
    "sinkhorn": sinkhorn,
    "reformer": reformer,
    "isab": isab,
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
  options.pop("impl", None)  # "xla" and "pallas" attend the same pairs
  return PATTERNS[name](q_len, kv_len, causal=causal, **options)


class Decoder(NamedTuple):
  """A mechanism's incremental decoding functions (see the module docstring)."""
  init_state: Callable
  step: Callable


DECODERS: dict[str, Decoder] = {
    "dense": Decoder(decode_cache.dense_init_decode_state, decode_cache.dense_decode_step),
    "local": Decoder(decode_cache.local_init_decode_state, decode_cache.local_decode_step),
    "sliding_window": Decoder(decode_cache.sliding_window_init_decode_state,
                              decode_cache.sliding_window_decode_step),
    "linear": Decoder(linear_init_decode_state, linear_decode_step),
    "performer": Decoder(performer_init_decode_state, performer_decode_step),
}


def decoder(name: str) -> Decoder:
  """The incremental decoder of `name`; ValueError naming the decodable ones."""
  if name not in DECODERS:
    get(name)  # raises the unknown-name error
    raise ValueError(
        f"attention {name!r} has no incremental decoder (token-by-token"
        f" generation); decodable: {', '.join(sorted(DECODERS))}")
  return DECODERS[name]


__all__ = ["DECODERS", "Decoder", "decoder",
           "REGISTRY", "PATTERNS", "get", "pattern", "dense"]

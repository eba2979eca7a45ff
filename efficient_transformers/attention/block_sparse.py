"""`impl="pallas"` for the fixed-pattern mechanisms: their `pattern()` run by the
Pallas block-sparse flash-attention kernel (kernels/block_sparse_attention.py).

Every mechanism whose support is fixed (dense, local, sliding_window,
longformer, strided, bigbird, etc, image_local_1d, image_local_2d, axial)
takes `impl`:
  "xla"    (default) its own jax.lax implementation;
  "pallas" its element pattern (the same function `attention.pattern` uses,
           with the same options) cut into [block, block] tiles
           (kernels/block_layout.py) and computed by the Pallas kernel, which
           visits only the non-empty tiles. Same function, same numerics
           (float32 softmax, zero rows for queries with nothing to attend to).
The layout is built on the host with NumPy once per (pattern, lengths, causal,
options, block) and cached, so the options must be concrete: a traced `rng` or
array option raises ValueError (pass an int seed, or build the option outside
jit). Memory: the host builds the bool [heads or 1, q_len, kv_len] pattern
once per shape (1 GB at 32K x 32K for one head), the device never does.

Tile size: `block_size_for(length)` = a power of two, 1/4 of the length rounded
up, clipped to [16, 128] (128 x 128 tiles on accelerators; TPU needs 128, the
GPU's Triton dots need >= 16).
"""

from __future__ import annotations

import jax
import numpy as np

from efficient_transformers.kernels.block_layout import BlockLayout, build_layout
from efficient_transformers.kernels.block_sparse_attention import block_sparse_attention

IMPLS = ("xla", "pallas")
MAX_BLOCK, MIN_BLOCK = 128, 16
_LAYOUTS: dict = {}
_MAX_CACHED = 64


def check_impl(name: str, impl) -> str:
  """`impl`, validated: "xla" or "pallas"."""
  if impl not in IMPLS:
    raise ValueError(f"{name} impl must be one of {', '.join(IMPLS)}, got {impl!r}")
  return impl


def block_size_for(length: int) -> int:
  quarter = max(1, -(-length // 4))
  return int(min(MAX_BLOCK, max(MIN_BLOCK, 1 << (quarter - 1).bit_length())))


def _freeze(name, key, value):
  """A hashable, concrete stand-in for an option value (for the layout cache)."""
  if isinstance(value, (list, tuple)):
    return tuple(_freeze(name, key, x) for x in value)
  if isinstance(value, (jax.Array, np.ndarray)):
    try:
      if isinstance(value, jax.Array) and jax.dtypes.issubdtype(
          value.dtype, jax.dtypes.prng_key):
        value = jax.random.key_data(value)
      array = np.asarray(value)
    except (jax.errors.TracerArrayConversionError,
            jax.errors.ConcretizationTypeError) as error:
      raise ValueError(
          f"{name} impl='pallas' builds its block tables on the host, so option"
          f" {key!r} must be concrete, not traced under jit: pass it as a Python"
          " value (e.g. an int seed for rng) or compute it outside the jitted"
          " function; or use impl='xla'") from error
    return ("array", array.shape, array.dtype.str, array.tobytes())
  return value


def layout_for(name, pattern_fn, q_len, kv_len, *, causal, block_q=None,
               block_k=None, **options) -> BlockLayout:
  """The cached block layout of `pattern_fn(q_len, kv_len, causal=, **options)`."""
  block_q = block_q or block_size_for(q_len)
  block_k = block_k or block_size_for(kv_len)
  # Concrete option values (e.g. a key made outside jit, bigbird's random draw)
  # are evaluated on the host even while an outer jit is tracing.
  with jax.ensure_compile_time_eval():
    key = (pattern_fn, q_len, kv_len, bool(causal), block_q, block_k,
           tuple(sorted((k, _freeze(name, k, v)) for k, v in options.items())))
    if key not in _LAYOUTS:
      if len(_LAYOUTS) >= _MAX_CACHED:
        _LAYOUTS.pop(next(iter(_LAYOUTS)))
      pattern = pattern_fn(q_len, kv_len, causal=causal, **options)
      _LAYOUTS[key] = build_layout(pattern, block_q, block_k)
  return _LAYOUTS[key]


def attend(name, pattern_fn, q, k, v, *, mask=None, causal=False, **options):
  """Attention of `name` with impl="pallas": its pattern through the kernel.

  `options` are the pattern function's (the mechanism's options, plus what
  the pattern needs to know of the inputs, e.g. bigbird's `heads`).
  """
  layout = layout_for(name, pattern_fn, q.shape[1], k.shape[1], causal=causal,
                      **options)
  return block_sparse_attention(q, k, v, layout, mask=mask)

"""kernels/block_sparse_attention.py in interpret mode: equals dense with the pattern.

To keep the interpreter's compile count low, one call covers every fixed
pattern at once: head h of the inputs uses pattern h (a per-head layout).
"""

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from efficient_transformers import attention
from efficient_transformers.kernels import aot_lowering
from efficient_transformers.kernels.block_layout import build_layout
from efficient_transformers.kernels.block_sparse_attention import block_sparse_attention

from tests.kernels.pattern_cases import PATTERN_CASES

LENGTH = 37
# On CPU the kernels run interpreted; on a GPU they compile (Triton): dots need
# dims >= 16, and float32 dots may use TF32 there.
COMPILED = jax.default_backend() == "gpu"
HEAD_DIM, BLOCK = (64, 16) if COMPILED else (8, 8)
F32_TOL = 2e-3 if COMPILED else 1e-5


def _inputs(seed, batch, q_len, kv_len, heads, head_dim, dtype=jnp.float32):
  rng = np.random.default_rng(seed)
  shapes = [(batch, q_len, heads, head_dim)] + [(batch, kv_len, heads, head_dim)] * 2
  return tuple(jnp.asarray(rng.normal(size=s), dtype) for s in shapes)


def _all_patterns():
  """bool [heads, 37, 37]: every fixed pattern (causal too), plus empty rows."""
  heads = []
  for name, length, options, causals in PATTERN_CASES:
    if length != LENGTH:
      continue
    for causal in causals:
      heads.extend(attention.pattern(name, LENGTH, LENGTH, causal=causal, **options))
  sparse = np.zeros((LENGTH, LENGTH), bool)
  sparse[:8, 20:30] = True  # query blocks 1.. are empty; rows 8.. have nothing
  sparse[30, 2] = True  # one pair in an otherwise empty block row
  heads.append(sparse)
  return np.stack(heads)


def _padding(batch, kv_len):
  lengths = np.array([kv_len // 2, kv_len, 0])[:batch]  # the last row: all padding
  return jnp.asarray(np.arange(kv_len)[None] < lengths[:, None])


def _vjp(fn, q, k, v, seed):
  out, pullback = jax.vjp(fn, q, k, v)
  cot = jnp.asarray(np.random.default_rng(seed).normal(size=out.shape), out.dtype)
  return (out,) + pullback(cot)


def _check(layout, pairs, q, k, v, mask, rtol, atol, **kernel_options):
  kernel = jax.jit(lambda q, k, v: _vjp(functools.partial(
      block_sparse_attention, layout=layout, mask=mask, **kernel_options), q, k, v, 0))
  reference = jax.jit(lambda q, k, v: _vjp(functools.partial(
      attention.dense, mask=mask, pair_mask=pairs, impl="xla"), q, k, v, 0))
  f32 = lambda x: x.astype(jnp.float32)
  got = kernel(q, k, v)
  want = reference(f32(q), f32(k), f32(v))
  for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
    assert a.dtype == q.dtype
    np.testing.assert_allclose(f32(a), b, rtol=rtol, atol=atol, err_msg=name)
  return got


def test_float32_every_pattern_with_padding_partial_tiles_and_empty_rows():
  pairs = _all_patterns()
  q, k, v = _inputs(0, 3, LENGTH, LENGTH, pairs.shape[0], HEAD_DIM)
  out, dq, dk, dv = _check(build_layout(pairs, 2 * BLOCK, BLOCK), pairs, q, k, v,
                           _padding(3, LENGTH), F32_TOL, F32_TOL)
  # Empty rows (the last head's rows 8.., the all-padding example): zeros.
  np.testing.assert_array_equal(out[:, 8:30, -1], 0.0)
  np.testing.assert_array_equal(out[2], 0.0)
  for grad in (dq, dk, dv):
    np.testing.assert_array_equal(grad[2], 0.0)


def test_bfloat16_cross_lengths_causal_without_padding():
  """No mask: full tiles take the unmasked path; the ragged tile is partial."""
  pairs = attention.pattern("dense", 12, 20, causal=True)
  q, k, v = _inputs(1, 2, 12, 20, 2, max(HEAD_DIM, 16), jnp.bfloat16)
  _check(build_layout(pairs, BLOCK, BLOCK), pairs, q, k, v, None, 2e-2, 2e-2)


def test_tpu_backend_interpreted():
  """The scalar-prefetch (TPU) kernels, run by the interpreter."""
  pairs = np.stack([attention.pattern("sliding_window", 40, 40, window=5)[0],
                    attention.pattern("strided", 40, 40, stride=8, num_summary=2)[0]])
  q, k, v = _inputs(2, 2, 40, 40, 2, 8)
  _check(build_layout(pairs, 16, 8), pairs, q, k, v, _padding(2, 40), 1e-5, 1e-5,
         backend="tpu", interpret=True)


@pytest.mark.parametrize("backend, platform, block", [("gpu", "cuda", 32), ("tpu", "tpu", 128)])
def test_lowers_for_accelerators(backend, platform, block):
  """Forward and backward lower to Triton (GPU) and Mosaic (TPU) on any host.

  Lowering runs the Pallas->Triton/Mosaic lowering (shapes, dtypes, block
  rules); compiling and running needs the device (docs/kernels.md).
  """
  layout = build_layout(attention.pattern("dense", 256, 256, causal=True), block, block)
  spec = jax.ShapeDtypeStruct((1, 256, 2, 128), jnp.bfloat16)
  attend = functools.partial(block_sparse_attention, layout=layout, backend=backend,
                             interpret=False)
  loss = lambda q, k, v: attend(q, k, v).astype(jnp.float32).sum()
  grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
  target = aot_lowering.for_gpu() if backend == "gpu" else contextlib.nullcontext()
  with target:  # jax >= 0.12 needs the GPU named when the host has none
    text = grad.trace(spec, spec, spec).lower(lowering_platforms=(platform,)).as_text()
  assert text.count("custom_call") >= 3  # forward, dQ, dK/dV kernels


def test_rejects_mismatched_layouts():
  q, k, v = _inputs(0, 1, 16, 16, 2, 8)
  with pytest.raises(ValueError, match="lengths"):
    block_sparse_attention(q, k, v, build_layout(np.ones((1, 8, 8), bool), 8, 8))
  with pytest.raises(ValueError, match="heads"):
    block_sparse_attention(q, k, v, build_layout(np.ones((3, 16, 16), bool), 8, 8))
  with pytest.raises(ValueError, match="backend"):
    block_sparse_attention(q, k, v, build_layout(np.ones((1, 16, 16), bool), 8, 8),
                           backend="cpu")

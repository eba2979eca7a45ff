"""Block-sparse flash attention in Pallas, driven by a `BlockLayout`.

The FlashAttention-2 algorithm (Dao 2023) restricted to the non-empty tiles of
a fixed pattern (kernels/block_layout.py), as in Child et al. 2019's and
BigBird's block-sparse GPU kernels and JAX's TPU splash attention:

- forward: per query block, loop over its non-empty kv blocks with the online
  softmax (running max `m`, normaliser `l`, accumulator `acc`, all float32);
  partial tiles apply their element mask, full tiles none; save only the
  log-sum-exp `lse = m + log(l)`;
- backward (jax.custom_vjp, two Pallas kernels): dQ per query block over the
  same row tables; dK, dV per kv block over the transposed tables, recomputing
  `p = exp(s - lse)` (dS = p * (dP - rowsum(dO * O))).
Time: O(computed tiles * block_q * block_k * head_dim); memory:
O((q_len + kv_len) * head_dim) plus the tables. Exact: equals dense attention
with the pattern as pair mask (float32: to rounding; bf16 inputs: the two
matmuls take bf16 operands, as every flash kernel does, ~1e-2).

Numerics as attention/dense_chunked.py: masked logits are MASK_VALUE (a large
finite negative, so exp underflows to 0 and nothing is inf - inf), masked
probabilities are set to exactly 0, and a query row with nothing to attend to
(no non-empty tile, or every key padded) has l = 0: output 0, lse 0 and zero
gradients. Scaling 1/sqrt(head_dim).

Files: flash_tile.py (the tile math), block_sparse_gpu.py and
block_sparse_tpu.py (the Pallas kernels of each backend), this file (the
custom VJP and the entry point).
Backends (`backend`, default from jax.default_backend()):
  "gpu": block_sparse_gpu.py: the tables are ordinary inputs; each program
         (batch, head, block) runs a fori_loop over its row's count and slices
         K/V (or Q/dO) blocks out of the whole sequence with dynamic offsets
         (scalar prefetch is not supported by the GPU lowerings). Lowered with
         Triton (`pallas.triton.CompilerParams`). Also the CPU path: on any
         platform but GPU/TPU it runs with interpret=True.
  "tpu": block_sparse_tpu.py: scalar prefetch (PrefetchScalarGridSpec), the
         tables drive the index_maps so only non-empty tiles are fetched.
`interpret=None` means True unless the backend matches the device.
NOT YET VERIFIED COMPILED on a GPU or TPU (docs/kernels.md): tested in
interpret mode only.

Limits: the layout's head count is 1 (shared pattern) or the number of heads;
its lengths must equal the inputs'. GPU: block sizes and head_dim powers of two
(Triton), head_dim >= 16 for tensor-core dots. TPU: block sizes multiples of 128.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from efficient_transformers.kernels import block_sparse_gpu, block_sparse_tpu
from efficient_transformers.kernels.block_layout import BlockLayout
from efficient_transformers.kernels.flash_tile import Config

_BACKENDS = {"gpu": block_sparse_gpu, "tpu": block_sparse_tpu}
BACKENDS = tuple(_BACKENDS)


def _forward(q, k, v, key_ok, config, layout):
  return _BACKENDS[config.backend].forward(q, k, v, key_ok, config, layout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _attention(q, k, v, key_ok, config, layout):
  return _forward(q, k, v, key_ok, config, layout)[0]


def _attention_fwd(q, k, v, key_ok, config, layout):
  out, lse = _forward(q, k, v, key_ok, config, layout)
  return out, (q, k, v, key_ok, out, lse)


def _attention_bwd(config, layout, residuals, d_out):
  q, k, v, key_ok, out, lse = residuals
  delta = jnp.sum(d_out.astype(jnp.float32) * out.astype(jnp.float32), -1,
                  keepdims=True)  # rowsum(dO * O) [B, H, Qp, 1]
  d_out = d_out.astype(q.dtype)
  dq, dk, dv = _BACKENDS[config.backend].backward(q, k, v, key_ok, d_out, lse,
                                                  delta, config, layout)
  return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None


_attention.defvjp(_attention_fwd, _attention_bwd)


def _default_backend():
  platform = jax.default_backend()
  return platform if platform in BACKENDS else "gpu"


def block_sparse_attention(q, k, v, layout: BlockLayout, *, mask=None,
                           backend: str | None = None,
                           interpret: bool | None = None,
                           num_warps: int = 4, num_stages: int = 2):
  """Attention over the non-empty tiles of `layout`; BTNH in and out.

  Args:
    q: [batch, q_len, heads, head_dim]; k, v: [batch, kv_len, heads, head_dim].
    layout: block_layout.build_layout(pattern, block_q, block_k) of a pattern
      with 1 or `heads` heads and these lengths.
    mask: optional bool [batch, kv_len] key padding, True = real key.
    backend: "gpu" or "tpu" (module docstring); None: the default device's,
      "gpu" on CPU.
    interpret: run the Pallas interpreter; None: True unless the backend is
      the default device's platform.
    num_warps, num_stages: Triton parameters (GPU compiled only).

  Returns:
    [batch, q_len, heads, head_dim] in q's dtype.
  """
  batch, q_len, heads, head_dim = q.shape
  kv_len = k.shape[1]
  if k.shape != (batch, kv_len, heads, head_dim) or v.shape[:3] != k.shape[:3]:
    raise ValueError(f"q, k, v must be [batch, len, heads, head_dim] with equal"
                     f" batch, heads, head_dim: {q.shape}, {k.shape}, {v.shape}")
  if (layout.q_len, layout.kv_len) != (q_len, kv_len):
    raise ValueError(f"layout is for lengths {(layout.q_len, layout.kv_len)}, the"
                     f" inputs have {(q_len, kv_len)}: build it for these lengths")
  if layout.heads not in (1, heads):
    raise ValueError(f"layout has {layout.heads} heads; the inputs {heads}: build it"
                     " from a pattern with 1 (shared) or `heads` heads")
  backend = backend or _default_backend()
  if backend not in BACKENDS:
    raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
  if interpret is None:
    interpret = jax.default_backend() != backend
  if mask is not None and mask.shape != (batch, kv_len):
    raise ValueError(f"mask must be bool [batch, kv_len] = {(batch, kv_len)}, got {mask.shape}")
  config = Config(backend, bool(interpret), 1.0 / math.sqrt(head_dim),
                  int(layout.heads == heads and heads > 1), mask is not None,
                  num_warps, num_stages)
  q_pad = layout.num_q_blocks * layout.block_q - q_len
  kv_pad = layout.num_kv_blocks * layout.block_k - kv_len

  def to_bnth(x, pad):
    return jnp.pad(jnp.swapaxes(x, 1, 2), ((0, 0), (0, 0), (0, pad), (0, 0)))

  key_ok = jnp.pad(jnp.ones((batch, kv_len), jnp.int32) if mask is None
                   else mask.astype(jnp.int32), ((0, 0), (0, kv_pad)))
  out = _attention(to_bnth(q, q_pad), to_bnth(k, kv_pad), to_bnth(v, kv_pad),
                   key_ok, config, layout)
  return jnp.swapaxes(out[:, :, :q_len], 1, 2).astype(q.dtype)

"""GPU backend of block_sparse_attention.py: tables as ordinary inputs, a loop per row.

One program per (batch, head, block) runs a fori_loop over its row's count of
non-empty tiles and slices the K/V (or Q/dO) block out of the whole sequence
with a dynamic offset: scalar prefetch is not supported by the GPU lowerings,
and this is the pattern of JAX's paged attention and axlearn's GPU kernels. A
full tile skips its element mask (lax.cond), and without key padding all
masking. Lowered with Triton (`pallas.triton.CompilerParams`); on other
platforms the same kernels run with interpret=True (the CPU test path).
Arrays are [batch, heads, len, head_dim]; key padding int32 [batch, len];
lse/delta [batch, heads, len, 1].
Not yet compiled on a GPU (docs/kernels.md): tested interpreted, and lowered
to Triton on CPU.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from efficient_transformers.kernels.flash_tile import (dkv_tile, dq_tile,
                                                       forward_finish,
                                                       forward_init, forward_tile)


def _on_tile(compute, masks_ref, mask_id, key_ok, carry):
  """compute(allowed, carry) for one tile: a partial tile loads its element
  mask; a full tile skips it (and, without key padding, all masking)."""
  keys = None if key_ok is None else (key_ok != 0)[None, :]

  def partial(carry):
    tile = masks_ref[jnp.maximum(mask_id, 0)] != 0
    return compute(tile if keys is None else tile & keys, carry)

  return jax.lax.cond(mask_id < 0, functools.partial(compute, keys), partial, carry)


def _key_ok(key_ok_ref, keys, key_padding):
  return key_ok_ref[keys] if key_padding else None


def _fwd_kernel(count_ref, index_ref, mask_index_ref, masks_ref, key_ok_ref,
                    q_ref, k_ref, v_ref, o_ref, lse_ref, *, scale, key_padding):
  block_q, head_dim = q_ref.shape
  block_k = masks_ref.shape[-1]
  q = q_ref[...]

  def body(slot, carry):
    keys = pl.ds(index_ref[slot] * block_k, block_k)
    k, v = k_ref[keys, :], v_ref[keys, :]
    compute = lambda allowed, carry: forward_tile(q, k, v, allowed, scale, *carry)
    return _on_tile(compute, masks_ref, mask_index_ref[slot],
                    _key_ok(key_ok_ref, keys, key_padding), carry)

  carry = jax.lax.fori_loop(0, count_ref[0], body, forward_init(block_q, head_dim))
  out, lse = forward_finish(*carry)
  o_ref[...] = out.astype(o_ref.dtype)
  lse_ref[...] = lse


def _dq_kernel(count_ref, index_ref, mask_index_ref, masks_ref, key_ok_ref,
                   q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dq_ref, *, scale,
                   key_padding):
  block_k = masks_ref.shape[-1]
  q, d_out, lse, delta = q_ref[...], do_ref[...], lse_ref[...], delta_ref[...]

  def body(slot, dq):
    keys = pl.ds(index_ref[slot] * block_k, block_k)
    k, v = k_ref[keys, :], v_ref[keys, :]
    compute = lambda allowed, dq: dq_tile(q, k, v, d_out, lse, delta, allowed, scale, dq)
    return _on_tile(compute, masks_ref, mask_index_ref[slot],
                    _key_ok(key_ok_ref, keys, key_padding), dq)

  dq = jax.lax.fori_loop(0, count_ref[0], body, jnp.zeros(q.shape, jnp.float32))
  dq_ref[...] = dq.astype(dq_ref.dtype)


def _dkv_kernel(count_ref, index_ref, mask_index_ref, masks_ref, key_ok_ref,
                    q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dk_ref, dv_ref,
                    *, scale, key_padding):
  block_q = masks_ref.shape[-2]
  k, v = k_ref[...], v_ref[...]
  key_ok = key_ok_ref[...] if key_padding else None

  def body(slot, carry):
    rows = pl.ds(index_ref[slot] * block_q, block_q)
    q, d_out = q_ref[rows, :], do_ref[rows, :]
    lse, delta = lse_ref[rows, :], delta_ref[rows, :]
    compute = lambda allowed, carry: dkv_tile(q, k, v, d_out, lse, delta, allowed,
                                              scale, *carry)
    return _on_tile(compute, masks_ref, mask_index_ref[slot], key_ok, carry)

  init = (jnp.zeros(k.shape, jnp.float32), jnp.zeros(v.shape, jnp.float32))
  dk, dv = jax.lax.fori_loop(0, count_ref[0], body, init)
  dk_ref[...] = dk.astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)


def _call(kernel, config, layout, tables, grid, in_specs, out_specs, out_shape,
              inputs, name):
  """pallas_call with the three tables and masks as ordinary leading inputs."""
  counts, index, mask_index = tables
  hs = config.head_stride
  width = index.shape[-1]
  table_specs = [
      pl.BlockSpec((None, None, 1), lambda b, h, r: (h * hs, r, 0)),
      pl.BlockSpec((None, None, width), lambda b, h, r: (h * hs, r, 0)),
      pl.BlockSpec((None, None, width), lambda b, h, r: (h * hs, r, 0)),
      pl.BlockSpec(layout.masks.shape, lambda b, h, r: (0, 0, 0)),
  ]
  params = None
  if not config.interpret:
    from jax.experimental.pallas import triton as pl_triton
    params = pl_triton.CompilerParams(num_warps=config.num_warps,
                                      num_stages=config.num_stages)
  return pl.pallas_call(
      functools.partial(kernel, scale=config.scale, key_padding=config.key_padding),
      grid=grid,
      in_specs=table_specs + in_specs, out_specs=out_specs, out_shape=out_shape,
      compiler_params=params, interpret=config.interpret, name=name,
  )(jnp.asarray(counts)[..., None], jnp.asarray(index), jnp.asarray(mask_index),
    jnp.asarray(layout.masks, jnp.int8), *inputs)


def forward(q, k, v, key_ok, config, layout):
  """q [B,H,Qp,D], k/v [B,H,Kp,D], key_ok int32 [B,Kp] -> out, lse [B,H,Qp,1]."""
  batch, heads, q_len, head_dim = q.shape
  kv_len, bq = k.shape[2], layout.block_q
  row = lambda b, h, i: (b, h, i, 0)
  whole = lambda b, h, i: (b, h, 0, 0)
  return _call(
      _fwd_kernel, config, layout,
      (layout.counts, layout.kv_index, layout.mask_index),
      (batch, heads, layout.num_q_blocks),
      [pl.BlockSpec((None, kv_len), lambda b, h, i: (b, 0)),
       pl.BlockSpec((None, None, bq, head_dim), row),
       pl.BlockSpec((None, None, kv_len, head_dim), whole),
       pl.BlockSpec((None, None, kv_len, v.shape[-1]), whole)],
      [pl.BlockSpec((None, None, bq, v.shape[-1]), row),
       pl.BlockSpec((None, None, bq, 1), row)],
      [jax.ShapeDtypeStruct((batch, heads, q_len, v.shape[-1]), q.dtype),
       jax.ShapeDtypeStruct((batch, heads, q_len, 1), jnp.float32)],
      (key_ok, q, k, v), "block_sparse_fwd")


def backward(q, k, v, key_ok, d_out, lse, delta, config, layout):
  batch, heads, q_len, head_dim = q.shape
  kv_len, bq, bk = k.shape[2], layout.block_q, layout.block_k
  row = lambda b, h, i: (b, h, i, 0)
  whole = lambda b, h, i: (b, h, 0, 0)
  spec = lambda rows, width, index_map: pl.BlockSpec((None, None, rows, width), index_map)
  dq = _call(
      _dq_kernel, config, layout,
      (layout.counts, layout.kv_index, layout.mask_index),
      (batch, heads, layout.num_q_blocks),
      [pl.BlockSpec((None, kv_len), lambda b, h, i: (b, 0)),
       spec(bq, head_dim, row), spec(kv_len, head_dim, whole),
       spec(kv_len, v.shape[-1], whole), spec(bq, v.shape[-1], row),
       spec(bq, 1, row), spec(bq, 1, row)],
      spec(bq, head_dim, row), jax.ShapeDtypeStruct(q.shape, jnp.float32),
      (key_ok, q, k, v, d_out, lse, delta), "block_sparse_dq")
  dk, dv = _call(
      _dkv_kernel, config, layout,
      (layout.q_counts, layout.q_index, layout.q_mask_index),
      (batch, heads, layout.num_kv_blocks),
      [pl.BlockSpec((None, bk), lambda b, h, j: (b, j)),
       spec(q_len, head_dim, whole), spec(bk, head_dim, row),
       spec(bk, v.shape[-1], row), spec(q_len, v.shape[-1], whole),
       spec(q_len, 1, whole), spec(q_len, 1, whole)],
      [spec(bk, head_dim, row), spec(bk, v.shape[-1], row)],
      [jax.ShapeDtypeStruct(k.shape, jnp.float32),
       jax.ShapeDtypeStruct(v.shape, jnp.float32)],
      (key_ok, q, k, v, d_out, lse, delta), "block_sparse_dkv")
  return dq, dk, dv

"""TPU backend of block_sparse_attention.py: scalar prefetch drives the index maps.

The tile math of flash_tile.py (`forward_tile`, `dq_tile`, `dkv_tile`) on a grid of
(batch, head, block, slot): the layout's tables are scalar-prefetched into SMEM
(`PrefetchScalarGridSpec`) and the index_maps read them, so slot s of query
block i fetches kv block kv_index[h, i, s] (and its partial mask) and the
pipeline never touches an empty tile. Slots past a row's count repeat its last
block id (no new DMA) and skip the compute; the running max, normaliser and
accumulator live in VMEM scratch and are written out at the last slot. The
grid's slot axis is max(counts) long (rounded to a power of two), as in JAX's
splash attention; rows with fewer tiles idle for the remaining slots.

Arrays are [batch, heads, len, head_dim] (the last two block dims are
(block, head_dim): block sizes must be multiples of 128 on hardware, head_dim
a multiple of 128 or the whole dim); key padding is int32 [batch, 1, len] and
lse/delta are [batch, heads, len, 1].
Not yet compiled on a TPU (docs/kernels.md); tested with interpret=True.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from efficient_transformers.kernels import flash_tile


def _allowed(mask_id, masks_ref, key_ok_ref):
  return (key_ok_ref[...] != 0) & ((masks_ref[...] != 0) | (mask_id < 0))


def _fwd_kernel(counts_ref, index_ref, mask_index_ref, masks_ref, key_ok_ref,
                q_ref, k_ref, v_ref, o_ref, lse_ref, m_ref, l_ref, acc_ref, *,
                scale, hs):
  h, i, slot = pl.program_id(1) * hs, pl.program_id(2), pl.program_id(3)

  @pl.when(slot == 0)
  def _init():
    m_ref[...], l_ref[...], acc_ref[...] = flash_tile.forward_init(*acc_ref.shape)

  @pl.when(slot < counts_ref[h, i])
  def _compute():
    allowed = _allowed(mask_index_ref[h, i, slot], masks_ref, key_ok_ref)
    m_ref[...], l_ref[...], acc_ref[...] = flash_tile.forward_tile(
        q_ref[...], k_ref[...], v_ref[...], allowed, scale, m_ref[...],
        l_ref[...], acc_ref[...])

  @pl.when(slot == pl.num_programs(3) - 1)
  def _finish():
    out, lse = flash_tile.forward_finish(m_ref[...], l_ref[...], acc_ref[...])
    o_ref[...] = out.astype(o_ref.dtype)
    lse_ref[...] = lse


def _dq_kernel(counts_ref, index_ref, mask_index_ref, masks_ref, key_ok_ref,
               q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dq_ref, acc_ref,
               *, scale, hs):
  h, i, slot = pl.program_id(1) * hs, pl.program_id(2), pl.program_id(3)

  @pl.when(slot == 0)
  def _init():
    acc_ref[...] = jnp.zeros(acc_ref.shape, jnp.float32)

  @pl.when(slot < counts_ref[h, i])
  def _compute():
    allowed = _allowed(mask_index_ref[h, i, slot], masks_ref, key_ok_ref)
    acc_ref[...] = flash_tile.dq_tile(q_ref[...], k_ref[...], v_ref[...], do_ref[...],
                               lse_ref[...], delta_ref[...], allowed, scale,
                               acc_ref[...])

  @pl.when(slot == pl.num_programs(3) - 1)
  def _finish():
    dq_ref[...] = acc_ref[...].astype(dq_ref.dtype)


def _dkv_kernel(counts_ref, index_ref, mask_index_ref, masks_ref, key_ok_ref,
                q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dk_ref, dv_ref,
                dk_acc_ref, dv_acc_ref, *, scale, hs):
  h, j, slot = pl.program_id(1) * hs, pl.program_id(2), pl.program_id(3)

  @pl.when(slot == 0)
  def _init():
    dk_acc_ref[...] = jnp.zeros(dk_acc_ref.shape, jnp.float32)
    dv_acc_ref[...] = jnp.zeros(dv_acc_ref.shape, jnp.float32)

  @pl.when(slot < counts_ref[h, j])
  def _compute():
    allowed = _allowed(mask_index_ref[h, j, slot], masks_ref, key_ok_ref)
    dk_acc_ref[...], dv_acc_ref[...] = flash_tile.dkv_tile(
        q_ref[...], k_ref[...], v_ref[...], do_ref[...], lse_ref[...],
        delta_ref[...], allowed, scale, dk_acc_ref[...], dv_acc_ref[...])

  @pl.when(slot == pl.num_programs(3) - 1)
  def _finish():
    dk_ref[...] = dk_acc_ref[...].astype(dk_ref.dtype)
    dv_ref[...] = dv_acc_ref[...].astype(dv_ref.dtype)


def _call(kernel, config, layout, transposed, inputs, out_shape, scratch, name):
  """Grid (batch, heads, block, slot); `transposed` walks kv blocks (dK/dV)."""
  if transposed:
    tables = (layout.q_counts, layout.q_index, layout.q_mask_index)
  else:
    tables = (layout.counts, layout.kv_index, layout.mask_index)
  hs, bq, bk = config.head_stride, layout.block_q, layout.block_k
  q = inputs[0]
  batch, heads = q.shape[:2]
  grid = (batch, heads, tables[0].shape[1], tables[1].shape[-1])

  # Index maps get the grid indices (b, h, r = this program's block, s = slot)
  # and the prefetched tables: `own` blocks follow r, `looked_up` the table.
  def own(b, h, r, s, *_):
    return (b, h, r, 0)

  def looked_up(b, h, r, s, counts_ref, index_ref, mask_index_ref):
    del counts_ref, mask_index_ref
    return (b, h, index_ref[h * hs, r, s], 0)

  q_side, kv_side = (looked_up, own) if transposed else (own, looked_up)
  spec = lambda rows, width, index_map: pl.BlockSpec((None, None, rows, width), index_map)
  masks_spec = pl.BlockSpec(
      (None, bq, bk), lambda b, h, r, s, c, i, mi: (jnp.maximum(mi[h * hs, r, s], 0), 0, 0))
  key_spec = pl.BlockSpec(
      (None, 1, bk), lambda b, h, r, s, *t: (b, 0, kv_side(b, h, r, s, *t)[2]))
  head_dim, value_dim = q.shape[-1], inputs[2].shape[-1]
  in_specs = [masks_spec, key_spec, spec(bq, head_dim, q_side),
              spec(bk, head_dim, kv_side), spec(bk, value_dim, kv_side)]
  if len(inputs) > 4:  # backward: dO, lse, delta follow the queries
    in_specs += [spec(bq, value_dim, q_side), spec(bq, 1, q_side), spec(bq, 1, q_side)]
  out_side = kv_side if transposed else q_side
  out_rows = bk if transposed else bq
  out_specs = [spec(out_rows, o.shape[3], out_side) for o in out_shape]
  grid_spec = pltpu.PrefetchScalarGridSpec(
      num_scalar_prefetch=3, grid=grid, in_specs=in_specs, out_specs=out_specs,
      scratch_shapes=[pltpu.VMEM(shape, jnp.float32) for shape in scratch])
  params = None
  if not config.interpret:
    params = pltpu.CompilerParams(
        dimension_semantics=("parallel", "parallel", "parallel", "arbitrary"))
  key_ok = inputs[-1]
  return pl.pallas_call(
      functools.partial(kernel, scale=config.scale, hs=hs), grid_spec=grid_spec,
      out_shape=out_shape, compiler_params=params, interpret=config.interpret,
      name=name,
  )(*(jnp.asarray(t) for t in tables), jnp.asarray(layout.masks, jnp.int8),
    key_ok[:, None, :], *inputs[:-1])


def forward(q, k, v, key_ok, config, layout):
  bq, value_dim = layout.block_q, v.shape[-1]
  out_shape = [jax.ShapeDtypeStruct(q.shape[:3] + (value_dim,), q.dtype),
               jax.ShapeDtypeStruct(q.shape[:3] + (1,), jnp.float32)]
  scratch = [(bq, 1), (bq, 1), (bq, value_dim)]
  return _call(_fwd_kernel, config, layout, False, (q, k, v, key_ok),
               out_shape, scratch, "block_sparse_fwd_tpu")


def backward(q, k, v, key_ok, d_out, lse, delta, config, layout):
  inputs = (q, k, v, d_out, lse, delta, key_ok)
  (dq,) = _call(_dq_kernel, config, layout, False, inputs,
                [jax.ShapeDtypeStruct(q.shape, jnp.float32)],
                [(layout.block_q, q.shape[-1])], "block_sparse_dq_tpu")
  dk, dv = _call(_dkv_kernel, config, layout, True, inputs,
                 [jax.ShapeDtypeStruct(k.shape, jnp.float32),
                  jax.ShapeDtypeStruct(v.shape, jnp.float32)],
                 [(layout.block_k, k.shape[-1]), (layout.block_k, v.shape[-1])],
                 "block_sparse_dkv_tpu")
  return dq, dk, dv

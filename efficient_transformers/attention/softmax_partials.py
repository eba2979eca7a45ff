"""One softmax over a row whose keys are split into parts: partials and their exact merge.

The fixed sparse patterns (local, sliding_window, longformer, strided) attend,
for each query, to a union of disjoint key sets (a band of neighbour blocks,
the global keys, the summary keys, ...). Each set gives a `Partials` triple in
float32:

  row_max = max of the set's allowed logits (MASK_VALUE when it has none),
  row_sum = sum over allowed keys of exp(logit - row_max),
  acc     = sum over allowed keys of exp(logit - row_max) * value.

`merge` rescales two triples to their common maximum (the log-sum-exp merge of
flash attention), so `finish(merge(a, b))` is exactly the single softmax over
the union of the two sets, not an average of two softmaxes. A row with no
allowed key in any part has row_sum 0 and finishes as zeros (never NaN).

The row maximum is a stop_gradient: the output acc / row_sum does not depend on
it, so this is exact for gradients too.

Layout: arrays are [..., q_len, head_dim] (any leading axes, e.g. batch, heads,
blocks), logits [..., q_len, k_len].
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers.attention import masks
from efficient_transformers.attention.shapes import check_qkv


class Partials(NamedTuple):
  acc: jax.Array      # [..., Q, H] float32
  row_max: jax.Array  # [..., Q] float32
  row_sum: jax.Array  # [..., Q] float32


def logits(q, k):
  """Scaled float32 logits [..., Q, K] of q [..., Q, H] and k [..., K, H]."""
  out = jnp.einsum("...qh,...kh->...qk", q, k, preferred_element_type=jnp.float32)
  return out / math.sqrt(q.shape[-1])


def partials(logits_QxK, allowed_QxK, v_KxH) -> Partials:
  """The partial softmax of one key set; `allowed` broadcasts to the logits."""
  logits_QxK = jnp.where(allowed_QxK, logits_QxK, masks.MASK_VALUE)
  row_max = jax.lax.stop_gradient(logits_QxK.max(-1))
  weights = jnp.where(allowed_QxK, jnp.exp(logits_QxK - row_max[..., None]), 0.0)
  acc = jnp.einsum("...qk,...kh->...qh", weights, v_KxH.astype(jnp.float32))
  return Partials(acc, row_max, weights.sum(-1))


def merge(a: Partials, b: Partials) -> Partials:
  """The partials of the union of two disjoint key sets (log-sum-exp merge)."""
  row_max = jnp.maximum(a.row_max, b.row_max)
  scale_a = jnp.exp(a.row_max - row_max)
  scale_b = jnp.exp(b.row_max - row_max)
  return Partials(a.acc * scale_a[..., None] + b.acc * scale_b[..., None], row_max,
                  a.row_sum * scale_a + b.row_sum * scale_b)


def finish(p: Partials, dtype) -> jax.Array:
  """acc / row_sum in `dtype`; rows with nothing to attend to are zeros."""
  nonempty = p.row_sum > 0
  out = p.acc / jnp.where(nonempty, p.row_sum, 1.0)[..., None]
  return jnp.where(nonempty[..., None], out, 0.0).astype(dtype)


def key_ok(mask, batch: int, length: int) -> jax.Array:
  """bool [batch, 1, length] (heads axis broadcast): the real keys."""
  if mask is None:
    return jnp.ones((batch, 1, length), bool)
  if mask.shape != (batch, length):
    raise ValueError(
        f"mask must be bool [batch, kv_len] = {(batch, length)}, got {mask.shape}")
  return mask.astype(bool)[:, None, :]


def pad_axis(x, axis: int, size: int, value=0):
  """Pads axis `axis` of x at the end up to `size`."""
  extra = size - x.shape[axis]
  if extra == 0:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, extra)
  return jnp.pad(x, widths, constant_values=value)


def chunked_partials(q, k, v, key_ok_K, q_pos, k_pos,
                     allowed_fn: Callable, chunk: int) -> Partials:
  """Partials of q [..., Q, H] over k, v [..., K, H], query chunk by chunk.

  For key sets that grow with the length (every stride-th key, the summary
  keys of every block): the [chunk, K] logits of one query chunk at a time
  (lax.map, rematerialised in the backward pass), so memory is O(chunk * K)
  rather than O(Q * K).

  Args:
    key_ok_K: bool, broadcastable to [..., K]: real keys.
    q_pos, k_pos: int numpy [Q], [K]: positions passed to allowed_fn.
    allowed_fn: (q_pos [C, 1], k_pos [1, K]) -> bool [C, K] (jnp ops).
    chunk: queries per step.
  """
  k_pos = jnp.asarray(k_pos)

  def one_chunk(q_CxH, q_pos_C):
    allowed = allowed_fn(q_pos_C[:, None], k_pos[None, :]) & key_ok_K[..., None, :]
    return partials(logits(q_CxH, k), allowed, v)

  q_len = q.shape[-2]
  if q_len <= chunk:
    return one_chunk(q, jnp.asarray(q_pos))
  num_chunks = -(-q_len // chunk)
  q = pad_axis(q, -2, num_chunks * chunk)
  q_pos = np.pad(np.asarray(q_pos), (0, num_chunks * chunk - q_len), mode="edge")
  q_chunks = jnp.moveaxis(
      q.reshape(*q.shape[:-2], num_chunks, chunk, q.shape[-1]), -3, 0)
  body = jax.checkpoint(lambda args: tuple(one_chunk(*args)))
  acc, row_max, row_sum = jax.lax.map(
      body, (q_chunks, jnp.asarray(q_pos.reshape(num_chunks, chunk))))

  def unchunk(x, trailing):  # [C, ..., chunk, (H)] -> [..., Q, (H)]
    x = jnp.moveaxis(x, 0, -2 - trailing)
    x = x.reshape(*x.shape[:-2 - trailing], num_chunks * chunk, *x.shape[x.ndim - trailing:])
    return jax.lax.slice_in_dim(x, 0, q_len, axis=x.ndim - 1 - trailing)

  return Partials(unchunk(acc, 1), unchunk(row_max, 0), unchunk(row_sum, 0))


def self_attention_inputs(name: str, q, k, v, mask):
  """Checks BTNH self-attention inputs; returns q, k, v as BNTH and key_ok.

  The fixed patterns are defined on positions of one sequence, so q_len must
  equal kv_len.
  """
  check_qkv(q, k, v)
  if q.shape[1] != k.shape[1]:
    raise ValueError(
        f"{name} is self-attention only: q_len {q.shape[1]} != kv_len {k.shape[1]}")
  to_bnth = lambda x: jnp.swapaxes(x, 1, 2)
  return to_bnth(q), to_bnth(k), to_bnth(v), key_ok(mask, q.shape[0], q.shape[1])


def check_same_length(name: str, q_len: int, kv_len: int) -> None:
  if q_len != kv_len:
    raise ValueError(f"{name} is self-attention only: q_len {q_len} != kv_len {kv_len}")


def check_int(name: str, value, minimum: int) -> int:
  """value as an int >= minimum, else a ValueError naming the option."""
  if isinstance(value, bool) or int(value) != value or value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
  return int(value)

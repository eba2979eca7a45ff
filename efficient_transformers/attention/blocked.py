"""Building blocks of the blockwise sparse mechanisms (BigBird, ETC, Image
Transformer, axial attention): cut sequences into blocks, gather neighbour
blocks by padding + concatenation (no index gathers), and one masked softmax
per query row over the gathered keys.

Shape suffixes: B batch, C query blocks (or other leading groups), Q queries
per block, M gathered keys per block, N heads, H head_dim.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers.attention import masks


def attend(q, k, v, allowed):
  """Softmax attention of each group's queries over that group's keys.

  Args:
    q: [..., Q, N, H]; k, v: [..., M, N, H] with the same leading axes.
    allowed: bool broadcastable to [..., N, Q, M], True = the pair attends.

  Returns:
    float32 [..., Q, N, H]; rows with no allowed key are zeros.
  """
  logits = jnp.einsum("...qnh,...mnh->...nqm", q, k,
                      preferred_element_type=jnp.float32)
  logits = logits / math.sqrt(q.shape[-1])
  logits = jnp.where(allowed, logits, masks.MASK_VALUE)
  weights = jax.nn.softmax(logits, axis=-1)
  # A row with nothing allowed got a uniform softmax over MASK_VALUE: zero it.
  weights = jnp.where(allowed, weights, 0.0)
  return jnp.einsum("...nqm,...mnh->...qnh", weights, v.astype(jnp.float32))


def pad_axis(x, length, axis, value=0):
  """Pads axis `axis` of x at the end up to `length`."""
  extra = length - x.shape[axis]
  if extra == 0:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, extra)
  lib = np if isinstance(x, np.ndarray) else jnp
  return lib.pad(x, widths, constant_values=value)


def to_blocks(x, block, axis=1, value=0):
  """Splits axis `axis` (padded at the end with `value`) into [blocks, block]."""
  num_blocks = -(-x.shape[axis] // block)
  x = pad_axis(x, num_blocks * block, axis, value)
  return x.reshape(x.shape[:axis] + (num_blocks, block) + x.shape[axis + 1:])


def neighbours(x, before, after, axis=1, value=0):
  """Each block followed by its neighbours, concatenated along the block.

  x: [..., C, b, ...] with the block axis at `axis` and the within-block axis at
  `axis + 1`. Returns [..., C, (before + 1 + after) * b, ...]: for block c, the
  blocks c - before, ..., c + after in order, out-of-range blocks filled with
  `value`.
  """
  if before == 0 and after == 0:
    return x
  lib = np if isinstance(x, np.ndarray) else jnp
  num_blocks = x.shape[axis]
  widths = [(0, 0)] * x.ndim
  widths[axis] = (before, after)
  padded = lib.pad(x, widths, constant_values=value)
  lead = (slice(None),) * axis
  shifted = [padded[lead + (slice(o, o + num_blocks),)]
             for o in range(before + 1 + after)]
  return lib.concatenate(shifted, axis=axis + 1)


def key_mask(mask, batch, length):
  """bool [batch, length]: the key padding mask, all True when absent."""
  if mask is None:
    return jnp.ones((batch, length), bool)
  if mask.shape != (batch, length):
    raise ValueError(
        f"mask must be bool [batch, kv_len] = {(batch, length)}, got {mask.shape}")
  return mask.astype(bool)


def require_self_attention(name, q, k):
  if q.shape[1] != k.shape[1]:
    raise ValueError(
        f"{name} is self-attention only: q_len {q.shape[1]} != kv_len {k.shape[1]}")


def reject_causal(name, causal):
  if causal:
    raise ValueError(
        f"{name} is encoder-only (bidirectional): causal=True is not supported")

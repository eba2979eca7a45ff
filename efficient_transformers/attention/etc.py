"""ETC global-local attention (Ainslie et al. 2020, "ETC: Encoding Long and
Structured Inputs in Transformers").

Family (Tay et al.): fixed patterns + global memory.
ETC takes two inputs, a short global input [n_g] and a long input [n_l], and
four attention pieces. Here both live in ONE sequence: its first `num_global`
tokens are the global input, the rest the long input (with the encoder's CLS
token, num_global=1 makes CLS the single global token). Then
- g2g + g2l: a global row (i < num_global) attends to every key, one softmax;
- l2g + l2l: a long row (i >= num_global) attends to every global key and to
  the long keys within `local_radius` of it (|i - j| <= local_radius,
  j >= num_global), one softmax over both (ETC's fused attention).
Projections are shared by the four pieces (ETC's `share_qkv_projections=True`
and a shared output projection); ETC's relative position ids, hard
g2l/l2g segment masks and separate global projections are not implemented.
Complexity: O((n_g * n + n_l * (2r + 1)) * head_dim) time and
  O(n_g * n + n_l * r) memory: linear in n for fixed num_global, local_radius.
Exact: yes (equals dense with `etc_pattern`). causal=True raises (ETC is an
  encoder). Self-attention only.
Options:
  num_global: number of leading global tokens (default 1).
  local_radius: l2l radius r (default 84, ETC's `EtcConfig`).
  impl: "xla" (default) or "pallas" (the block-sparse kernel over the
    pattern, attention/block_sparse.py).
Limits: the long part is cut internally into blocks of max(1, local_radius)
  tokens (padded at the end); each block gathers its neighbour blocks.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from efficient_transformers.attention import block_sparse, blocked
from efficient_transformers.attention.shapes import check_qkv


def _check_options(length, num_global, local_radius):
  num_global, local_radius = int(num_global), int(local_radius)
  if not 0 <= num_global <= length or local_radius < 0:
    raise ValueError(
        f"etc needs 0 <= num_global <= length ({length}) and local_radius >= 0,"
        f" got {num_global}, {local_radius}")
  return num_global, local_radius


def etc(q, k, v, *, mask=None, causal=False, num_global=1, local_radius=84,
        impl="xla"):
  """ETC global-local attention, BTNH layout (see the module docstring)."""
  check_qkv(q, k, v)
  blocked.reject_causal("etc", causal)
  blocked.require_self_attention("etc", q, k)
  batch, length = q.shape[:2]
  g, radius = _check_options(length, num_global, local_radius)
  if block_sparse.check_impl("etc", impl) == "pallas":
    return block_sparse.attend("etc", etc_pattern, q, k, v, mask=mask,
                               num_global=g, local_radius=radius)
  real_BxL = blocked.key_mask(mask, batch, length)
  # g2g + g2l: the global rows see everything.
  out_global = blocked.attend(q[:, :g], k, v, real_BxL[:, None, None, :])
  if g == length:
    return out_global.astype(q.dtype)
  # l2g + l2l: blocks of the long part over [globals | neighbour blocks].
  n_long = length - g
  block = max(1, min(radius, n_long))
  reach = -(-radius // block)
  q_pos = np.arange(-(-n_long // block) * block).reshape(-1, block)
  k_pos = blocked.neighbours(q_pos, reach, reach, axis=0, value=-1)
  near_CxQxM = ((k_pos[:, None, :] >= 0) & (k_pos[:, None, :] < n_long)
                & (np.abs(k_pos[:, None, :] - q_pos[:, :, None]) <= radius))
  gather = lambda x, value=0: blocked.neighbours(
      blocked.to_blocks(x[:, g:], block, value=value), reach, reach, value=value)
  num_blocks = q_pos.shape[0]
  to_all = lambda x: jnp.broadcast_to(x[:, None, :g], (batch, num_blocks) + x[:, :g].shape[1:])
  k_BxCxMxNxH = jnp.concatenate([to_all(k), gather(k)], axis=2)
  v_BxCxMxNxH = jnp.concatenate([to_all(v), gather(v)], axis=2)
  real_BxCxM = jnp.concatenate([to_all(real_BxL), gather(real_BxL, False)], axis=2)
  near_CxQxM = np.concatenate(
      [np.ones((num_blocks, block, g), bool), near_CxQxM], axis=2)
  allowed = real_BxCxM[:, :, None, None, :] & near_CxQxM[None, :, None]
  out_long = blocked.attend(blocked.to_blocks(q[:, g:], block), k_BxCxMxNxH,
                            v_BxCxMxNxH, allowed)
  out_long = out_long.reshape((batch, -1) + out_long.shape[3:])[:, :n_long]
  return jnp.concatenate([out_global, out_long], axis=1).astype(q.dtype)


def etc_pattern(q_len, kv_len, *, causal=False, num_global=1, local_radius=84):
  """bool [1, q_len, kv_len]: the pairs etc attends."""
  if causal:
    raise ValueError("etc is encoder-only: causal=True is not supported")
  if q_len != kv_len:
    raise ValueError(f"etc is self-attention only: {q_len} != {kv_len}")
  g, radius = _check_options(q_len, num_global, local_radius)
  i = np.arange(q_len)[:, None]
  j = np.arange(kv_len)[None, :]
  allowed = (i < g) | (j < g) | (np.abs(i - j) <= radius)
  return allowed[None]

"""Masking helpers shared by every attention mechanism.

Conventions (the attention contract in docs/design.md):
- `mask` is a key-padding mask, bool [batch, kv_len], True = real token.
- `causal=True` aligns the query and key sequences at their ends: query row i
  sits at absolute position i + (kv_len - q_len) and may attend keys j <= that
  position. For self-attention (q_len == kv_len) this is the usual j <= i; for a
  decoder step with a cache (q_len=1) the single query sees every key.
- Masked logits are set to `MASK_VALUE`, a large finite negative rather than
  -inf: exp(MASK_VALUE - max) underflows to exactly 0 in float32, while a row
  with nothing to attend to stays finite (no inf - inf = NaN). Such rows are
  then zeroed explicitly.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# Large finite negative; float32's max is ~3.4e38. Logits stay in float32.
MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)


def causal_pairs(q_len: int, kv_len: int) -> np.ndarray:
  """bool [q_len, kv_len]: True where query i may attend key j under `causal`."""
  offset = kv_len - q_len
  return np.arange(kv_len)[None, :] <= np.arange(q_len)[:, None] + offset


def allowed_pairs(
    batch: int,
    q_len: int,
    kv_len: int,
    *,
    mask: jnp.ndarray | None = None,
    causal: bool = False,
    pair_mask: jnp.ndarray | None = None,
) -> jnp.ndarray | None:
  """Combines key padding, causality and a pair pattern into one bool mask.

  Args:
    batch, q_len, kv_len: the attention problem's sizes.
    mask: optional bool [batch, kv_len] key padding, True = real key.
    causal: apply `causal_pairs`.
    pair_mask: optional bool [heads or 1, q_len, kv_len] or
      [batch, heads or 1, q_len, kv_len], True = the pair may attend (the output
      of `attention.pattern`).

  Returns:
    bool broadcastable to [batch, heads, q_len, kv_len], or None when nothing is
    masked.
  """
  allowed = None

  def _and(a, b):
    return b if a is None else jnp.logical_and(a, b)

  if mask is not None:
    if mask.shape != (batch, kv_len):
      raise ValueError(
          f"mask must be bool [batch, kv_len] = {(batch, kv_len)}, got"
          f" {mask.shape}")
    allowed = _and(allowed, mask.astype(bool)[:, None, None, :])
  if causal:
    allowed = _and(allowed, jnp.asarray(causal_pairs(q_len, kv_len))[None, None])
  if pair_mask is not None:
    pair_mask = jnp.asarray(pair_mask, bool)
    if pair_mask.ndim == 3:
      pair_mask = pair_mask[None]
    if pair_mask.ndim != 4 or pair_mask.shape[-2:] != (q_len, kv_len):
      raise ValueError(
          "pair_mask must be bool [heads or 1, q_len, kv_len] (optionally with a"
          f" leading batch axis) with q_len, kv_len = {(q_len, kv_len)}, got"
          f" {pair_mask.shape}")
    allowed = _and(allowed, pair_mask)
  return allowed

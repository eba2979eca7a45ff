"""Dense (full) softmax attention: the oracle every other mechanism is tested against.

Paper: Vaswani et al. 2017, "Attention Is All You Need" (scaled dot product).
Family: none (the quadratic baseline of Tay et al.'s survey).
Complexity: O(q_len * kv_len * head_dim) time, O(q_len * kv_len) memory per
  batch element and head (the full score matrix is built).
Exact: yes. Causal: yes (`causal=True`, aligned at the sequence ends; see
  `masks.py`).

Numerics: logits, softmax and the weighted sum of values accumulate in float32
whatever the input dtype (bf16 inputs give a bf16 output computed in float32).
A query row with nothing to attend to returns zeros.

Options:
  pair_mask: optional bool [heads or 1, q_len, kv_len] (or with a leading batch
    axis), True = the pair may attend. This is how every fixed-pattern mechanism
    is checked: `dense(q, k, v, pair_mask=attention.pattern(name, ...))` is the
    reference its efficient kernel must equal.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers.attention import masks
from efficient_transformers.attention.shapes import check_qkv


def dense(q, k, v, *, mask=None, causal=False, pair_mask=None):
  """Full softmax attention, BTNH layout.

  Args:
    q: [batch, q_len, heads, head_dim].
    k, v: [batch, kv_len, heads, head_dim].
    mask: optional bool [batch, kv_len], True = real key.
    causal: query i sees keys j <= i (+ kv_len - q_len).
    pair_mask: optional bool [heads or 1, q_len, kv_len], True = allowed pair.

  Returns:
    [batch, q_len, heads, head_dim] in q's dtype.
  """
  check_qkv(q, k, v)
  batch, q_len, _, head_dim = q.shape
  kv_len = k.shape[1]
  logits_BxNxQxK = jnp.einsum(
      "bqnh,bknh->bnqk", q, k, preferred_element_type=jnp.float32)
  logits_BxNxQxK = logits_BxNxQxK / math.sqrt(head_dim)
  allowed = masks.allowed_pairs(
      batch, q_len, kv_len, mask=mask, causal=causal, pair_mask=pair_mask)
  if allowed is not None:
    logits_BxNxQxK = jnp.where(allowed, logits_BxNxQxK, masks.MASK_VALUE)
  weights_BxNxQxK = jax.nn.softmax(logits_BxNxQxK, axis=-1)
  if allowed is not None:
    # Rows with no allowed key got a uniform softmax over MASK_VALUE: zero them.
    weights_BxNxQxK = jnp.where(allowed, weights_BxNxQxK, 0.0)
  out_BxQxNxH = jnp.einsum(
      "bnqk,bknh->bqnh", weights_BxNxQxK, v.astype(jnp.float32))
  return out_BxQxNxH.astype(q.dtype)


def dense_pattern(q_len: int, kv_len: int, *, causal: bool = False) -> np.ndarray:
  """bool [1, q_len, kv_len]: every pair, or the causal triangle."""
  if causal:
    return masks.causal_pairs(q_len, kv_len)[None]
  return np.ones((1, q_len, kv_len), bool)

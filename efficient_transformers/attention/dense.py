"""Dense (full) softmax attention: the oracle every other mechanism is tested against.

Paper: Vaswani et al. 2017, "Attention Is All You Need" (scaled dot product).
Family: none (the quadratic baseline of Tay et al.'s survey).
Exact: yes. Causal: yes (`causal=True`, aligned at the sequence ends; see
  `masks.py`).

Implementations (`impl`), all computing the same function:
  "xla":     the plain quadratic form below: O(q_len * kv_len) memory per batch
             element and head (the full score matrix). The oracle.
  "chunked": dense_chunked.py: online softmax over [q_chunk, kv_chunk] tiles
             and a FlashAttention-2 style custom VJP; O((q_len + kv_len) *
             head_dim) memory. The default (None) on every backend, except when
             `pair_mask` is given (then "xla": a pair mask is itself quadratic).
  "cudnn":   jax.nn.dot_product_attention(implementation="cudnn"): NVIDIA GPU
             only, bf16/fp16 inputs, head_dim <= 256 and a multiple of 8,
             q_len == kv_len when causal, no pair_mask; `mask` must be a prefix
             mask (real tokens first, as LRA's padding is): it is passed as
             per-example key lengths. Anything else raises ValueError.
  "pallas":  the Pallas flash-attention kernel (kernels/, via block_sparse.py)
             over the tiles of `dense_pattern`: all of them, or the causal
             triangle (about half). No pair_mask. On CPU it runs interpreted
             (slow: for tests).
Time is O(q_len * kv_len * head_dim) for all of them.

Numerics: logits, softmax and the weighted sum of values accumulate in float32
whatever the input dtype (bf16 inputs give a bf16 output computed in float32).
A query row with nothing to attend to returns zeros.

Options:
  pair_mask: optional bool [heads or 1, q_len, kv_len] (or with a leading batch
    axis), True = the pair may attend. This is how every fixed-pattern mechanism
    is checked: `dense(q, k, v, pair_mask=attention.pattern(name, ...))` is the
    reference its efficient kernel must equal. "xla" only.
  impl: None (automatic, see above), "xla", "chunked", "cudnn" or "pallas".
  q_chunk, kv_chunk: tile sizes of "chunked" (default 512 each).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers.attention import block_sparse, masks
from efficient_transformers.attention.dense_chunked import (DEFAULT_KV_CHUNK,
                                                            DEFAULT_Q_CHUNK,
                                                            dense_chunked)
from efficient_transformers.attention.shapes import check_qkv

IMPLS = ("xla", "chunked", "cudnn", "pallas")


def dense(q, k, v, *, mask=None, causal=False, pair_mask=None, impl=None,
          q_chunk=DEFAULT_Q_CHUNK, kv_chunk=DEFAULT_KV_CHUNK):
  """Full softmax attention, BTNH layout.

  Args:
    q: [batch, q_len, heads, head_dim].
    k, v: [batch, kv_len, heads, head_dim].
    mask: optional bool [batch, kv_len], True = real key.
    causal: query i sees keys j <= i (+ kv_len - q_len).
    pair_mask: optional bool [heads or 1, q_len, kv_len], True = allowed pair.
    impl: None, "xla", "chunked", "cudnn" or "pallas" (module docstring).
    q_chunk, kv_chunk: tile sizes for impl="chunked".

  Returns:
    [batch, q_len, heads, head_dim] in q's dtype.
  """
  check_qkv(q, k, v)
  if impl is None:
    impl = "xla" if pair_mask is not None else "chunked"
  if impl not in IMPLS:
    raise ValueError(f"unknown dense impl {impl!r}; valid: {', '.join(IMPLS)}")
  if pair_mask is not None and impl != "xla":
    raise ValueError(f"pair_mask is supported by impl='xla' only, not {impl!r}")
  if impl == "chunked":
    return dense_chunked(q, k, v, mask=mask, causal=causal, q_chunk=q_chunk,
                         kv_chunk=kv_chunk)
  if impl == "cudnn":
    return _dense_cudnn(q, k, v, mask=mask, causal=causal)
  if impl == "pallas":
    return block_sparse.attend("dense", dense_pattern, q, k, v, mask=mask,
                               causal=causal)
  return _dense_xla(q, k, v, mask=mask, causal=causal, pair_mask=pair_mask)


def _dense_xla(q, k, v, *, mask, causal, pair_mask):
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


def _dense_cudnn(q, k, v, *, mask, causal):
  """cuDNN fused attention through jax.nn.dot_product_attention."""
  problems = []
  if jax.default_backend() != "gpu":
    problems.append(f"needs an NVIDIA GPU (backend is {jax.default_backend()!r})")
  if q.dtype not in (jnp.bfloat16, jnp.float16):
    problems.append(f"needs bfloat16 or float16 inputs (got {q.dtype})")
  head_dim = q.shape[-1]
  if head_dim > 256 or head_dim % 8:
    problems.append(f"needs head_dim <= 256 and a multiple of 8 (got {head_dim})")
  if causal and q.shape[1] != k.shape[1]:
    problems.append("aligns causal masks at the start, so causal needs q_len == kv_len")
  if problems:
    raise ValueError("dense impl='cudnn' " + "; ".join(problems) +
                     ". Use impl='chunked' (any backend and dtype) instead.")
  lengths = None if mask is None else jnp.sum(mask, axis=-1, dtype=jnp.int32)
  out = jax.nn.dot_product_attention(q, k, v, is_causal=causal,
                                     key_value_seq_lengths=lengths,
                                     implementation="cudnn")
  if lengths is not None:  # examples without any real key: zeros, as the contract says
    out = jnp.where((lengths > 0)[:, None, None, None], out, 0)
  return out.astype(q.dtype)


def dense_pattern(q_len: int, kv_len: int, *, causal: bool = False, impl=None,
                  q_chunk=None, kv_chunk=None) -> np.ndarray:
  """bool [1, q_len, kv_len]: every pair, or the causal triangle (any impl)."""
  del impl, q_chunk, kv_chunk
  if causal:
    return masks.causal_pairs(q_len, kv_len)[None]
  return np.ones((1, q_len, kv_len), bool)

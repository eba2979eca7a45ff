"""Relative multi-head attention of Transformer-XL (Dai et al. 2019, Sec. 3.3).

Paper: Dai, Yang, Yang, Carbonell, Le, Salakhutdinov, "Transformer-XL:
Attentive Language Models Beyond a Fixed-Length Context", ACL 2019.
Survey family (Tay et al.): recurrence. Exact (no approximation).

Queries come from the current segment only (length L); keys and values from
the context [memory; segment] (length K = M + L), so query i sits at absolute
position M + i and may attend keys j <= M + i (causal, `masks.causal_pairs`).
The logit of (i, j) at distance d = M + i - j is

    A_ij = ((q_i + u) . k_j + (q_i + v) . W_R R_d) / sqrt(head_dim)

with R_d the sinusoidal embedding of distance d (sin and cos halves
concatenated, `embedding.sinusoidal_positions`), W_R a learned projection,
and u ("content bias"), v ("position bias") learned [heads, head_dim].

The relative-shift trick (`rel_shift`): the position term is computed against
R at the K distances K-1, ..., 0 (one [L, K] product, no gather), then every
row i is shifted left by L-1-i, which puts distance M + i - j at column j for
every causally valid entry (j <= M + i). Entries above the causal diagonal
hold wrapped values; they are masked. `relative_logits_direct` computes the
same term by gathering W_R R_{M+i-j} for every pair: the O(L K head_dim)
reference used by the tests.

Complexity: O(L (M + L)) time and memory per segment and head (quadratic in
the segment, as the paper). Causal only (language modelling).
Options: `num_heads`, `qkv_dim` (default emb_dim). Memory validity: a bool
[batch, K] mask of real context slots (memory not yet filled is masked).

Deviations: u and v are per layer (the official TF code's `untie_r=True`; the
PyTorch code shares them across layers by default); no dropout on R or on the
attention probabilities (see attention_layer.py: efficient mechanisms never
hold the probabilities, and this layer keeps the same rule).
"""

from __future__ import annotations

import math

import einops
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from efficient_transformers.attention import masks
from efficient_transformers.attention import softmax_partials
from efficient_transformers.models.embedding import sinusoidal_positions


def descending_positions(kv_len: int, dim: int) -> np.ndarray:
  """float32 [kv_len, dim]: row c is the sinusoidal embedding of distance kv_len-1-c."""
  return sinusoidal_positions(kv_len, dim)[::-1].copy()


def rel_shift(x: jax.Array) -> jax.Array:
  """[..., L, K] scores against distances K-1..0 -> [..., L, K] by (i, j) pairs.

  Pads a zero column on the left ([L, K+1]), reads the buffer as [K+1, L],
  drops its first row and reads it back as [L, K]: row i moves left by L-1-i,
  so out[i, j] = x[i, j + L - 1 - i], the score at distance (K - L) + i - j,
  for every j <= (K - L) + i. Needs K >= L.
  """
  *lead, q_len, kv_len = x.shape
  if kv_len < q_len:
    raise ValueError(f"rel_shift needs kv_len >= q_len; got {kv_len} < {q_len}")
  padded = jnp.pad(x, [(0, 0)] * len(lead) + [(0, 0), (1, 0)])
  padded = padded.reshape(*lead, kv_len + 1, q_len)[..., 1:, :]
  return padded.reshape(*lead, q_len, kv_len)


def relative_logits(q, k, r, content_bias, position_bias):
  """float32 logits [B, N, L, K] with the relative-shift trick.

  Args:
    q: [B, L, N, H] queries of the segment.
    k: [B, K, N, H] keys of [memory; segment].
    r: [K, N, H] projected embeddings of the distances K-1, ..., 0 (descending).
    content_bias, position_bias: u and v, [N, H].
  """
  content = jnp.einsum("blnh,bknh->bnlk", q + content_bias, k,
                       preferred_element_type=jnp.float32)
  position = jnp.einsum("blnh,knh->bnlk", q + position_bias, r,
                        preferred_element_type=jnp.float32)
  return (content + rel_shift(position)) / math.sqrt(q.shape[-1])


def relative_logits_direct(q, k, r_by_distance, content_bias, position_bias):
  """The same logits by gathering W_R R_{M+i-j} per pair (test reference).

  r_by_distance: [K, N, H], row d = projected embedding of distance d.
  Entries with j > M + i (negative distance, masked anyway) use distance 0.
  """
  q_len, kv_len = q.shape[1], k.shape[1]
  distance = (kv_len - q_len) + np.arange(q_len)[:, None] - np.arange(kv_len)[None]
  r_LxKxNxH = r_by_distance[np.clip(distance, 0, kv_len - 1)]
  content = jnp.einsum("blnh,bknh->bnlk", q + content_bias, k,
                       preferred_element_type=jnp.float32)
  position = jnp.einsum("blnh,lknh->bnlk", q + position_bias, r_LxKxNxH,
                        preferred_element_type=jnp.float32)
  return (content + position) / math.sqrt(q.shape[-1])


def attend(logits_BxNxLxK, v_BxKxNxH, context_valid_BxK, dtype):
  """Causal softmax over the context (end-aligned) -> [B, L, N, H] in dtype.

  Rows with nothing to attend to are zeros (softmax_partials.finish).
  """
  batch, _, q_len, kv_len = logits_BxNxLxK.shape
  allowed = masks.allowed_pairs(batch, q_len, kv_len, mask=context_valid_BxK,
                                causal=True)
  p = softmax_partials.partials(logits_BxNxLxK, allowed,
                                einops.rearrange(v_BxKxNxH, "b k n h -> b n k h"))
  return einops.rearrange(softmax_partials.finish(p, dtype), "b n l h -> b l n h")


class RelativeAttention(nnx.Module):
  """Multi-head attention from a segment to [memory; segment], relative positions.

  Args:
    emb_dim: width E of the inputs and output.
    num_heads: heads N.
    qkv_dim: total q/k/v width (default emb_dim), head_dim = qkv_dim // N.
    rngs: parameter initialisation.
  Projections as AttentionLayer (no biases, xavier_uniform); W_R the same;
  u and v start at zero.
  """

  def __init__(self, emb_dim: int, num_heads: int, *, qkv_dim: int | None = None,
               rngs: nnx.Rngs):
    qkv_dim = emb_dim if qkv_dim is None else qkv_dim
    if qkv_dim % num_heads:
      raise ValueError(f"qkv_dim {qkv_dim} is not divisible by num_heads {num_heads}")
    self.emb_dim = emb_dim
    self.num_heads = num_heads
    head_dim = qkv_dim // num_heads

    def projection(d_in, d_out):
      return nnx.Linear(d_in, d_out, use_bias=False,
                        kernel_init=jax.nn.initializers.xavier_uniform(), rngs=rngs)

    self.query = projection(emb_dim, qkv_dim)
    self.key = projection(emb_dim, qkv_dim)
    self.value = projection(emb_dim, qkv_dim)
    self.position = projection(emb_dim, qkv_dim)  # W_R
    self.out = projection(qkv_dim, emb_dim)
    self.content_bias = nnx.Param(jnp.zeros((num_heads, head_dim), jnp.float32))
    self.position_bias = nnx.Param(jnp.zeros((num_heads, head_dim), jnp.float32))

  def split(self, x):
    return einops.rearrange(x, "b t (n h) -> b t n h", n=self.num_heads)

  def projected_distances(self, kv_len: int, dtype) -> jax.Array:
    """[K, N, H]: W_R R_d for d = K-1, ..., 0 (descending, for rel_shift)."""
    table = jnp.asarray(descending_positions(kv_len, self.emb_dim), dtype)
    return self.split(self.position(table)[None])[0]

  def __call__(self, x: jax.Array, context: jax.Array,
               context_valid: jax.Array) -> jax.Array:
    """x [B, L, E] (the segment) attends to context [B, K, E] ([memory; x]).

    context_valid: bool [B, K], True = a real slot (unfilled memory is False).
    Returns [B, L, E].
    """
    q = self.split(self.query(x))
    k = self.split(self.key(context))
    v = self.split(self.value(context))
    r = self.projected_distances(context.shape[1], q.dtype)
    logits = relative_logits(q, k, r, self.content_bias[...].astype(q.dtype),
                             self.position_bias[...].astype(q.dtype))
    out = attend(logits, v, context_valid, q.dtype)
    return self.out(einops.rearrange(out, "b l n h -> b l (n h)"))

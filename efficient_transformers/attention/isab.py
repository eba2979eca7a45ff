"""Induced set attention: attention routed through m inducing points.

Paper: Lee et al. 2019, "Set Transformer: A Framework for Attention-based
Permutation-Invariant Neural Networks" (ISAB, Sec. 3.2).
Family: neural memory (Tay et al.'s survey: the inducing points are a small
  global memory that every element writes to and reads from).
Complexity: O(L * m * d) time and O(L * m) memory (L = kv_len or q_len,
  m = number of inducing points); never an [q_len, kv_len] array.
Exact: no. With m = kv_len inducing points that each select exactly one key
  (sharply: I K^T = c * identity, c -> infinity) the pooling is the identity
  and the result is dense attention (the contract's limit test).
Causal: no (sets have no order; the summary mixes every element):
  `causal=True` raises ValueError.

This is the attention-function form of ISAB_m(X) = MAB(X, MAB(I, X)), used
inside the ordinary encoder layer (`config.model.attention = "isab"`). Per
head, with the layer's projections q = X W_q, k = X W_k, v = X W_v:

    A  = softmax(I k^T / sqrt(d))     [m, kv_len]  inducing points read the set
    Hk = A k,  Hv = A v               [m, d]       the m-row summary
    out = softmax(q Hk^T / sqrt(d)) Hv             the set reads the summary

i.e. H = Multihead(I, X, X) followed by Multihead(X, H, H), where the first
block's value path and the second block's key/value projections are folded
into the layer's W_k and W_v (one pooling A per head, applied to both keys and
values). Deviations from the paper's ISAB, by construction of an attention
function: MAB(I, X)'s residual, LayerNorms and rFF are dropped (H is the bare
pooled summary), each head pools with its own A (the paper mixes the heads of
H through W_o before MAB(X, H) projects it), and MAB(X, H)'s residual, norms
and rFF are those of the encoder block around this function (pre-LN, GELU
MLP). The paper's full blocks, with their own projections, residuals, rFF and
LayerNorms, are `models/set_transformer.py` (MAB, SAB, ISAB, PMA).

Scaling: 1/sqrt(head_dim) per head, as the paper's scaled softmax applied to
each head's projected queries and keys. The official code
(juho-lee/set_transformer, modules.py) divides by sqrt(dim_V), the full model
width, instead.

Padding: padded keys and values get no weight in A, so they contribute nothing
to the summary; an example with no real key has an all-zero summary and
returns zeros. Every query (padded or not) reads the summary.

Options:
  inducing: the inducing points in the (per-head) query space, float
    [m, heads, head_dim] shared by the batch, or [batch, m, heads, head_dim].
    The NNX layer learns them (models/set_transformer.InducingPoints,
    `num_inducing` points, default 32 as the official code's num_inds).
"""

from __future__ import annotations

import jax.numpy as jnp

from efficient_transformers.attention.dense import dense
from efficient_transformers.attention.shapes import check_qkv


def _batched_inducing(inducing, batch, heads, head_dim):
  inducing = jnp.asarray(inducing)
  if inducing.ndim == 3:
    inducing = inducing[None]
  if (inducing.ndim != 4 or inducing.shape[0] not in (1, batch)
      or inducing.shape[2:] != (heads, head_dim)):
    raise ValueError(
        "inducing must be [m, heads, head_dim] or [batch, m, heads, head_dim]"
        f" with batch={batch}, heads={heads}, head_dim={head_dim}; got"
        f" {inducing.shape}")
  return jnp.broadcast_to(inducing, (batch,) + inducing.shape[1:])


def isab(q, k, v, *, mask=None, causal=False, inducing):
  """Induced set attention, BTNH layout; see the module docstring."""
  check_qkv(q, k, v)
  if causal:
    raise ValueError("isab cannot be causal: sets have no order and the"
                     " inducing-point summary mixes every element")
  batch, _, heads, head_dim = q.shape
  inducing_BxMxNxH = _batched_inducing(inducing, batch, heads, head_dim)
  f32 = lambda x: x.astype(jnp.float32)
  k32, v32 = f32(k), f32(v)
  # Step 1, [m, kv_len] logits per head: one pooling of both keys and values
  # (concatenated as the "values"), padded keys masked by dense.
  kv_BxSxNx2H = jnp.concatenate([k32, v32], axis=-1)
  summary_BxMxNx2H = dense(f32(inducing_BxMxNxH), k32, kv_BxSxNx2H, mask=mask,
                           impl="xla")
  summary_k, summary_v = jnp.split(summary_BxMxNx2H, [head_dim], axis=-1)
  # Step 2, [q_len, m] logits per head: every summary row is a real key.
  out = dense(f32(q), summary_k, summary_v, impl="xla")
  return out.astype(q.dtype)

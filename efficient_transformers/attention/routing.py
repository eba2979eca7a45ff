"""Routing attention: attention within online k-means clusters.

Paper: Roy, Saffar, Vaswani, Grangier 2021, "Efficient Content-Based Sparse
  Attention with Routing Transformers" (TACL; arXiv 2003.05997).
Family: learnable patterns (Tay et al.'s survey), clustering-based.

Algorithm (one call, per batch element and head):
  1. q and k are layer-normalised without gain or bias (`normalize`), as in
     the paper and its official code; attention uses these normalised q, k.
  2. Balanced routing: each centroid c takes the `window` queries and the
     `window` keys with the highest dot product with it (top-k over the
     sequence), so every cluster has exactly `window` members and a token may
     be in zero, one or several clusters. Padded keys are taken last and masked.
  3. Within a cluster, members are kept in sequence order and each query
     attends to the cluster's keys with one softmax (scale 1/sqrt(head_dim));
     `causal` masks by the tokens' real positions (key j <= query i), which is
     what makes the decoder work.
  4. Outputs are scattered back to their positions and averaged over the
     clusters in which the query had at least one key to attend to.
     Deviation from the official code, which divides the sum by count + 1e-2
     (so a token in one cluster gets 0.99 of its output): we divide by the
     count. A query in no cluster (or with nothing visible in its clusters)
     gets zeros, as in the official code (the paper mixes routing heads with
     local heads; here the residual connection carries such tokens).

The centroids are an explicit argument: the NNX layer owns them and updates
them by an exponential moving average (models/routing_centroids.py); no
gradient reaches them here.

Complexity: time O(C * L * d + C * w^2 * d) for C clusters of window w
(O(L^1.5 d) with C = w = sqrt(L), the paper's choice); memory
O(L * d + C * w * d + C * w^2): all clusters at once, as batched work (one
[C, L] score matmul and one batched top_k each for queries and keys, then
[C, w, w] logits), which with C * w = L is O(L * w) memory.
Exact: no (content-based sparsity). With one cluster whose window covers the
  sequence it is dense attention on the normalised q and k.
Causal: yes (step 3), with one caveat shared with the paper's code: which
  tokens fill a cluster is decided over the whole sequence, so cluster
  membership (a discrete choice, not a gradient path) can depend on later
  tokens at training time.
Cross lengths: yes (queries and keys are routed separately; causal aligns
  the ends, see masks.py).

Options:
  centroids: float [num_clusters, head_dim] or [heads, num_clusters, head_dim]
    (required).
  window: members per cluster (default ceil(kv_len / num_clusters), i.e.
    num_clusters * window = length as in the paper); clipped to each length.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from efficient_transformers.attention import masks
from efficient_transformers.attention import softmax_partials as sp
from efficient_transformers.attention.shapes import check_qkv

LAYER_NORM_EPSILON = 1e-6


def normalize(x):
  """Layer norm over the last axis without gain or bias, in float32."""
  x = x.astype(jnp.float32)
  mean = x.mean(-1, keepdims=True)
  var = jnp.square(x - mean).mean(-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + LAYER_NORM_EPSILON)


def check_centroids(centroids, heads: int, head_dim: int):
  """centroids as float32 [heads, num_clusters, head_dim], or a ValueError."""
  centroids = jnp.asarray(centroids, jnp.float32)
  if centroids.ndim == 2:
    centroids = jnp.broadcast_to(centroids[None], (heads,) + centroids.shape)
  if (centroids.ndim != 3 or centroids.shape[0] != heads
      or centroids.shape[2] != head_dim or centroids.shape[1] < 1):
    raise ValueError(
        "routing centroids must be [num_clusters, head_dim] or [heads,"
        f" num_clusters, head_dim] with heads={heads}, head_dim={head_dim};"
        f" got {centroids.shape}")
  return centroids


def routing(q, k, v, *, mask=None, causal=False, centroids=None, window=None):
  """Routing attention, BTNH layout (module docstring).

  Args:
    q: [batch, q_len, heads, head_dim]; k, v: [batch, kv_len, heads, head_dim].
    mask: optional bool [batch, kv_len], True = real key.
    causal: key j visible to query i when j <= i + kv_len - q_len.
    centroids: [num_clusters, head_dim] or [heads, num_clusters, head_dim].
    window: members per cluster (default ceil(kv_len / num_clusters)).

  Returns:
    [batch, q_len, heads, head_dim] in q's dtype.
  """
  check_qkv(q, k, v)
  if centroids is None:
    raise ValueError("routing needs `centroids` [num_clusters, head_dim] (the"
                     " attention layer's RoutingCentroids module passes them)")
  batch, q_len, heads, head_dim = q.shape
  kv_len = k.shape[1]
  centroids_NxCxH = jax.lax.stop_gradient(check_centroids(centroids, heads, head_dim))
  num_clusters = centroids_NxCxH.shape[1]
  if window is None:
    window = -(-kv_len // num_clusters)
  window = sp.check_int("window", window, 1)
  return _routing(q, k, v, mask, centroids_NxCxH, causal=bool(causal),
                  q_window=min(window, q_len), k_window=min(window, kv_len))


@functools.partial(jax.jit, static_argnames=("causal", "q_window", "k_window"))
def _routing(q, k, v, mask, centroids_NxCxH, *, causal, q_window, k_window):
  """routing() after its checks; jitted so that eager calls compile once."""
  batch, q_len, heads, _ = q.shape
  kv_len = k.shape[1]
  to_bnth = lambda x: jnp.swapaxes(x, 1, 2)
  q_BxNxTxH = to_bnth(normalize(q))
  k_BxNxSxH = to_bnth(normalize(k))
  v_BxNxSxH = to_bnth(v).astype(jnp.float32)
  key_ok_BxNxS = jnp.broadcast_to(sp.key_ok(mask, batch, kv_len), (batch, heads, kv_len))
  offset = kv_len - q_len

  num_clusters = centroids_NxCxH.shape[1]

  def members(x_BxNxTxH, mu_NxCxH, window, ok_BxNxT=None):
    """Each centroid's `window` highest-scoring positions, in sequence order:
    one [B, N, C, T] score matmul and one batched top_k for all clusters."""
    score_BxNxCxT = jnp.einsum("bnth,nch->bnct", jax.lax.stop_gradient(x_BxNxTxH),
                               mu_NxCxH)  # membership is discrete: no gradient
    if ok_BxNxT is not None:
      # Padded keys rank last (equal scores: top_k then takes the lowest
      # positions, whatever their content), and are masked below.
      score_BxNxCxT = jnp.where(ok_BxNxT[:, :, None, :], score_BxNxCxT,
                                masks.MASK_VALUE)
    return jnp.sort(jax.lax.top_k(score_BxNxCxT, window)[1], axis=-1)

  def gather(x_BxNxTxH, idx_BxNxCxW):
    flat_BxNxCWx1 = idx_BxNxCxW.reshape(batch, heads, -1)[..., None]
    return jnp.take_along_axis(x_BxNxTxH, flat_BxNxCWx1, axis=2).reshape(
        idx_BxNxCxW.shape + x_BxNxTxH.shape[-1:])

  q_idx_BxNxCxW = members(q_BxNxTxH, centroids_NxCxH, q_window)
  k_idx_BxNxCxW = members(k_BxNxSxH, centroids_NxCxH, k_window, key_ok_BxNxS)
  allowed_BxNxCxWxW = jnp.take_along_axis(
      key_ok_BxNxS, k_idx_BxNxCxW.reshape(batch, heads, -1), axis=2).reshape(
          k_idx_BxNxCxW.shape)[..., None, :]
  if causal:
    allowed_BxNxCxWxW = allowed_BxNxCxWxW & (
        k_idx_BxNxCxW[..., None, :] <= q_idx_BxNxCxW[..., :, None] + offset)
  parts = sp.partials(
      sp.logits(gather(q_BxNxTxH, q_idx_BxNxCxW), gather(k_BxNxSxH, k_idx_BxNxCxW)),
      allowed_BxNxCxWxW, gather(v_BxNxSxH, k_idx_BxNxCxW))
  out_BxNxCxWxH = sp.finish(parts, jnp.float32)
  has_keys_BxNxCxW = parts.row_sum > 0

  # Back to the query positions: every cluster's rows at once (the gather's
  # transpose), averaged over the clusters in which the query had keys.
  flat_idx_BxNxCW = q_idx_BxNxCxW.reshape(batch, heads, num_clusters * q_window)
  b_idx = jnp.arange(batch)[:, None, None]
  n_idx = jnp.arange(heads)[None, :, None]
  total_BxNxTxH = jnp.zeros((batch, heads, q_len, v.shape[-1]), jnp.float32).at[
      b_idx, n_idx, flat_idx_BxNxCW].add(
          out_BxNxCxWxH.reshape(batch, heads, -1, v.shape[-1]))
  count_BxNxT = jnp.zeros((batch, heads, q_len), jnp.float32).at[
      b_idx, n_idx, flat_idx_BxNxCW].add(
          has_keys_BxNxCxW.reshape(batch, heads, -1).astype(jnp.float32))
  out_BxNxTxH = total_BxNxTxH / jnp.maximum(count_BxNxT, 1.0)[..., None]
  return jnp.swapaxes(out_BxNxTxH, 1, 2).astype(q.dtype)

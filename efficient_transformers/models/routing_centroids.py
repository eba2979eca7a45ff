"""Routing Transformer's k-means centroids (Roy et al. 2021), owned by the
attention layer (`MECHANISM_MODULES["routing"]`); see attention/routing.py.

Paper: Roy, Saffar, Vaswani, Grangier 2021, "Efficient Content-Based Sparse
  Attention with Routing Transformers". Family: learnable patterns.
Complexity: O(L * num_clusters * head_dim) per head for the assignment and
  the update (the attention itself is in attention/routing.py).

State (models/variables.py): the centroids [heads, num_clusters, head_dim] are
nnx.BatchStat, never trained by the optimiser. Each training call
(deterministic=False) assigns every real query and key (layer-normed without
gain, as the attention sees them) to its nearest centroid (largest dot
product) and updates, per head, with decay = `ema_decay`:
  cluster_sizes <- decay * cluster_sizes + (1 - decay) * counts
  cluster_sums  <- decay * cluster_sums  + (1 - decay) * sums of assigned vectors
  centroids     <- cluster_sums / smoothed sizes
(Laplace smoothing, eps = 1e-5: (size + eps) / (total + C * eps) * total), as
in the official code. The attention uses the centroids from before the update.
Evaluation (deterministic=True) changes nothing. The commitment loss
`commitment_weight * mean((x - stop_gradient(centroid(x)))^2)` over real
queries and keys is sown as the aux loss "routing_commitment" (training only).

Initialisation: centroids = layer_norm(N(0, 1)); cluster_sums = centroids and
cluster_sizes = 1, i.e. each centroid starts as the mean of one point, so an
unused cluster keeps its centroid instead of collapsing to zero (the official
code starts its sums and counts from zero).

attention_kw read: `num_clusters` (8), `commitment_weight` (1e-4, the official
`beta`), `ema_decay` (0.999, the official `sparse_transformer_local` value);
`window` goes to the function (default ceil(length / num_clusters)). The
layer's own `shared_qk` option (keys = query projection) gives the paper's
decoder setting, where a token always shares clusters with itself.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from efficient_transformers.attention.routing import normalize
from efficient_transformers.models.variables import add_aux_loss

SMOOTHING = 1e-5


def _positive_int(name, value):
  if isinstance(value, bool) or int(value) != value or value < 1:
    raise ValueError(f"routing {name} must be an integer >= 1, got {value!r}")
  return int(value)


class RoutingCentroids(nnx.Module):
  """Online k-means centroids per head, passed to `routing` as `centroids`."""

  layer_options = ("num_clusters", "commitment_weight", "ema_decay")
  call_inputs = ("q", "k", "mask")

  def __init__(self, *, emb_dim: int, num_heads: int, head_dim: int,
               max_length: int | None, attention_kw: Mapping[str, Any],
               rngs: nnx.Rngs):
    del emb_dim, max_length
    num_clusters = _positive_int("num_clusters", attention_kw.get("num_clusters", 8))
    self.commitment_weight = float(attention_kw.get("commitment_weight", 1e-4))
    self.ema_decay = float(attention_kw.get("ema_decay", 0.999))
    if not 0.0 <= self.ema_decay < 1.0:
      raise ValueError(f"routing ema_decay must be in [0, 1), got {self.ema_decay}")
    init = normalize(jax.random.normal(rngs.params(), (num_heads, num_clusters, head_dim)))
    self.centroids = nnx.BatchStat(init)
    self.cluster_sums = nnx.BatchStat(jnp.array(init, copy=True))  # own buffer (donation)
    self.cluster_sizes = nnx.BatchStat(jnp.ones((num_heads, num_clusters), jnp.float32))

  def __call__(self, x, context, *, q, k, mask=None, deterministic: bool,
               rngs=None) -> dict:
    del x, context, rngs
    centroids = self.centroids[...]
    if not deterministic:
      self._update(q, k, mask, centroids)
    return {"centroids": centroids}

  def _update(self, q, k, mask, centroids):
    """EMA update and commitment loss from the real queries and keys."""
    batch, q_len, kv_len = q.shape[0], q.shape[1], k.shape[1]
    key_weight = (jnp.ones((batch, kv_len), jnp.float32) if mask is None
                  else mask.astype(jnp.float32))
    # In self-attention the key padding is also the query padding.
    query_weight = key_weight if q_len == kv_len else jnp.ones((batch, q_len), jnp.float32)
    points_BxTxNxH = jnp.concatenate([normalize(q), normalize(k)], axis=1)
    weight_BxT = jnp.concatenate([query_weight, key_weight], axis=1)
    num_clusters = centroids.shape[1]
    nearest_BxTxN = jnp.argmax(
        jnp.einsum("btnh,nch->btnc", points_BxTxNxH, centroids), axis=-1)
    onehot_BxTxNxC = (jax.nn.one_hot(nearest_BxTxN, num_clusters)
                      * weight_BxT[:, :, None, None])
    assigned_BxTxNxH = jnp.einsum("btnc,nch->btnh",
                                  jax.nn.one_hot(nearest_BxTxN, num_clusters), centroids)
    squared = jnp.square(points_BxTxNxH - jax.lax.stop_gradient(assigned_BxTxNxH))
    denominator = jnp.maximum(weight_BxT.sum() * q.shape[2] * q.shape[3], 1.0)
    commitment = jnp.sum(squared * weight_BxT[:, :, None, None]) / denominator
    add_aux_loss(self, "routing_commitment", self.commitment_weight * commitment)

    points = jax.lax.stop_gradient(points_BxTxNxH)
    counts_NxC = onehot_BxTxNxC.sum((0, 1))
    sums_NxCxH = jnp.einsum("btnc,btnh->nch", onehot_BxTxNxC, points)
    decay = self.ema_decay
    sizes = decay * self.cluster_sizes[...] + (1 - decay) * counts_NxC
    sums = decay * self.cluster_sums[...] + (1 - decay) * sums_NxCxH
    total = sizes.sum(-1, keepdims=True)
    smoothed = (sizes + SMOOTHING) / (total + num_clusters * SMOOTHING) * total
    self.cluster_sizes[...] = sizes
    self.cluster_sums[...] = sums
    self.centroids[...] = sums / smoothed[..., None]

"""`routing` (Routing Transformer) in the shared contract; its exact limit (one
cluster covering the sequence = dense attention on layer-normed q, k); the
balanced top-window routing against a direct numpy computation; no causal leak
with partial windows; memory that follows the clusters, not L^2."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from tests.attention.attention_contract import (AttentionContract, check_causal_gradients,
                                check_matches_reference, compiled_temp_bytes,
                                random_padding, random_qkv)
from efficient_transformers import attention
from efficient_transformers.attention.routing import normalize


def centroids(heads, num_clusters, head_dim, seed=0):
  rng = np.random.default_rng(seed)
  return normalize(jnp.asarray(rng.normal(size=(heads, num_clusters, head_dim))))


class TestRouting(AttentionContract):
  name = "routing"
  exact = False
  limit_options = {}  # see test_converges_to_dense
  # One shape (odd length, 3 heads, batch 2) plus the base's cross-length one:
  # every shape is a compilation, and CI time is shared.
  shapes = [(2, 13, 13, 3, 4)]

  def make_options(self, q_len, kv_len, heads, head_dim, causal):
    if q_len >= 256:  # memory check: fixed windows of 32, clusters cover L
      return {"centroids": centroids(heads, q_len // 32, head_dim), "window": 32}
    if causal:  # every row must see its past (check_causal_gradients)
      return {"centroids": centroids(heads, 2, head_dim), "window": kv_len}
    # Half windows: tokens in zero, one and two clusters.
    return {"centroids": centroids(heads, 3, head_dim), "window": -(-kv_len // 2)}

  def test_converges_to_dense(self):
    """One cluster whose window covers the sequence is dense attention on the
    layer-normed q and k: outputs and gradients, causal, padded, cross lengths."""
    ref = lambda q, k, v, **kw: attention.dense(normalize(q), normalize(k), v,
                                                impl="xla", **kw)
    for shape, cases in ((self._shapes()[0], [(False, False), (True, True)]),
                         (self._shapes()[-1], [(True, True)])):
      q, k, v = random_qkv(4, *shape)
      one = functools.partial(attention.get("routing"),
                              centroids=centroids(shape[3], 1, shape[4]),
                              window=max(shape[1], shape[2]))
      for causal, padded in cases:
        mask = random_padding(4, shape[0], shape[2]) if padded else None
        check_matches_reference(one, ref, q, k, v, mask, causal, 4, 1e-5, 1e-5)


def _numpy_routing(q, k, v, mus, window, causal):
  """Direct loops: per head and cluster, top-window members, softmax, average."""
  qn, kn = np.asarray(normalize(q)), np.asarray(normalize(k))
  v = np.asarray(v, np.float64)
  batch, length, heads, dim = q.shape
  total = np.zeros(v.shape)
  count = np.zeros(v.shape[:3])
  for b in range(batch):
    for n in range(heads):
      for mu in np.asarray(mus[n]):
        qi = np.sort(np.argsort(-(qn[b, :, n] @ mu), kind="stable")[:window])
        ki = np.sort(np.argsort(-(kn[b, :, n] @ mu), kind="stable")[:window])
        for i in qi:
          keys = [j for j in ki if not causal or j <= i]
          if not keys:
            continue
          s = qn[b, i, n] @ kn[b, keys, n].T / np.sqrt(dim)
          w = np.exp(s - s.max())
          total[b, i, n] += (w / w.sum()) @ v[b, keys, n]
          count[b, i, n] += 1
  return total / np.maximum(count, 1)[..., None]


def test_matches_direct_computation():
  q, k, v = random_qkv(5, 2, 12, 12, 2, 8)
  mus = centroids(2, 3, 8, seed=5)
  for causal in (False, True):
    out = attention.get("routing")(q, k, v, centroids=mus, window=5, causal=causal)
    np.testing.assert_allclose(out, _numpy_routing(q, k, v, mus, 5, causal),
                               rtol=1e-5, atol=1e-5)


def test_tokens_in_no_cluster_get_zeros():
  q, k, v = random_qkv(6, 1, 16, 16, 1, 8)
  out = attention.get("routing")(q, k, v, centroids=centroids(1, 1, 8), window=4)
  nonzero = np.any(np.asarray(out)[0, :, 0] != 0, axis=-1)
  assert nonzero.sum() == 4


def test_no_causal_leak_with_partial_windows():
  """Rows in a cluster with a visible key get gradient only from the past."""
  q, k, v = random_qkv(7, 2, 16, 16, 2, 8)
  k = q  # shared QK (the paper's decoder): every query sees itself
  fn = functools.partial(attention.get("routing"), centroids=centroids(2, 4, 8), window=6)
  out = fn(q, q, v, causal=True)
  covered = np.all(np.any(np.asarray(out) != 0, axis=-1), axis=(0, 2))
  rows = [i for i in (0, 5, 9, 15) if covered[i]]
  assert rows, "no covered row to test"
  check_causal_gradients(fn, q, k, v, rows=rows)


def test_memory_grows_like_clusters_times_window():
  """sqrt(L) clusters of sqrt(L) tokens: temporary memory grows about as L
  (clusters are processed one at a time), far below L^2."""

  def make(n):
    c = int(np.sqrt(n))
    return functools.partial(attention.get("routing"), centroids=centroids(1, c, 16),
                             window=c)

  small, large = compiled_temp_bytes(make(256), 256), compiled_temp_bytes(make(1024), 1024)
  assert large / small < 8, (small, large)

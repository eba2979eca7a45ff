"""`memory_compressed` (Liu et al. 2018) in the shared base, and against dense
attention over keys and values compressed explicitly here."""

import functools

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.attention.attention_contract import (SEEDS, SETTINGS, AttentionContract,
                                check_causal_gradients, check_matches_reference,
                                random_padding, random_qkv)
from efficient_transformers import attention


class TestMemoryCompressed(AttentionContract):
  name = "memory_compressed"
  options = {"compression": 3}
  exact = False  # no fixed pattern over the original keys
  limit_options = {"compression": 1}  # one key per slot: dense
  limit_tolerance = 2e-5
  # O(q_len * kv_len / compression): the paper's method is quadratic / c.
  quadratic_by_design = True

  @hypothesis.given(seed=SEEDS)
  @SETTINGS
  def test_causal_gradients(self, seed):
    # The first c - 1 rows see no whole past slot and get no gradient at all,
    # which the base's check (rows 0, q/2, q-1) would read as a failure.
    shape = self._shapes()[seed % len(self._shapes())]
    q, k, v = random_qkv(seed, *shape)
    offset = shape[2] - shape[1]
    rows = sorted({max(0, 2 - offset), shape[1] // 2, shape[1] - 1})
    check_causal_gradients(self.bound(shape, causal=True), q, k, v, rows=rows)


def explicit_compression(x, mask, c, weights):
  """Straightforward per-slot loop: zero padding, conv or mean of real keys."""
  batch, length = x.shape[:2]
  real = jnp.ones((batch, length), bool) if mask is None else mask
  slots, slot_real = [], []
  for start in range(0, length, c):
    xs = jnp.where(real[:, start:start + c, None, None], x[:, start:start + c], 0.0)
    if weights is None:
      count = jnp.maximum(real[:, start:start + c].sum(1), 1)[:, None, None]
      slots.append(xs.sum(1) / count)
    else:
      slots.append(sum(jnp.einsum("bnh,nhd->bnd", xs[:, t], weights[t])
                       for t in range(xs.shape[1])))
    slot_real.append(real[:, start:start + c].any(1))
  return jnp.stack(slots, 1), jnp.stack(slot_real, 1)


def reference(q, k, v, *, mask=None, causal=False, c=3, w_k=None, w_v=None):
  kc, slot_real = explicit_compression(k, mask, c, w_k)
  vc, _ = explicit_compression(v, mask, c, w_v)
  q_len, kv_len, slots = q.shape[1], k.shape[1], kc.shape[1]
  pairs = None
  if causal:  # slot s is visible once its last real position is in the past
    last = np.minimum(np.arange(slots) * c + c - 1, kv_len - 1)
    pairs = (last[None, :] <= np.arange(q_len)[:, None] + kv_len - q_len)[None]
  return attention.dense(q, kc, vc, mask=slot_real, pair_mask=pairs)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(2, 16, 16, 2, 8), (1, 12, 20, 3, 4)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("conv", [False, True])
def test_matches_dense_on_explicitly_compressed_kv(shape, causal, conv):
  q, k, v = random_qkv(5, *shape)
  mask = random_padding(5, shape[0], shape[2])
  c, heads, head_dim = 3, shape[3], shape[4]
  w_k = w_v = None
  options = {"compression": c}
  if conv:
    rng = np.random.default_rng(0)
    w_k, w_v = (jnp.asarray(rng.normal(size=(c, heads, head_dim, head_dim)) / 3,
                            jnp.float32) for _ in range(2))
    options.update(compress_k=w_k, compress_v=w_v)
  fn = jax.jit(functools.partial(attention.memory_compressed, **options),
               static_argnames="causal")
  ref = jax.jit(functools.partial(reference, c=c, w_k=w_k, w_v=w_v),
                static_argnames="causal")
  for m in (None, mask):
    check_matches_reference(fn, ref, q, k, v, m, causal, 5, 2e-5, 2e-5)


def test_early_causal_rows_are_zero():
  q, k, v = random_qkv(0, 1, 10, 10, 1, 4)
  out = attention.memory_compressed(q, k, v, causal=True, compression=4)
  np.testing.assert_array_equal(np.asarray(out[:, :3]), 0.0)
  assert np.abs(np.asarray(out[:, 3:])).min() > 0


def test_rejects_bad_weights():
  q, k, v = random_qkv(0, 1, 9, 9, 2, 4)
  with pytest.raises(ValueError, match="both"):
    attention.memory_compressed(q, k, v, compress_k=jnp.zeros((3, 2, 4, 4)))
  with pytest.raises(ValueError, match="compress_k must be"):
    attention.memory_compressed(q, k, v, compress_k=jnp.zeros((3, 4, 4)),
                                compress_v=jnp.zeros((3, 4, 4)))

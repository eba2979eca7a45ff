"""`reformer` (LSH attention) in the shared contract; its exact limit (one
bucket, one chunk) against dense shared-QK attention with the self-mask rule;
against a float64 transcription of trax's LSHSelfAttention given the same
buckets (logit scale, rounds sorted as one sequence); rng behaviour;
self-mask, padding and fully masked rows."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.attention.attention_contract import (AttentionContract, check_causal_gradients,
                                check_matches_reference, random_padding,
                                random_qkv)
from efficient_transformers import attention
from efficient_transformers.attention import masks
from efficient_transformers.attention.reformer import SELF_VALUE, lsh_buckets
from efficient_transformers.attention.softmax_partials import pad_axis


@functools.partial(jax.jit, static_argnames="causal")
def dense_shared_qk(q, k, v, *, mask=None, causal=False):
  """Quadratic reference: softmax(q . k^) v over unit keys k^ (trax's logits,
  no 1/sqrt(d)), where a query sees its own key only when no other key is
  allowed."""
  k_hat = k / jnp.linalg.norm(k, axis=-1, keepdims=True)
  logits = jnp.einsum("bqnh,bknh->bnqk", q, k_hat)
  batch, length = q.shape[:2]
  real = jnp.ones((batch, length), bool) if mask is None else mask
  real = real[:, None, None, :]
  eye = jnp.eye(length, dtype=bool)
  allowed = real & ~eye
  if causal:
    allowed &= jnp.asarray(masks.causal_pairs(length, length))
  self_ok = real & eye
  logits = jnp.where(allowed, logits, jnp.where(self_ok, SELF_VALUE, masks.MASK_VALUE))
  attendable = allowed | self_ok
  weights = jnp.where(attendable, jax.nn.softmax(logits, axis=-1), 0.0)
  return jnp.einsum("bnqk,bknh->bqnh", weights, v)


def module_buckets(k, rng, num_hashes, num_buckets, chunk):
  """int [B, N, R, T]: the buckets reformer() computes (the same float32 ops
  on the same unit keys), with padded keys not yet moved to their bucket."""
  length = k.shape[1]
  padded = -(-length // chunk) * chunk
  k_bnth = pad_axis(jnp.swapaxes(k, 1, 2).astype(jnp.float32), 2, padded)
  sq_norm = jnp.sum(k_bnth * k_bnth, axis=-1, keepdims=True)
  k_bnth = k_bnth * jax.lax.rsqrt(jnp.maximum(sq_norm, 1e-12))
  return np.asarray(lsh_buckets(k_bnth, jax.random.key(rng), num_hashes,
                                num_buckets))[..., :length]


def trax_lsh_float64(q, k, v, buckets, *, num_buckets, chunk, mask=None,
                     causal=False):
  """trax LSHSelfAttention.forward_unbatched (trax/layers/research/
  efficient_attention.py), per batch element and head, in float64 jnp, given
  the buckets [B, N, R, T] (ints, numpy). Written from trax's steps: padded
  keys in an extra bucket; round r's buckets offset by r * (buckets + 1);
  all rounds sorted as ONE sequence by bucket * T + position and cut into
  chunks; each chunk attends to itself and the previous chunk of that
  sequence (look_adjacent, wrapping around); keys length_normalized (with its
  1e-6) divided by sqrt(d), logits q . k^ with no other scale; -1e9 for later
  (causal) and padded keys, -1e5 for the query's own position; rounds
  combined by their log-sum-exps. Needs T * R a multiple of chunk."""
  batch, length, heads, head_dim = q.shape
  num_hashes = buckets.shape[2]
  real = np.ones((batch, length), bool) if mask is None else np.asarray(mask)
  per_round = num_buckets + (0 if mask is None else 1)
  rows = []
  for b in range(batch):
    heads_out = []
    for n in range(heads):
      bk = np.where(real[b][None], buckets[b, n], num_buckets)
      bk = bk + per_round * np.arange(num_hashes)[:, None]
      ticker = np.arange(num_hashes * length)
      order = np.argsort(length * bk.reshape(-1) + ticker % length, kind="stable")
      undo = np.argsort(order, kind="stable")
      st = order % length
      kn = k[b, :, n] / jnp.sqrt(jnp.mean(k[b, :, n] ** 2, -1, keepdims=True) + 1e-6)
      kn = kn / np.sqrt(head_dim)
      sq, sk, sv = q[b, st, n], kn[st], v[b, st, n]
      info = st + 1
      kv_info = np.where(real[b][st], info, -info)
      num_chunks = num_hashes * length // chunk
      chunks = lambda x: x.reshape((num_chunks, chunk) + x.shape[1:])
      adjacent = lambda x: np.concatenate([x, np.roll(x, 1, axis=0)], axis=1)
      cq, ck, cv = chunks(sq), chunks(sk), chunks(sv)
      ck = jnp.concatenate([ck, jnp.roll(ck, 1, axis=0)], axis=1)
      cv = jnp.concatenate([cv, jnp.roll(cv, 1, axis=0)], axis=1)
      q_info = chunks(info)[:, :, None]
      k_info = adjacent(chunks(kv_info))[:, None, :]
      dots = jnp.einsum("cqh,ckh->cqk", cq, ck)
      if causal:
        dots = dots - 1e9 * (q_info < k_info)
      dots = dots - 1e5 * (q_info == k_info)
      if mask is not None:
        dots = dots - 1e9 * (k_info < 0)
      lse = jax.scipy.special.logsumexp(dots, axis=-1, keepdims=True)
      out = jnp.einsum("cqk,ckh->cqh", jnp.exp(dots - lse), cv)
      out = out.reshape(-1, head_dim)[undo].reshape(num_hashes, length, head_dim)
      lse = lse.reshape(-1)[undo].reshape(num_hashes, length, 1)
      weights = jnp.exp(lse - jax.scipy.special.logsumexp(lse, axis=0, keepdims=True))
      heads_out.append(jnp.sum(out * weights, axis=0))
    rows.append(jnp.stack(heads_out, axis=1))
  return jnp.stack(rows)


def attended_pairs(buckets, *, num_buckets, chunk, mask, causal, across_rounds):
  """bool [B, N, T, T]: the (query, key) pairs attended in some round, from
  the buckets alone (no values): the previous chunk of a round's first chunk
  is the previous round's last (across_rounds, trax) or its own round's last;
  a query's own key only when it has nothing else in any round (a round
  where it found only itself gets weight 0 next to one where it found
  others)."""
  batch, heads, num_hashes, length = buckets.shape
  real = np.asarray(mask)
  num_chunks = length // chunk
  pairs = np.zeros((batch, heads, length, length), bool)
  for b in range(batch):
    for n in range(heads):
      orders = [np.argsort(np.where(real[b], buckets[b, n, r], num_buckets) * length
                           + np.arange(length), kind="stable")
                for r in range(num_hashes)]
      chunk_list = [(r, order[c * chunk:(c + 1) * chunk])
                    for r, order in enumerate(orders) for c in range(num_chunks)]
      for index, (r, members) in enumerate(chunk_list):
        if across_rounds:
          previous = chunk_list[index - 1][1]
        else:
          c = index - r * num_chunks
          previous = chunk_list[r * num_chunks + (c - 1) % num_chunks][1]
        keys = np.concatenate([members, previous])
        for i in members:
          ok = real[b, keys] & (keys != i)
          if causal:
            ok &= keys <= i
          pairs[b, n, i, keys[ok]] = True
      alone = ~pairs[b, n].any(-1) & real[b]
      pairs[b, n, alone, alone.nonzero()[0]] = True
  return pairs


class TestReformer(AttentionContract):
  name = "reformer"
  options = {"num_hashes": 2, "num_buckets": 4, "chunk_size": 4,
             "rng": jax.random.key(0)}
  exact = False
  cross_lengths = False  # queries and keys share the sort
  limit_options = {"num_buckets": 1, "chunk_size": 64}
  # One shape (each new shape recompiles): 37 is not a multiple of chunk_size.
  shapes = [(2, 37, 37, 2, 4)]

  def test_converges_to_dense(self):
    """One bucket and one chunk spanning the sequence: exactly dense shared-QK
    attention with the self-mask rule (outputs and gradients), for one and
    several rounds, with and without padding and causal masking."""
    shape = self._shapes()[0]
    cases = [(shape, 1, False, False), (shape, 3, True, True)]
    for shape, num_hashes, causal, padded in cases:
      q, k, v = random_qkv(4, *shape)
      mask = random_padding(4, shape[0], shape[2]) if padded else None
      fn = self.bound(shape, options=dict(self.limit_options, num_hashes=num_hashes))
      check_matches_reference(fn, dense_shared_qk, q, k, v, mask, causal, 4,
                              2e-5, 2e-5)

  def test_one_bucket_many_chunks_is_local_in_sorted_order(self):
    """One bucket: the sort is the identity, so chunks are contiguous blocks
    attending to themselves and the previous block (with wrap-around)."""
    q, k, v = random_qkv(5, 1, 12, 12, 1, 4)
    out = attention.get("reformer")(q, k, v, num_buckets=1, chunk_size=4)
    block = np.arange(12) // 4
    pairs = (block[:, None] == block[None]) | (block[:, None] == (block[None] + 1) % 3)
    k_hat = k / jnp.linalg.norm(k, axis=-1, keepdims=True)
    logits = jnp.einsum("bqnh,bknh->bnqk", q, k_hat)
    logits = jnp.where(pairs & ~np.eye(12, dtype=bool), logits, masks.MASK_VALUE)
    ref = jnp.einsum("bnqk,bknh->bqnh", jax.nn.softmax(logits, -1), v)
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=2e-5)

  def test_same_rng_same_output_different_rng_different_buckets(self):
    q, k, v = random_qkv(6, 1, 32, 32, 2, 8)
    fn = functools.partial(attention.get("reformer"), num_hashes=2, num_buckets=8,
                           chunk_size=8)
    a = fn(q, k, v, rng=jax.random.key(1))
    np.testing.assert_array_equal(a, fn(q, k, v, rng=jax.random.key(1)))
    np.testing.assert_array_equal(a, fn(q, k, v, rng=1))  # int seed = key(seed)
    assert not np.allclose(a, fn(q, k, v, rng=jax.random.key(2)))
    k_bnth = jnp.swapaxes(k, 1, 2)
    b1 = lsh_buckets(k_bnth, jax.random.key(1), 2, 8)
    b2 = lsh_buckets(k_bnth, jax.random.key(2), 2, 8)
    assert b1.shape == (1, 2, 2, 32) and int(b1.min()) >= 0 and int(b1.max()) < 8
    assert np.mean(np.asarray(b1) != np.asarray(b2)) > 0.3
    # The hash of a vector ignores its length: h(a x) = h(x) for a > 0.
    np.testing.assert_array_equal(b1, lsh_buckets(3.5 * k_bnth, jax.random.key(1), 2, 8))

  def test_needs_rng_and_valid_buckets(self):
    q, k, v = random_qkv(7, 1, 16, 16, 1, 4)
    fn = attention.get("reformer")
    with pytest.raises(ValueError, match="rng"):
      fn(q, k, v, num_buckets=4, chunk_size=4)
    with pytest.raises(ValueError, match="even"):
      fn(q, k, v, num_buckets=3, chunk_size=4, rng=0)
    with pytest.raises(ValueError, match="self-attention"):
      fn(q, k[:, :8], v[:, :8], rng=0)

  def test_self_only_when_nothing_else(self):
    """Causal row 0 sees only itself: its output is its own value. A query
    whose only real key is itself returns that value; every other query never
    attends to itself."""
    q, k, v = random_qkv(8, 1, 16, 16, 2, 4)
    fn = functools.partial(attention.get("reformer"), num_buckets=4, chunk_size=4,
                           num_hashes=2, rng=3)
    np.testing.assert_allclose(fn(q, k, v, causal=True)[:, 0], v[:, 0], rtol=1e-6)
    only_first = jnp.zeros((1, 16), bool).at[0, 0].set(True)
    out = fn(q, k, v, mask=only_first)
    np.testing.assert_allclose(out[:, 0], v[:, 0], rtol=1e-6)
    # Query 5 has other keys to attend: its own (huge) value gets weight 0.
    v2 = v.at[:, 5].set(1e3)
    out2 = fn(q, k, v2)
    assert float(jnp.abs(out2[:, 5]).max()) < 1e2

  def test_fully_masked_rows_are_zeros(self):
    q, k, v = random_qkv(9, 2, 37, 37, 3, 4)
    mask = jnp.ones((2, 37), bool).at[0].set(False)
    out = attention.get("reformer")(q, k, v, mask=mask, causal=True,
                                    **{**self.options, "rng": 0})
    np.testing.assert_array_equal(np.asarray(out[0]), 0.0)
    assert bool(jnp.all(jnp.isfinite(out)))

  def test_no_causal_leak_with_many_chunks_and_rounds(self):
    q, k, v = random_qkv(10, 1, 48, 48, 2, 8)
    fn = functools.partial(attention.get("reformer"), num_buckets=6, chunk_size=4,
                           num_hashes=3, rng=5)
    check_causal_gradients(fn, q, k, v, rows=[0, 1, 7, 23, 47])


@pytest.mark.slow
@pytest.mark.parametrize("num_hashes,causal,padded", [
    (1, False, False), (1, True, True), (2, False, True), (3, True, False),
    (3, False, True)])
def test_equals_trax_lsh_self_attention(num_hashes, causal, padded):
  """Given the same buckets, reformer() is trax's LSHSelfAttention (float64
  transcription above) at every real query: logits q . k^ without
  1/sqrt(d), rounds sorted as one sequence. Outputs and gradients. Measured
  max abs error over these cases: 2.9e-6 (outputs, trax's 1e-6 inside
  length_normalized included), 8.3e-6 (gradients, |grad| up to 4.5)."""
  batch, length, heads, head_dim, chunk, num_buckets = 2, 24, 2, 8, 4, 4
  q, k, v = random_qkv(20 + num_hashes, batch, length, length, heads, head_dim)
  mask = random_padding(20, batch, length) if padded else None
  real = np.ones((batch, length), bool) if mask is None else np.asarray(mask)
  options = dict(num_hashes=num_hashes, num_buckets=num_buckets,
                 chunk_size=chunk, rng=7)
  buckets = module_buckets(k, 7, num_hashes, num_buckets, chunk)
  cot = np.random.default_rng(1).normal(size=q.shape) * real[:, :, None, None]
  fn = functools.partial(attention.get("reformer"), mask=mask, causal=causal,
                         **options)
  out, pull = jax.vjp(fn, q, k, v)
  grads = pull(jnp.asarray(cot, jnp.float32))
  with jax.enable_x64(True):
    ref = functools.partial(trax_lsh_float64, buckets=buckets, mask=mask,
                            causal=causal, num_buckets=num_buckets, chunk=chunk)
    ref_out, ref_pull = jax.vjp(
        ref, *(jnp.asarray(np.asarray(x), jnp.float64) for x in (q, k, v)))
    ref_grads = [np.asarray(g) for g in ref_pull(jnp.asarray(cot, jnp.float64))]
    ref_out = np.asarray(ref_out)
  np.testing.assert_allclose(np.asarray(out)[real], ref_out[real],
                             rtol=1e-5, atol=2e-6)
  for name, a, b in zip("qkv", grads, ref_grads):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5, err_msg=f"d{name}")


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True])
def test_first_chunk_of_a_round_looks_back_into_the_previous_round(causal):
  """The support of the attention (d out_i / d v_j != 0) is trax's: the
  rounds' sorted chunks form one sequence, so round r's first chunk attends
  to round r - 1's last chunk (and round 1's first to the last round's last),
  not to its own round's last chunk. Independent of the logit scale."""
  batch, length, heads, head_dim, chunk, num_buckets = 1, 16, 1, 4, 4, 4
  q, k, v = random_qkv(30, batch, length, length, heads, head_dim)
  mask = jnp.ones((batch, length), bool).at[0, 15:].set(False)
  real = np.asarray(mask[0])
  discriminating = 0
  for rng in (3, 4, 5):
    buckets = module_buckets(k, rng, 3, num_buckets, chunk)
    fn = functools.partial(attention.get("reformer"), mask=mask, causal=causal,
                           num_hashes=3, num_buckets=num_buckets,
                           chunk_size=chunk, rng=rng)
    jac = jax.jacfwd(lambda v: fn(q, k, v))(v)  # [B, T, N, H, B, T, N, H]
    support = np.asarray(jac[0, :, 0, 0, 0, :, 0, 0] != 0)
    common = dict(num_buckets=num_buckets, chunk=chunk, mask=mask, causal=causal)
    trax_rule = attended_pairs(buckets, across_rounds=True, **common)[0, 0]
    own_round = attended_pairs(buckets, across_rounds=False, **common)[0, 0]
    discriminating += bool((trax_rule != own_round)[real].any())
    np.testing.assert_array_equal(support[real], trax_rule[real])
  assert discriminating  # the two rules differ on some of these draws

"""Reformer LSH attention: attend within buckets of a random-rotation hash.

Paper: Kitaev, Kaiser, Levskaya 2020, "Reformer: The Efficient Transformer"
(Sec. 2, LSH attention).
Family: learned patterns (the support is chosen from the content by hashing),
Tay et al.'s survey.
Reference: trax `LSHSelfAttention` (trax/layers/research/efficient_attention.py,
  the authors' code): given the same hash buckets, the output equals a float64
  transcription of its `forward_unbatched` to float32 rounding, for one and
  several rounds, causal or not, with padding (tests, docs/fidelity.md).
Exact: no. Exact in one limit: with `num_buckets=1` and `chunk_size >=` the
  length (one chunk), it is dense attention of q over unit-normalised keys,
  logits q . k^, with the self-mask rule below
  (tests/attention/test_reformer.py).
Causal: yes, as in the paper and trax: pairs are masked by original
  positions (carried through the sort), so no query attends to, or gets
  gradient from, a later key. But which earlier keys share a query's chunk
  depends on every position's hash, later ones included (they move chunk
  boundaries of the sorted sequence): with num_buckets > 1 a later token can
  change an earlier output through that discrete choice (measured: a causal
  LM's earlier logits move when a later token changes; not with one bucket).
Self-attention only: q_len must equal kv_len (queries and keys share the sort).

Per round r = 1..num_hashes, for each batch element and head:
  1. keys are normalised to unit length, k^ = k / |k| (the paper's shared-QK
     attention: the NNX layer passes k = q, `shared_qk`, models/attention_layer.py);
  2. hash h(k^) = argmax([k^ R_r ; -k^ R_r]) with R_r ~ N(0, 1) of shape
     [head_dim, num_buckets / 2], a fresh rotation per round and per head,
     drawn from `rng`; padded keys go to an extra last bucket;
  3. positions are sorted by (bucket, position) (argsort and gather; undone by
     the inverse permutation) and cut into chunks of `chunk_size`;
  4. each chunk's queries attend to the keys of their own chunk and of the
     previous one, with logits q . k^ (no 1/sqrt(head_dim): see "Scale"),
     masked by padding and, if causal, by position. As in trax, the sorted
     rounds form one sequence of num_hashes * num_chunks chunks: the first
     chunk of round r looks back into the last chunk of round r - 1, and the
     first chunk of round 1 wraps around to the last chunk of the last round
     (not to the last chunk of its own round);
  5. self-mask: a query attends to its own key only when nothing else is
     available (its logit is SELF_VALUE, far below any real logit and far
     above MASK_VALUE, so softmax gives it weight exactly 0 or 1).
The rounds are combined by their log-sum-exp weights: out = sum_r
softmax_r(lse_r) o_r, so a round where a query found only itself gets weight 0
next to a round where it found other keys. Pairs found by several rounds are
counted once per round (no duplicate-attention correction, as trax's
LSHSelfAttention).

Scale: logits q . k^ with unit keys and no 1/sqrt(head_dim), as trax (its
`attend` divides length_normalized(k) = sqrt(d) k / |k| by sqrt(d), i.e. the
unit key, and applies no other scale). The paper defines attention with
1/sqrt(d_k) (its Eq. 1) and writes LSH attention without it, saying it omits
the scale for clarity; it gives no separate rule for shared-QK attention with
unit keys. The authors' code, which the paper's experiments ran, applies none,
and we follow it.
(Before this choice the logits here were q . k^ / sqrt(head_dim): a sqrt(d)
flatter attention. LRA's Reformer multiplies by sqrt(d): a bug, see the
reference notes.) Remaining differences to trax: unit keys k / |k| here,
where trax's length_normalized adds 1e-6 to the mean square (a relative
change of ~1e-6 / mean(k^2)); the self logit is SELF_VALUE here, q . k^ - 1e5
in trax (the same weights: exactly 0 or 1 in float32); outputs at padded
query positions differ (trax lets them attend to padded keys; here they see
only real ones); no hierarchical hashing (below); the rotations are drawn
from `rng`, not from trax's per-head state.

Time: O(R * L * (log L + chunk_size * head_dim + num_buckets * head_dim / 2))
  for R = num_hashes rounds and L = length.
Memory: O(R * L * (chunk_size + head_dim + num_buckets / 2)) per batch element
  and head: the [chunk, 2 * chunk] logits of every chunk and the rotated keys;
  never [L, L].

Options:
  num_hashes: rounds of hashing R (default 1, as trax and LRA).
  num_buckets: 1 or an even number (default None = 2 * max(1, L // chunk_size),
    trax's rule).
  chunk_size: sorted positions per chunk (default 64).
  rng: jax PRNG key or int seed of the rotations; required when
    num_buckets > 1 and there is more than one chunk. Same rng, same output.
Limits: no factorised (hierarchical) hashing for very many buckets: rotations
  cost O(L * num_buckets / 2) per round and head, so keep num_buckets well
  below L.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers.attention import masks
from efficient_transformers.attention.softmax_partials import (check_int,
                                                               check_same_length,
                                                               key_ok, pad_axis)
from efficient_transformers.attention.shapes import check_qkv

# The logit of a query's own key: exp(SELF_VALUE - real logit) == 0 and
# exp(MASK_VALUE - SELF_VALUE) == 0 in float32, so the self is attended with
# weight exactly 1 when it is the only allowed key, else exactly 0.
SELF_VALUE = 0.5 * masks.MASK_VALUE


def _as_key(rng):
  if isinstance(rng, (int, np.integer)):
    return jax.random.key(rng)
  return rng


def resolve_num_buckets(num_buckets, length: int, chunk_size: int) -> int:
  """The number of buckets: trax's default 2 * max(1, L // chunk), or checked."""
  if num_buckets is None:
    return 2 * max(1, length // chunk_size)
  num_buckets = check_int("num_buckets", num_buckets, 1)
  if num_buckets > 1 and num_buckets % 2:
    raise ValueError(f"num_buckets must be 1 or even (hash = argmax([xR; -xR])),"
                     f" got {num_buckets}")
  return num_buckets


def lsh_buckets(k_BxNxTxH, rng, num_hashes: int, num_buckets: int) -> jax.Array:
  """int32 [B, N, num_hashes, T]: bucket of each key in each round.

  h(x) = argmax([xR; -xR]) with R ~ N(0, 1) [N, H, num_hashes, num_buckets/2]
  (one rotation per head and round). Invariant to positive scaling of x.
  """
  batch, heads, length, head_dim = k_BxNxTxH.shape
  if num_buckets == 1:
    return jnp.zeros((batch, heads, num_hashes, length), jnp.int32)
  if rng is None:
    raise ValueError("reformer with num_buckets > 1 needs rng= (a jax PRNG key"
                     " or int seed) for its random rotations")
  rotations_NxHxRxK = jax.random.normal(
      _as_key(rng), (heads, head_dim, num_hashes, num_buckets // 2), jnp.float32)
  rotated_BxNxRxTxK = jnp.einsum(
      "bnth,nhrk->bnrtk", jax.lax.stop_gradient(k_BxNxTxH).astype(jnp.float32),
      rotations_NxHxRxK)
  rotated_BxNxRxTxK = jnp.concatenate([rotated_BxNxRxTxK, -rotated_BxNxRxTxK], -1)
  return jnp.argmax(rotated_BxNxRxTxK, axis=-1).astype(jnp.int32)


def _gather(x_BxNxTx_, perm_BxNxRxT):
  """x [B, N, T, ...] -> [B, N, R, T, ...]: x taken in each round's order."""
  idx = perm_BxNxRxT.reshape(perm_BxNxRxT.shape + (1,) * (x_BxNxTx_.ndim - 3))
  return jnp.take_along_axis(x_BxNxTx_[:, :, None], idx, axis=3)


def _with_previous_chunk(x_BxNxRxCxc_):
  """Keys of a chunk: its own, then the previous chunk's in the sequence of
  all rounds' chunks (trax's order: round r's first chunk looks back into
  round r - 1's last; round 1's first wraps around to the last round's last)."""
  shape = x_BxNxRxCxc_.shape
  if shape[3] == 1:
    # One chunk per round holds every position and one bucket (reformer()
    # sets num_buckets = 1 then), so every round's chunk has the same keys:
    # the previous chunk would add each key twice, which changes no softmax.
    return x_BxNxRxCxc_
  all_chunks = x_BxNxRxCxc_.reshape(shape[:2] + (shape[2] * shape[3],) + shape[4:])
  previous = jnp.roll(all_chunks, 1, axis=2).reshape(shape)
  return jnp.concatenate([x_BxNxRxCxc_, previous], axis=4)


def reformer(q, k, v, *, mask=None, causal=False, num_hashes=1, num_buckets=None,
             chunk_size=64, rng=None):
  """LSH attention (module docstring), BTNH layout; self-attention only.

  Args:
    q, k, v: [batch, length, heads, head_dim]; keys are unit-normalised here.
    mask: optional bool [batch, length], True = real key.
    causal: query i sees keys j <= i.
    num_hashes, num_buckets, chunk_size, rng: module docstring.

  Returns:
    [batch, length, heads, head_dim] in q's dtype.
  """
  check_qkv(q, k, v)
  length = q.shape[1]
  check_same_length("reformer", length, k.shape[1])
  num_hashes = check_int("num_hashes", num_hashes, 1)
  chunk = min(check_int("chunk_size", chunk_size, 1), length)
  num_buckets = resolve_num_buckets(num_buckets, length, chunk)
  if chunk == length:
    num_buckets = 1  # one chunk holds every key: the hash changes nothing
  if num_buckets > 1 and rng is None:
    raise ValueError("reformer with num_buckets > 1 needs rng= (a jax PRNG key"
                     " or int seed) for its random rotations")
  rng = None if num_buckets == 1 else _as_key(rng)
  return _lsh_attention(q, k, v, mask, rng, causal=causal, num_hashes=num_hashes,
                        num_buckets=num_buckets, chunk=chunk)


@functools.partial(jax.jit, static_argnames=("causal", "num_hashes",
                                             "num_buckets", "chunk"))
def _lsh_attention(q, k, v, mask, rng, *, causal, num_hashes, num_buckets, chunk):
  """reformer() after its checks; jitted so that eager calls compile once."""
  batch, length, heads, _ = q.shape
  num_chunks = -(-length // chunk)
  padded = num_chunks * chunk
  to_bnth = lambda x: pad_axis(jnp.swapaxes(x, 1, 2).astype(jnp.float32), 2, padded)
  q_BxNxTxH, k_BxNxTxH, v_BxNxTxH = to_bnth(q), to_bnth(k), to_bnth(v)
  sq_norm = jnp.sum(k_BxNxTxH * k_BxNxTxH, axis=-1, keepdims=True)
  k_BxNxTxH = k_BxNxTxH * jax.lax.rsqrt(jnp.maximum(sq_norm, 1e-12))
  ok_BxT = pad_axis(key_ok(mask, batch, length)[:, 0], 1, padded, False)

  # Sort by (bucket, position); padded keys in an extra last bucket keep the
  # order of the real ones independent of their values.
  buckets = lsh_buckets(k_BxNxTxH, rng, num_hashes, num_buckets)
  buckets = jnp.where(ok_BxT[:, None, None, :], buckets, num_buckets)
  positions_T = jnp.arange(padded, dtype=jnp.int32)
  perm_BxNxRxT = jnp.argsort(buckets * padded + positions_T, axis=-1)
  undo_BxNxRxT = jnp.argsort(perm_BxNxRxT, axis=-1)

  def chunks(x):  # [B, N, R, T, ...] -> [B, N, R, C, c, ...]
    return x.reshape(x.shape[:3] + (num_chunks, chunk) + x.shape[4:])

  ok_BxNxT = jnp.broadcast_to(ok_BxT[:, None], (batch, heads, padded))
  pos_BxNxT = jnp.broadcast_to(positions_T, (batch, heads, padded))
  sq = chunks(_gather(q_BxNxTxH, perm_BxNxRxT))
  sk, sv, spos, sok = (_with_previous_chunk(chunks(_gather(x, perm_BxNxRxT)))
                       for x in (k_BxNxTxH, v_BxNxTxH, pos_BxNxT, ok_BxNxT))
  qpos = chunks(perm_BxNxRxT)[..., :, None]  # the sorted queries' positions
  kpos = spos[..., None, :]

  logits = jnp.einsum("...qh,...kh->...qk", sq, sk)  # unit keys, no 1/sqrt(d)
  is_self = kpos == qpos
  self_ok = is_self & sok[..., None, :]
  allowed = sok[..., None, :] & ~is_self
  if causal:
    allowed &= kpos <= qpos
  logits = jnp.where(allowed, logits,
                     jnp.where(self_ok, SELF_VALUE, masks.MASK_VALUE))
  attendable = allowed | self_ok
  row_max = jax.lax.stop_gradient(logits.max(-1))
  weights = jnp.where(attendable, jnp.exp(logits - row_max[..., None]), 0.0)
  row_sum = weights.sum(-1)
  nonempty = row_sum > 0
  safe_sum = jnp.where(nonempty, row_sum, 1.0)
  out_sorted = jnp.einsum("...qk,...kh->...qh", weights, sv) / safe_sum[..., None]
  lse_sorted = jnp.where(nonempty, row_max + jnp.log(safe_sum), masks.MASK_VALUE)

  # Undo the sort, then weight the rounds by their log-sum-exp.
  unchunk = lambda x: x.reshape(x.shape[:3] + (padded,) + x.shape[5:])
  undo = lambda x: jnp.take_along_axis(
      x, undo_BxNxRxT.reshape(undo_BxNxRxT.shape + (1,) * (x.ndim - 4)), axis=3)
  out_BxNxRxTxH = undo(unchunk(out_sorted))
  if num_hashes == 1:
    out_BxNxTxH = out_BxNxRxTxH[:, :, 0]
  else:
    round_weights = jax.nn.softmax(undo(unchunk(lse_sorted)), axis=2)
    out_BxNxTxH = jnp.sum(out_BxNxRxTxH * round_weights[..., None], axis=2)
  return jnp.swapaxes(out_BxNxTxH[:, :, :length], 1, 2).astype(q.dtype)

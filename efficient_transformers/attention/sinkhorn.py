"""Sparse Sinkhorn attention: local blocks plus one softly sorted block.

Paper: Tay, Bahri, Yang, Metzler, Juan 2020, "Sparse Sinkhorn Attention"
  (ICML; arXiv 2002.11296).
Family: learnable patterns (Tay et al.'s survey), sorting-based.

Algorithm (per batch element and head), with nb = ceil(L / block_size) blocks:
  1. The sort matrix P [nb, nb] is the Gumbel-Sinkhorn relaxation of a
     permutation (`sort_matrix`): r = (sort_logits + g) / temperature, with
     Gumbel noise g drawn from `rng` (no noise when rng is None, e.g. at
     evaluation), then `num_iters` rounds of row and column normalisation in
     log space, P = exp(r). The sort logits come from a learned sorting
     network over block summaries, owned by the attention layer
     (models/sinkhorn_sorter.py).
  2. Sorted keys and values: block u of the sorted sequence is
     sum_v P[u, v] * block v (each block kept whole, position by position).
     Padded keys enter these sums as zeros, and blocks with no real key are
     removed from the sort (their rows and columns of P are zero: they are
     neither sorted in nor given a sorted block).
  3. Each query block u attends, with one softmax (scale 1/sqrt(head_dim)),
     to the 2 * block_size keys [sorted block u ; its own block u]. A sorted
     key is masked when no real key contributed to it.
  SortCut (`sortcut_k` = n_s): every query attends to the first n_s sorted
  blocks only (n_s * block_size keys), no local block. Encoder only.
  Causal: the sort sees only strictly earlier blocks (P[u, v] = 0 for v >= u),
  so the sorted block is wholly in the past, and the balancing is causal (the
  paper's causal Sinkhorn balancing): the column normalisation of row u runs
  over rows <= u only, so P[u] depends on the sort logits of blocks <= u
  alone. The own block is attended with the causal mask. Block 0 has no
  sorted block. (The sorting network must also see only the past:
  models/sinkhorn_sorter.py summarises block u by the running mean up to its
  first token.)

Unlike LRA's implementation (long-range-arena/sinkhorn_attention.py, see
shared/reference/models.md section 20), block u's sorted keys are the P-weighted
mixture of blocks, not the sum of all blocks, and P is a Sinkhorn balancing.

Complexity: time O(L * block_size * d + nb^2 * block_size * d) (the survey's
O(B^2) per block pair plus the sort); memory O(L * d + L * block_size + nb^2).
SortCut: O(L * n_s * block_size * d) time, O(L * n_s * block_size) memory.
Exact: no. With one block (block_size >= L) it is dense attention (causal
  too); with P the identity it is local block attention (block_size).
Causal: yes; SortCut: no (ValueError). Self-attention only (q_len == kv_len).

Options:
  block_size: tokens per block (required).
  sort_logits: float [batch, nb, nb] or [batch, heads, nb, nb] (required;
    a batch or heads axis of 1 broadcasts): row u scores which block to sort
    into position u.
  temperature: 0.75 (Sinkhorn temperature, as in sinkhorn-transformer).
  num_iters: 7 (Sinkhorn normalisation rounds).
  sortcut_k: None, or the number n_s of sorted blocks every query attends to.
  rng: optional jax.random key for the Gumbel noise (training only).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers.attention import blocked, masks
from efficient_transformers.attention import softmax_partials as sp

DEFAULT_TEMPERATURE = 0.75
DEFAULT_NUM_ITERS = 7


def sort_matrix(sort_logits, *, temperature=DEFAULT_TEMPERATURE,
                num_iters=DEFAULT_NUM_ITERS, allowed=None, causal=False, rng=None):
  """Gumbel-Sinkhorn: a doubly stochastic [..., nb, nb] float32 matrix.

  Args:
    sort_logits: [..., nb, nb].
    temperature: > 0; lower is closer to a permutation.
    num_iters: rounds of (row, column) normalisation in log space.
    allowed: optional bool broadcastable to the logits; other entries are 0
      and normalisation runs over the allowed ones only (causal balancing).
      Rows or columns with nothing allowed stay zero.
    causal: causal balancing: row u's column normalisation runs over rows
      <= u only (a cumulative log-sum-exp), so row u of the result depends on
      rows <= u of the logits alone. Not doubly stochastic in general.
    rng: optional key for Gumbel noise added to the logits.
  """
  if not float(temperature) > 0:
    raise ValueError(f"temperature must be > 0, got {temperature!r}")
  num_iters = sp.check_int("num_iters", num_iters, 0)
  r = jnp.asarray(sort_logits, jnp.float32)
  if rng is not None:
    r = r + jax.random.gumbel(rng, r.shape, jnp.float32)
  r = r / temperature
  # Masked entries hold MASK_VALUE (exp underflows to exactly 0); they are
  # reset after every normalisation, so an empty row or column cannot turn
  # finite (its log-sum-exp would be MASK_VALUE + log(nb)).
  remask = (lambda x: x) if allowed is None else (
      lambda x: jnp.where(allowed, x, masks.MASK_VALUE))
  r = remask(r)
  for _ in range(num_iters):
    r = remask(r - jax.nn.logsumexp(r, axis=-1, keepdims=True))
    if causal:
      r = remask(r - jax.lax.cumlogsumexp(r, axis=r.ndim - 2))
    else:
      r = remask(r - jax.nn.logsumexp(r, axis=-2, keepdims=True))
  p = jnp.exp(r)
  return p if allowed is None else jnp.where(allowed, p, 0.0)


def sinkhorn(q, k, v, *, mask=None, causal=False, block_size=None,
             sort_logits=None, temperature=DEFAULT_TEMPERATURE,
             num_iters=DEFAULT_NUM_ITERS, sortcut_k=None, rng=None):
  """Sparse Sinkhorn attention, BTNH layout (module docstring).

  Args:
    q, k, v: [batch, length, heads, head_dim].
    mask: optional bool [batch, length], True = real key.
    causal: query i sees keys j <= i.
    block_size, sort_logits, temperature, num_iters, sortcut_k, rng: see the
      module docstring.

  Returns:
    [batch, length, heads, head_dim] in q's dtype.
  """
  q_BxNxTxH, k_BxNxTxH, v_BxNxTxH, key_ok_Bx1xT = sp.self_attention_inputs(
      "sinkhorn", q, k, v, mask)
  if block_size is None or sort_logits is None:
    raise ValueError("sinkhorn needs `block_size` and `sort_logits` [batch,"
                     " (heads,) nb, nb] (the attention layer's SinkhornSorter"
                     " passes the logits)")
  block = sp.check_int("block_size", block_size, 1)
  batch, length, heads, _ = q.shape
  num_blocks = -(-length // block)
  logits = jnp.asarray(sort_logits)
  if logits.ndim == 3:
    logits = logits[:, None]
  expected = (batch, heads, num_blocks, num_blocks)
  if logits.ndim != 4 or logits.shape[-2:] != expected[-2:] \
      or logits.shape[0] not in (1, batch) or logits.shape[1] not in (1, heads):
    raise ValueError(
        f"sort_logits must be [batch or 1, nb, nb] or [batch or 1, heads or 1, nb, nb] with"
        f" batch={batch}, heads={heads}, nb=ceil({length}/{block})={num_blocks};"
        f" got {jnp.shape(sort_logits)}")
  if sortcut_k is not None:
    sortcut_k = sp.check_int("sortcut_k", sortcut_k, 1)
    if sortcut_k > num_blocks:
      raise ValueError(f"sortcut_k {sortcut_k} exceeds the {num_blocks} blocks")
    if causal:
      raise ValueError("sinkhorn with sortcut_k (SortCut) is encoder-only:"
                       " causal=True is not supported; drop sortcut_k")

  return _sinkhorn(q_BxNxTxH, k_BxNxTxH, v_BxNxTxH, key_ok_Bx1xT, logits, rng,
                   block=block, causal=bool(causal), temperature=float(temperature),
                   num_iters=sp.check_int("num_iters", num_iters, 0),
                   sortcut_k=sortcut_k, dtype=q.dtype)


@functools.partial(jax.jit, static_argnames=(
    "block", "causal", "temperature", "num_iters", "sortcut_k", "dtype"))
def _sinkhorn(q_BxNxTxH, k_BxNxTxH, v_BxNxTxH, key_ok_Bx1xT, logits, rng, *,
              block, causal, temperature, num_iters, sortcut_k, dtype):
  """sinkhorn() after its checks (BNTH inputs); jitted so eager calls compile once."""
  batch, heads, length, _ = q_BxNxTxH.shape
  num_blocks = logits.shape[-1]
  # [B, N, nb, b, H] blocks; padded positions are not real keys.
  to_blocks = lambda x: blocked.to_blocks(x, block, axis=2)
  key_ok_Bx1xCxb = to_blocks(key_ok_Bx1xT.astype(jnp.float32))
  k_blocks = to_blocks(k_BxNxTxH.astype(jnp.float32)) * key_ok_Bx1xCxb[..., None]
  v_blocks = to_blocks(v_BxNxTxH.astype(jnp.float32)) * key_ok_Bx1xCxb[..., None]
  q_blocks = to_blocks(q_BxNxTxH)

  # The sort runs over the blocks with a real key (rows and columns): a block
  # of padding neither is sorted in nor takes a sorted block.
  real_Bx1xC = key_ok_Bx1xCxb.max(-1) > 0
  allowed_Bx1xCxC = real_Bx1xC[..., :, None] & real_Bx1xC[..., None, :]
  if causal:
    allowed_Bx1xCxC = allowed_Bx1xCxC & jnp.asarray(np.tri(num_blocks, k=-1, dtype=bool))
  p_BxNxCxC = sort_matrix(logits, temperature=temperature, num_iters=num_iters,
                          allowed=allowed_Bx1xCxC, causal=causal, rng=rng)
  p_BxNxCxC = jnp.broadcast_to(p_BxNxCxC, (batch, heads, num_blocks, num_blocks))
  if sortcut_k is not None:
    p_BxNxCxC = p_BxNxCxC[:, :, :sortcut_k]
  sorted_k = jnp.einsum("bnuv,bnvth->bnuth", p_BxNxCxC, k_blocks)
  sorted_v = jnp.einsum("bnuv,bnvth->bnuth", p_BxNxCxC, v_blocks)
  sorted_ok = jnp.einsum("bnuv,bzvt->bnut", p_BxNxCxC, key_ok_Bx1xCxb) > 0

  if sortcut_k is not None:  # every query sees the first n_s sorted blocks
    flat = lambda x: x.reshape(x.shape[:2] + (-1,) + x.shape[4:])
    parts = sp.partials(sp.logits(q_BxNxTxH, flat(sorted_k)),
                        flat(sorted_ok)[:, :, None, :], flat(sorted_v))
    out_BxNxTxH = sp.finish(parts, dtype)
  else:
    sorted_parts = sp.partials(sp.logits(q_blocks, sorted_k),
                               sorted_ok[..., None, :], sorted_v)
    local_ok = (key_ok_Bx1xCxb > 0)[..., None, :]
    if causal:
      local_ok = local_ok & jnp.asarray(np.tri(block, dtype=bool))
    local_parts = sp.partials(sp.logits(q_blocks, k_blocks), local_ok, v_blocks)
    out = sp.finish(sp.merge(sorted_parts, local_parts), dtype)
    out_BxNxTxH = out.reshape(batch, heads, num_blocks * block, -1)[:, :, :length]
  return jnp.swapaxes(out_BxNxTxH, 1, 2)

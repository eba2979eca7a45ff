"""BigBird ITC block-sparse attention (Zaheer et al. 2020, "Big Bird:
Transformers for Longer Sequences").

Family (Tay et al.): fixed + random patterns with global tokens.
The sequence is cut into blocks of `block_size`. With nb blocks and
g = `num_global_blocks`:
- global blocks: the first g and the last g blocks. Their queries attend to
  every key; every query attends to their keys;
- every other query block i attends to the `num_window_blocks` blocks centred
  on it (i - w//2 .. i + w//2), the global blocks, and `num_random_blocks`
  random blocks, drawn per head and per query block, distinct and never
  among its window or global blocks (so no key is counted twice in a softmax,
  unlike the official code's fixed plan for n in {1024, ..., 4096}).
One softmax per query row over the concatenation [global | window | random]
key blocks, gathered blockwise.
Complexity: O(n * (2g + w + r) * block_size * head_dim) time and
  O(n * (2g + w + r) * block_size) memory for the sparse rows, plus
  O(g * block_size * n) for the global rows: linear in n. The random table
  costs O(heads * nb * r * (2g + w + r)).
Exact given the random blocks: equals dense with `bigbird_pattern` for the
  same options (the kernel and the pattern draw the table with the same
  function, `random_block_table`). causal=True raises (BigBird's block-sparse
  attention is encoder-only). Self-attention only.
Options:
  block_size: tokens per block (default 64, as HF and LRA).
  num_window_blocks: odd sliding window width in blocks (default 3).
  num_global_blocks: g global blocks at each end (default 1).
  num_random_blocks: r random blocks per query block (default 3).
  rng: a jax PRNG key, or an int seed (a plain value that configs can hold;
    the official code also fixes one seed per layer). Needed when r > 0
    unless random_blocks is given.
  random_blocks: explicit int [heads, nb, r] block ids, -1 = empty slot; rows
    of global blocks are ignored. Entries must be distinct and outside their
    row's window and global blocks.
  impl: "xla" (default) or "pallas": the block-sparse kernel over
    `bigbird_pattern` (attention/block_sparse.py), whose tables are built on
    the host from the same random draw, so `rng` (or random_blocks) must be
    concrete (an int seed, or a key made outside jit); a traced one raises.
Limits: a length that is not a multiple of block_size is padded internally at
  the end: the last block is partly padding (its padded keys are masked), and
  it stays a global block. When a row has fewer than r candidate blocks, it
  gets all of them (the remaining slots are empty). The official code's extra
  exclusions (e.g. second row vs second-to-last block) are not reproduced.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers.attention import block_sparse, blocked
from efficient_transformers.attention.shapes import check_qkv


def _check_options(block_size, num_window_blocks, num_global_blocks,
                   num_random_blocks):
  b, w, g, r = (int(x) for x in (block_size, num_window_blocks,
                                 num_global_blocks, num_random_blocks))
  if b < 1 or w < 1 or w % 2 == 0 or g < 0 or r < 0:
    raise ValueError(
        "bigbird needs block_size >= 1, an odd num_window_blocks >= 1,"
        f" num_global_blocks >= 0 and num_random_blocks >= 0; got {b}, {w}, {g}, {r}")
  return b, w, g, r


def _excluded(num_blocks, w, g):
  """numpy bool [nb, nb]: blocks a row may not draw (global rows: all)."""
  i = np.arange(num_blocks)
  is_global = (i < g) | (i >= num_blocks - g)
  excluded = np.abs(i[:, None] - i[None, :]) <= w // 2
  excluded |= is_global[None, :] | is_global[:, None]
  return excluded


def random_block_table(rng, heads, num_blocks, num_window_blocks,
                       num_global_blocks, num_random_blocks):
  """int32 [heads, nb, r]: random key blocks per query block, -1 = empty.

  For each (head, row), a uniform random subset of min(r, candidates) of the
  blocks outside the row's window and the global blocks (Floyd's algorithm,
  vectorised over heads and rows). Works on traced keys; the pattern calls it
  on concrete ones.
  """
  r = num_random_blocks
  excluded = _excluded(num_blocks, num_window_blocks, num_global_blocks)
  num_candidates = num_blocks - excluded.sum(1)  # [nb]
  width = max(1, int(excluded.sum(1).max()))
  # Sorted excluded block ids per row, padded with a sentinel beyond any id.
  sorted_excluded = np.full((num_blocks, width), 2 * num_blocks + r, np.int32)
  for row in range(num_blocks):
    ids = np.flatnonzero(excluded[row])
    sorted_excluded[row, :ids.size] = ids
  if isinstance(rng, (int, np.integer)):
    rng = jax.random.key(rng)
  keys = jax.random.split(rng, max(r, 1))
  chosen = []
  for s in range(r):  # Floyd: a uniform s-subset of range(num_candidates)
    top = num_candidates - r + s  # [nb]
    t = jax.random.randint(keys[s], (heads, num_blocks), 0, np.maximum(top + 1, 1))
    duplicate = jnp.zeros(t.shape, bool)
    for c in chosen:
      duplicate |= t == c
    pick = jnp.where(duplicate, top, t)
    chosen.append(jnp.where(top >= 0, pick, -1))
  if not chosen:
    return jnp.zeros((heads, num_blocks, 0), jnp.int32)
  ranks = jnp.stack(chosen, axis=-1).astype(jnp.int32)  # [heads, nb, r]
  ids = ranks
  for e in range(width):  # rank -> the rank-th non-excluded block id
    ids = ids + (ids >= sorted_excluded[None, :, e, None])
  return jnp.where(ranks >= 0, ids, -1).astype(jnp.int32)


def _table(heads, num_blocks, w, g, r, rng, random_blocks):
  if random_blocks is not None:
    random_blocks = jnp.asarray(random_blocks, jnp.int32)
    if random_blocks.shape != (heads, num_blocks, r):
      raise ValueError(
          f"bigbird random_blocks must be int [heads, num_blocks, r] ="
          f" {(heads, num_blocks, r)}, got {random_blocks.shape}")
    return random_blocks
  if r > 0 and rng is None:
    raise ValueError("bigbird with num_random_blocks > 0 needs rng (a key or an"
                     " int seed) or explicit random_blocks")
  if r == 0:
    return jnp.zeros((heads, num_blocks, 0), jnp.int32)
  return random_block_table(rng, heads, num_blocks, w, g, r)


def bigbird(q, k, v, *, mask=None, causal=False, block_size=64,
            num_window_blocks=3, num_global_blocks=1, num_random_blocks=3,
            rng=None, random_blocks=None, impl="xla"):
  """BigBird ITC attention, BTNH layout (see the module docstring)."""
  check_qkv(q, k, v)
  blocked.reject_causal("bigbird", causal)
  blocked.require_self_attention("bigbird", q, k)
  b, w, g, r = _check_options(block_size, num_window_blocks, num_global_blocks,
                              num_random_blocks)
  if block_sparse.check_impl("bigbird", impl) == "pallas":
    # The same random draw as impl="xla": bigbird_pattern calls _table too.
    drawn = r > 0 and random_blocks is None
    return block_sparse.attend(
        "bigbird", bigbird_pattern, q, k, v, mask=mask, block_size=b,
        num_window_blocks=w, num_global_blocks=g, num_random_blocks=r, rng=rng,
        random_blocks=random_blocks, heads=q.shape[2] if drawn else None)
  batch, length, heads = q.shape[:3]
  nb = -(-length // b)
  g = min(g, -(-nb // 2))  # a short sequence may be all global
  # The barrier keeps XLA from fusing the table's draw (threefry + Floyd) into
  # the gathers' backward scatters: jaxlib 0.12's CPU compiler (LLVM's loop
  # vectorizer) then takes minutes on the fused loop (146 s for the gradient at
  # 96 tokens, 1.6 s with the barrier). The values are unchanged.
  table_NxBxR = jax.lax.optimization_barrier(
      _table(heads, nb, w, g, r, rng, random_blocks))
  real_BxL = blocked.key_mask(mask, batch, length)
  q_BxCxQxNxH = blocked.to_blocks(q, b)
  global_blocks = np.r_[0:g, nb - g:nb] if nb > 2 * g else np.arange(nb)
  # Global rows: every key.
  q_global = q_BxCxQxNxH[:, global_blocks].reshape((batch, -1) + q.shape[2:])
  out_global = blocked.attend(q_global, k, v, real_BxL[:, None, None, :])
  out_global = out_global.reshape((batch, len(global_blocks), b) + q.shape[2:])
  if nb <= 2 * g:
    return out_global.reshape((batch, -1) + q.shape[2:])[:, :length].astype(q.dtype)

  middle = slice(g, nb - g)
  k_blocks, v_blocks = blocked.to_blocks(k, b), blocked.to_blocks(v, b)
  real_BxCxQ = blocked.to_blocks(real_BxL, b, value=False)
  num_middle = nb - 2 * g

  def shared(x):  # [B, nb, b, ...] -> [B, nm, (2g + w) * b, ...]
    glob = x[:, global_blocks].reshape((batch, 1, -1) + x.shape[3:])
    glob = jnp.broadcast_to(glob, (batch, num_middle) + glob.shape[2:])
    window = blocked.neighbours(x, w // 2, w // 2)[:, middle]
    return jnp.concatenate([glob, window], axis=2)

  # Window blocks that are out of range or global are masked (no double count).
  offsets = np.arange(-(w // 2), w // 2 + 1)
  window_ids = np.arange(g, nb - g)[:, None] + offsets[None, :]
  window_ok = (window_ids >= g) & (window_ids < nb - g)
  shared_ok = np.concatenate(
      [np.ones((num_middle, 2 * g * b), bool), np.repeat(window_ok, b, axis=1)], 1)
  shared_real = shared(real_BxCxQ) & shared_ok[None]  # [B, nm, Ms]

  rand = table_NxBxR[:, middle]  # [N, nm, r]
  take = jax.vmap(lambda x, ids: x[:, ids], in_axes=(0, 0))  # over heads

  def random(x):  # [B, nb, b, N, H] -> [B, nm, r * b, N, H]
    x = take(jnp.moveaxis(x, 3, 0), jnp.maximum(rand, 0))  # [N, B, nm, r, b, H]
    x = jnp.moveaxis(x, 0, 4)  # [B, nm, r, b, N, H]
    return x.reshape((batch, num_middle, -1) + x.shape[4:])

  rand_real = jax.vmap(lambda ids: real_BxCxQ[:, ids])(jnp.maximum(rand, 0))
  rand_real &= (rand >= 0)[:, None, :, :, None]  # [N, B, nm, r, b]
  rand_real = jnp.moveaxis(rand_real, 0, 2).reshape(batch, num_middle, heads, -1)
  allowed = jnp.concatenate([
      jnp.broadcast_to(shared_real[:, :, None], (batch, num_middle, heads)
                       + shared_real.shape[2:]), rand_real], axis=-1)
  out_middle = blocked.attend(
      q_BxCxQxNxH[:, middle],
      jnp.concatenate([shared(k_blocks), random(k_blocks)], axis=2),
      jnp.concatenate([shared(v_blocks), random(v_blocks)], axis=2),
      allowed[:, :, :, None, :])
  out = jnp.concatenate([out_global[:, :g], out_middle, out_global[:, g:]], axis=1)
  return out.reshape((batch, -1) + q.shape[2:])[:, :length].astype(q.dtype)


def bigbird_pattern(q_len, kv_len, *, causal=False, block_size=64,
                    num_window_blocks=3, num_global_blocks=1, num_random_blocks=3,
                    rng=None, random_blocks=None, heads=None):
  """bool [heads or 1, q_len, kv_len]: the pairs bigbird attends.

  The random blocks differ across heads: with num_random_blocks > 0 and an
  `rng`, pass `heads` (the kernel's head count) to draw the same table; with
  `random_blocks`, heads is its first axis. Without random blocks the pattern
  is the same for every head: [1, q_len, kv_len].
  """
  if causal:
    raise ValueError("bigbird is encoder-only: causal=True is not supported")
  if q_len != kv_len:
    raise ValueError(f"bigbird is self-attention only: {q_len} != {kv_len}")
  b, w, g, r = _check_options(block_size, num_window_blocks, num_global_blocks,
                              num_random_blocks)
  if random_blocks is not None:
    heads = np.asarray(random_blocks).shape[0]
  elif r == 0:
    heads = 1
  elif heads is None:
    raise ValueError("bigbird_pattern with random blocks drawn from rng needs"
                     " heads= (the kernel's number of heads)")
  nb = -(-q_len // b)
  g = min(g, -(-nb // 2))
  table = np.asarray(_table(heads, nb, w, g, r, rng, random_blocks))
  i = np.arange(nb)
  is_global = (i < g) | (i >= nb - g)
  blocks = np.abs(i[:, None] - i[None, :]) <= w // 2
  blocks = blocks | is_global[:, None] | is_global[None, :]
  blocks = np.broadcast_to(blocks, (heads, nb, nb)).copy()
  h, row, slot = np.nonzero((table >= 0) & ~is_global[None, :, None])
  blocks[h, row, table[h, row, slot]] = True
  token_block = np.arange(q_len) // b
  return blocks[:, token_block][:, :, token_block]

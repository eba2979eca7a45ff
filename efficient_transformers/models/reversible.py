"""Reversible residual layers (RevNet coupling) and per-block rematerialisation.

Paper: Kitaev, Kaiser, Levskaya 2020, "Reformer: The Efficient Transformer",
Sec. 3 (after Gomez et al. 2017, "The Reversible Residual Network"); chunked
feed-forward, Sec. 3. Survey family: memory-saving "custom backpropagation"
(Tay et al.), usable with any attention mechanism.

Reversible stack (`config.model.reversible = True`): the encoder's Blocks
(models/block.py: their parameters, unchanged) are coupled as

    x1 = x2 = x                                  the input, duplicated
    y1 = x1 + F(x2),  F(x) = Dropout(Attention(LN(x)))
    y2 = x2 + G(y1),  G(x) = Dropout(MLP(LN(x)))  (Block's MLP and dropouts)
    out = (y1 + y2) / 2                          averaged back to [B, L, E]

The two streams are averaged (trax concatenates them into 2E and projects;
averaging keeps the encoder's width, so heads and the final LayerNorm are
shared with the ordinary stack). The backward pass (jax.custom_vjp over the
pure functional form of each block, nnx.split / nnx.merge) recomputes every
layer's inputs from its outputs, x2 = y2 - G(y1) and x1 = y1 - F(x2), one
layer at a time from the top, so activation memory does not grow with depth:
only the stack's output, the parameters and one layer's recomputation are
live. Time: one extra forward pass per layer (as remat). Layers of one
structure (the usual case) run as a lax.scan over stacked parameters, which
makes XLA execute one layer at a time; a mix of structures (layer_overrides
with other mechanisms) runs unrolled, where XLA may schedule the
recomputations early and memory can grow somewhat with depth. Measured on
CPU (tests/models/test_reversible.py: a 32-wide classifier, 129 positions,
batch 4), temporary memory of the loss gradient from 2 to 12 layers:
3.7 -> 4.4 MB reversible, 6.1 -> 34 MB ordinary.

Randomness: in training, each layer gets a key folded from one draw of the
call's `rngs` (its dropout stream); F and G build `nnx.Rngs(dropout=...)`
from it, so the recomputation draws the same dropout masks and the same
Reformer hash rotations (models/lsh_hashing.py) as the forward pass.

Chunked feed-forward (`config.model.ffn_chunk_size`, reversible stack only):
G runs on `ffn_chunk_size` positions at a time (jax.lax.map), so the
[B, L, mlp_dim] hidden activation is never whole. Without dropout the result
is identical (LayerNorm and the MLP are per position); with dropout each chunk
folds its index into the dropout key (other masks, same distribution).

Remat (`config.model.remat = True`, any model, ordinary stack): every Block is
wrapped in nnx.remat (jax.checkpoint), keeping only block inputs for the
backward pass. Not combined with `reversible` (which already recomputes).
Note: XLA:CPU schedules the recomputation early, so on CPU the compiled
memory of an unrolled remat stack does not shrink (measured: equal to the
ordinary stack); GPU/TPU schedulers were not measured here.

Limits of the reversible stack: self-attention blocks only (no cross-attention,
Funnel pooling or MoE), mechanisms without running state (nnx.BatchStat /
nnx.Cache), and auxiliary losses sown inside it are dropped.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from efficient_transformers.models.block import Block


def attention_branch(block: Block, x, *, mask, causal, deterministic, rngs):
  """F(x) = Dropout(Attention(LN(x))): the attention residual branch of `block`."""
  y = block.attention(block.attention_norm(x), mask=mask, causal=causal,
                      deterministic=deterministic, rngs=rngs)
  return block.dropout(y, deterministic=deterministic, rngs=rngs)


def mlp_branch(block: Block, x, *, deterministic, rngs, ffn_chunk_size=None):
  """G(x) = Dropout(MLP(LN(x))), `ffn_chunk_size` positions at a time if set."""

  def mlp(x_chunk, rngs):
    drop = lambda y: block.dropout(y, deterministic=deterministic, rngs=rngs)
    h = drop(jax.nn.gelu(block.mlp_in(block.mlp_norm(x_chunk))))
    return drop(block.mlp_out(h))

  length = x.shape[1]
  if not ffn_chunk_size or length <= ffn_chunk_size:
    return mlp(x, rngs)
  num_chunks = -(-length // ffn_chunk_size)
  x = jnp.pad(x, ((0, 0), (0, num_chunks * ffn_chunk_size - length), (0, 0)))
  chunks_CxBxcxE = jnp.moveaxis(
      x.reshape(x.shape[0], num_chunks, ffn_chunk_size, x.shape[2]), 1, 0)
  key = None if deterministic else rngs.dropout()

  def one_chunk(args):
    x_chunk, index = args
    chunk_rngs = (None if deterministic
                  else nnx.Rngs(dropout=jax.random.fold_in(key, index)))
    return mlp(x_chunk, chunk_rngs)

  out = jax.lax.map(one_chunk, (chunks_CxBxcxE, jnp.arange(num_chunks)))
  out = jnp.moveaxis(out, 0, 1).reshape(x.shape)
  return out[:, :length]


def _zeros_like_cotangent(tree):
  """Cotangents for non-differentiable inputs (masks, keys): zeros / float0."""
  def zero(a):
    if jnp.issubdtype(a.dtype, jnp.floating):
      return jnp.zeros_like(a)
    return np.zeros(a.shape, jax.dtypes.float0)
  return jax.tree.map(zero, tree)


def _branches(graphdef, static):
  """The pure F(params, x, mask, key) and G(params, x, key) of one layer;
  params = (its nnx.Param state, the rest of its state)."""
  causal, deterministic, ffn_chunk_size = static

  def rngs_for(key, branch):
    if deterministic:
      return None
    return nnx.Rngs(dropout=jax.random.fold_in(jax.random.wrap_key_data(key), branch))

  def f(params, x, mask, key):
    return attention_branch(nnx.merge(graphdef, *params), x, mask=mask, causal=causal,
                            deterministic=deterministic, rngs=rngs_for(key, 0))

  def g(params, x, key):
    return mlp_branch(nnx.merge(graphdef, *params), x, deterministic=deterministic,
                      rngs=rngs_for(key, 1), ffn_chunk_size=ffn_chunk_size)

  return f, g


def _layer_forward(f, g, layer_params, x1, x2, mask, key):
  x1 = x1 + f(layer_params, x2, mask, key)
  return x1, x2 + g(layer_params, x1, key)


def _layer_backward(f, g, layer_params, y1, y2, dy1, dy2, mask, key):
  """Recomputes the layer's inputs from its outputs; returns them, their
  cotangents and the parameters' gradient."""
  g_out, g_vjp = jax.vjp(lambda p, x: g(p, x, key), layer_params, y1)
  x2 = y2 - g_out
  dparams_g, dy1_from_g = g_vjp(dy2)
  dx1 = dy1 + dy1_from_g
  f_out, f_vjp = jax.vjp(lambda p, x: f(p, x, mask, key), layer_params, x2)
  x1 = y1 - f_out
  dparams_f, dx2_from_f = f_vjp(dx1)
  return x1, x2, dx1, dy2 + dx2_from_f, jax.tree.map(jnp.add, dparams_g, dparams_f)


# Layers of one structure (the usual case): params and keys stacked on a
# leading layer axis, forward and backward as lax.scan. The loop makes XLA
# run one layer at a time, so only one layer's recomputation is ever live.

def _scan_forward(spec, params, x1, x2, mask, keys):
  graphdef, static = spec
  f, g = _branches(graphdef, static)

  def body(carry, layer):
    return _layer_forward(f, g, layer[0], *carry, mask, layer[1]), None

  return jax.lax.scan(body, (x1, x2), (params, keys))[0]


def _scan_fwd(spec, params, x1, x2, mask, keys):
  y1, y2 = _scan_forward(spec, params, x1, x2, mask, keys)
  return (y1, y2), (params, y1, y2, mask, keys)  # no per-layer activations


def _scan_bwd(spec, residuals, cotangents):
  graphdef, static = spec
  params, y1, y2, mask, keys = residuals
  f, g = _branches(graphdef, static)

  def body(carry, layer):
    *carry, grads = _layer_backward(f, g, layer[0], *carry, mask, layer[1])
    return tuple(carry), grads

  (_, _, dx1, dx2), grads = jax.lax.scan(
      body, (y1, y2) + tuple(cotangents), (params, keys), reverse=True)
  return (grads, dx1, dx2, _zeros_like_cotangent(mask), _zeros_like_cotangent(keys))


_scan_reversible = jax.custom_vjp(_scan_forward, nondiff_argnums=(0,))
_scan_reversible.defvjp(_scan_fwd, _scan_bwd)


# Layers of different structures (layer_overrides mixing mechanisms): an
# unrolled loop. Note that XLA may then schedule the recomputations early
# (they depend only on the outputs), so flat memory is only guaranteed by the
# scanned form.

def _unrolled_forward(spec, params, x1, x2, mask, keys):
  graphdefs, static = spec
  for graphdef, layer_params, key in zip(graphdefs, params, keys):
    x1, x2 = _layer_forward(*_branches(graphdef, static), layer_params, x1, x2,
                            mask, key)
  return x1, x2


def _unrolled_fwd(spec, params, x1, x2, mask, keys):
  y1, y2 = _unrolled_forward(spec, params, x1, x2, mask, keys)
  return (y1, y2), (params, y1, y2, mask, keys)


def _unrolled_bwd(spec, residuals, cotangents):
  graphdefs, static = spec
  params, y1, y2, mask, keys = residuals
  dy1, dy2 = cotangents
  grads = []
  for layer in reversed(range(len(params))):
    y1, y2, dy1, dy2, layer_grads = _layer_backward(
        *_branches(graphdefs[layer], static), params[layer], y1, y2, dy1, dy2,
        mask, keys[layer])
    grads.append(layer_grads)
  return (tuple(reversed(grads)), dy1, dy2, _zeros_like_cotangent(mask),
          _zeros_like_cotangent(keys))


_unrolled_reversible = jax.custom_vjp(_unrolled_forward, nondiff_argnums=(0,))
_unrolled_reversible.defvjp(_unrolled_fwd, _unrolled_bwd)


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def check_reversible_blocks(blocks: Sequence[Block]) -> None:
  """Raises ValueError for blocks the reversible stack cannot couple."""
  for i, block in enumerate(blocks):
    if block.cross_attention is not None or getattr(block, "moe", None) is not None:
      raise ValueError(
          f"reversible=True couples self-attention and a dense MLP; layer {i} has"
          " cross-attention or a MoE feed-forward: set reversible=False")
    _, _, rest = nnx.split(block, nnx.Param, ...)
    if jax.tree.leaves(rest):
      raise ValueError(
          f"reversible=True: layer {i} ({block.attention.attention}) has running"
          " state (nnx.BatchStat / nnx.Cache) that a recomputed backward pass"
          " cannot replay: set reversible=False (or remat=True)")


def reversible_stack(blocks: Sequence[Block], x, *, mask=None, causal=False,
                     deterministic: bool, rngs: nnx.Rngs | None = None,
                     ffn_chunk_size: int | None = None, recompute: bool = True):
  """Runs `blocks` as a reversible stack: x [B, L, E] -> (y1 + y2) / 2.

  Args:
    blocks: Blocks without cross-attention or MoE (check_reversible_blocks).
    x: the embedded sequence; mask: bool [B, L] key padding; causal: as Block.
    deterministic, rngs: dropout (and hash) randomness, as Block.
    ffn_chunk_size: positions per feed-forward chunk (None = all at once).
    recompute: True = the custom backward pass that recomputes activations;
      False = plain autodiff of the same function (stores every activation;
      for tests and comparison).
  """
  check_reversible_blocks(blocks)
  split = [nnx.split(block, nnx.Param, ...) for block in blocks]
  graphdefs = tuple(graphdef for graphdef, _, _ in split)
  # (nnx.Param, the rest): the rest holds no arrays (check_reversible_blocks),
  # only empty slots such as nnx.capture's, which merging needs.
  params = tuple((p, rest) for _, p, rest in split)
  if deterministic:
    keys = (None,) * len(blocks)
  else:
    base = rngs.dropout()
    keys = tuple(jax.random.key_data(jax.random.fold_in(base, i))
                 for i in range(len(blocks)))
  static = (causal, deterministic, ffn_chunk_size)
  if all(graphdef == graphdefs[0] for graphdef in graphdefs):
    spec = (graphdefs[0], static)
    params = _stack(params)
    keys = None if deterministic else _stack(keys)
    run = _scan_reversible if recompute else _scan_forward
  else:
    spec = (graphdefs, static)
    run = _unrolled_reversible if recompute else _unrolled_forward
  y1, y2 = run(spec, params, x, x, mask, keys)
  return (y1 + y2) / 2


def remat_block(block: Block, x, *, rngs: nnx.Rngs | None, **call: Any):
  """block(x, rngs=rngs, **call) under nnx.remat: its activations are
  recomputed in the backward pass instead of stored."""
  return nnx.remat(lambda block, x, rngs: block(x, rngs=rngs, **call))(block, x, rngs)

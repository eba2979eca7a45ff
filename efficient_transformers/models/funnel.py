"""Funnel-Transformer downsampling: pool the sequence between encoder stages.

Paper: Dai, Lai, Yang and Le 2020, "Funnel-Transformer: Filtering out
Sequential Redundancy for Efficient Language Processing". Survey family:
downsampling. Encoder-only (not causal): a pooled position mixes several
tokens, so there is no causal order to keep.

The encoder's layers are split into stages of `block_sizes` layers (their
sum must equal num_layers). Before each stage after the first, the sequence
is pooled along its length with kernel = stride = `stride`; as the paper's
"pool_q_only", only the queries of that stage's first layer are pooled:

    query = pool(x)                                   [B, ceil(L / stride), E]
    x = query + Attention(LN(query), LN(x), LN(x))    keys/values unpooled
    (MLP as usual on the pooled stream; later layers of the stage are
    ordinary self-attention on the pooled length)

so each stage costs O(L_s · L_{s-1}) in its first layer and O(L_s²) after
(dense attention), L_s = L / stride^s: the survey's O(N²) with a shrinking N.

Pooling (`pooling`): "mean" or "max" over the real (mask True) tokens of each
window; windows at the end may be partial (ceil mode, as the paper's
avg_pool2d(ceil_mode=True)). A window without real tokens gives zeros.
Mask pooling: a pooled position is real iff ANY of its inputs is real (its
value is then a summary of real tokens only). Hence padded tokens never reach
a real position: changing them, or appending more padding, changes no real
output (tested).

CLS (`separate_cls`, default True, used only when the encoder prepends CLS,
i.e. pooling "cls"): CLS is kept out of the pooling and stays at position 0
(the paper's "separate [cls]"), so CLS pooling still reads the CLS state.
With separate_cls=False, CLS is pooled with the first tokens like any token.

Options (`config.model.funnel`, a dict; None = no pooling): block_sizes
(required, e.g. (2, 2)), stride (2), pooling ("mean"), separate_cls (True).

Attention: the pooled-query layers call the layer's registered mechanism with
q_len != kv_len. Mechanisms that need q_len == kv_len (local, sliding window,
longformer, axial, ...) or options sized for the unpooled length raise, and
the encoder re-raises with the funnel layer named (`check_stage_call`).

Deviations: the paper's relative positional attention is replaced by the
encoder's own position embedding (added once at the input); the pooled
positions are therefore summaries of absolutely-positioned tokens. No
decoder / upsampling (the paper's token-level head): classification only.
The paper's "truncate_seq" is not needed, since ceil mode keeps odd lengths.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from efficient_transformers.models.options import with_defaults

POOLINGS = ("mean", "max")
FUNNEL_DEFAULTS = {"block_sizes": None, "stride": 2, "pooling": "mean",
                   "separate_cls": True}


def split_layers(num_layers: int, stages: int = 2) -> tuple[int, ...]:
  """block_sizes cutting num_layers into min(stages, num_layers) near-equal
  stages, the later (shorter, cheaper) stages taking the remainder: 4 -> (2, 2),
  3 -> (1, 2), 1 -> (1,) (one stage: no pooling)."""
  stages = max(1, min(stages, num_layers))
  return tuple(num_layers // stages + (i >= stages - num_layers % stages)
               for i in range(stages))


def funnel_options(funnel: Mapping[str, Any] | None, *, num_layers: int,
                   causal: bool = False) -> dict[str, Any] | None:
  """`config.model.funnel` (dict, ConfigDict or None) -> checked options or None."""
  if funnel is None:
    return None
  options = with_defaults("funnel", funnel, FUNNEL_DEFAULTS)
  if causal:
    raise ValueError("funnel pooling cannot be causal (a pooled position mixes"
                     " several tokens); use it in an encoder (classifier or"
                     " matcher heads), or set model.funnel = None")
  sizes = options["block_sizes"]
  if (not isinstance(sizes, (tuple, list)) or not sizes
      or any(not isinstance(n, int) or n < 1 for n in sizes)):
    raise ValueError(f"funnel block_sizes must be a non-empty sequence of positive"
                     f" ints, got {sizes!r}")
  if sum(sizes) != num_layers:
    raise ValueError(f"funnel block_sizes {tuple(sizes)} sum to {sum(sizes)} layers"
                     f" but num_layers is {num_layers}; make them agree")
  options["block_sizes"] = tuple(sizes)
  if not isinstance(options["stride"], int) or options["stride"] < 1:
    raise ValueError(f"funnel stride must be a positive int, got {options['stride']!r}")
  if options["pooling"] not in POOLINGS:
    raise ValueError(f"unknown funnel pooling {options['pooling']!r};"
                     f" valid: {', '.join(POOLINGS)}")
  return options


def pool_layers(options: Mapping[str, Any] | None) -> tuple[int, ...]:
  """Indices of the layers whose queries are pooled (first layer of stages 2..)."""
  if options is None:
    return ()
  starts, total = [], 0
  for size in options["block_sizes"][:-1]:
    total += size
    starts.append(total)
  return tuple(starts)


def pooled_length(length: int, *, stride: int, keep_first: bool) -> int:
  """Length after one pooling (ceil mode); keep_first = a separate CLS."""
  return keep_first + -(-(length - keep_first) // stride)


def stage_lengths(length: int, options: Mapping[str, Any] | None, *,
                  use_cls: bool) -> tuple[int, ...]:
  """Sequence length of each stage for `length` positions (CLS included)."""
  lengths = [length]
  for _ in pool_layers(options):
    lengths.append(pooled_length(lengths[-1], stride=options["stride"],
                                 keep_first=use_cls and options["separate_cls"]))
  return tuple(lengths)


def pool_sequence(x_BxLxE: jax.Array, mask_BxL: jax.Array, *, stride: int,
                  pooling: str, keep_first: bool = False
                  ) -> tuple[jax.Array, jax.Array]:
  """Mask-aware pooling along the length: ([B, L', E], bool [B, L']).

  L' = pooled_length(L). Each window of `stride` positions becomes the mean
  (or max) of its real positions, zeros if it has none; its mask is the OR of
  the window's mask. keep_first: position 0 (CLS) is passed through unpooled.
  """
  if keep_first:
    rest, rest_mask = pool_sequence(x_BxLxE[:, 1:], mask_BxL[:, 1:],
                                    stride=stride, pooling=pooling)
    return (jnp.concatenate([x_BxLxE[:, :1], rest], axis=1),
            jnp.concatenate([mask_BxL[:, :1], rest_mask], axis=1))
  batch, length, emb = x_BxLxE.shape
  windows = -(-length // stride)
  pad = windows * stride - length
  x_BxWxSxE = jnp.pad(x_BxLxE, ((0, 0), (0, pad), (0, 0))).reshape(
      batch, windows, stride, emb)
  m_BxWxS = jnp.pad(mask_BxL, ((0, 0), (0, pad))).reshape(batch, windows, stride)
  any_BxW = jnp.any(m_BxWxS, axis=-1)
  if pooling == "mean":
    weights = m_BxWxS.astype(x_BxLxE.dtype)[..., None]
    total_BxWxE = jnp.sum(x_BxWxSxE * weights, axis=2)
    pooled = total_BxWxE / jnp.maximum(jnp.sum(weights, axis=2), 1)
  elif pooling == "max":
    lowest = jnp.finfo(x_BxLxE.dtype).min
    pooled = jnp.max(jnp.where(m_BxWxS[..., None], x_BxWxSxE, lowest), axis=2)
    pooled = jnp.where(any_BxW[..., None], pooled, 0)
  else:
    raise ValueError(f"unknown funnel pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
  return pooled.astype(x_BxLxE.dtype), any_BxW


def pool_stage(x_BxLxE: jax.Array, mask_BxL: jax.Array,
               options: Mapping[str, Any], *, use_cls: bool
               ) -> tuple[jax.Array, jax.Array]:
  """Pools x and its mask for the next stage, with the configured options."""
  return pool_sequence(x_BxLxE, mask_BxL, stride=options["stride"],
                       pooling=options["pooling"],
                       keep_first=use_cls and options["separate_cls"])


@contextlib.contextmanager
def check_stage_call(attention: str, layer: int, q_len: int, kv_len: int):
  """Re-raises a mechanism's ValueError with the funnel layer that caused it."""
  try:
    yield
  except ValueError as e:
    raise ValueError(
        f"funnel: attention {attention!r} failed in layer {layer} (query length"
        f" {q_len}, key length {kv_len}): {e}. Funnel pooling needs a mechanism"
        " that accepts q_len != kv_len and any length (e.g. dense, linear,"
        " performer); set model.funnel = None or change model.attention") from e

"""Synthesizer weights (Tay et al. 2020), owned by the attention layer
(`MECHANISM_MODULES["synthesizer_dense"]`, `["synthesizer_random"]`); see
attention/synthesizer.py. Sized for `max_length` positions; the attention
function slices them to each call's lengths.

synthesizer_dense: w2 [heads, head_dim, max_length] (LeCun normal) and b2
  (zeros); with `factor_sizes` (a, b), a * b >= max_length, the factorised
  w2_a [heads, head_dim, a], w2_b [heads, head_dim, b].
synthesizer_random: random_logits [heads, max_length, max_length], or with
  `num_factors` r > 0 the factorised factor_q, factor_k [heads, max_length, r]
  (LRA's default "factorized_random", r = 32). N(0, 1) initialisation.
  `trainable` (default True): False keeps them fixed, recomputed from a fixed
  key at every call (no stored state; never trained).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
from flax import nnx


def _max_length(max_length, name):
  if not max_length:
    raise ValueError(f"{name} needs the layer's max_length (the longest"
                     " sequence, CLS included) to size its weights")
  return int(max_length)


class SynthesizerDenseWeights(nnx.Module):
  layer_options = ("factor_sizes",)

  def __init__(self, *, emb_dim: int, num_heads: int, head_dim: int,
               max_length: int | None, attention_kw: Mapping[str, Any],
               rngs: nnx.Rngs):
    del emb_dim
    length = _max_length(max_length, "synthesizer_dense")
    init = jax.nn.initializers.lecun_normal(in_axis=1, out_axis=2, batch_axis=(0,))
    sizes = attention_kw.get("factor_sizes")
    if sizes:
      a, b = (int(s) for s in sizes)
      if a * b < length:
        raise ValueError(f"factor_sizes {a} x {b} < max_length {length}")
      self.weights = nnx.Dict(
          w2_a=nnx.Param(init(rngs.params(), (num_heads, head_dim, a))),
          w2_b=nnx.Param(init(rngs.params(), (num_heads, head_dim, b))))
    else:
      self.weights = nnx.Dict(
          w2=nnx.Param(init(rngs.params(), (num_heads, head_dim, length))),
          b2=nnx.Param(jax.numpy.zeros((num_heads, length))))

  def __call__(self, x, context, *, deterministic: bool, rngs=None) -> dict:
    del x, context, deterministic, rngs
    # Params only: under nnx.capture a module also holds a `__captures__` entry.
    return {name: value[...] for name, value in self.weights.items()
            if isinstance(value, nnx.Param)}


class SynthesizerRandomWeights(nnx.Module):
  layer_options = ("num_factors", "trainable")

  def __init__(self, *, emb_dim: int, num_heads: int, head_dim: int,
               max_length: int | None, attention_kw: Mapping[str, Any],
               rngs: nnx.Rngs):
    del emb_dim, head_dim
    length = _max_length(max_length, "synthesizer_random")
    rank = int(attention_kw.get("num_factors", 0))
    if rank > 0:
      self.shapes = {"factor_q": (num_heads, length, rank),
                     "factor_k": (num_heads, length, rank)}
    else:
      self.shapes = {"random_logits": (num_heads, length, length)}
    self.trainable = bool(attention_kw.get("trainable", True))
    keys = dict(zip(self.shapes, jax.random.split(rngs.params(), len(self.shapes))))
    if self.trainable:
      self.weights = nnx.Dict({name: nnx.Param(jax.random.normal(keys[name], shape))
                               for name, shape in self.shapes.items()})
    else:
      self.weights = None

  def __call__(self, x, context, *, deterministic: bool, rngs=None) -> dict:
    del x, context, deterministic, rngs
    if self.weights is not None:
      return {name: self.weights[name][...] for name in self.shapes}  # (see above)
    keys = jax.random.split(jax.random.key(0), len(self.shapes))
    return {name: jax.random.normal(key, shape)
            for key, (name, shape) in zip(keys, self.shapes.items())}

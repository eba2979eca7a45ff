"""The strided-convolution weights of memory-compressed attention (Liu et al.
2018), owned by the attention layer (`MECHANISM_MODULES["memory_compressed"]`).

Per head, a convolution with kernel = stride = `compression` over the length
axis of the projected keys and values: weights [compression, heads, head_dim,
head_dim] for keys and for values (see attention/memory_compressed.py).
Initialisation: LeCun normal over the fan-in compression * head_dim, as a
convolution kernel.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
from flax import nnx


class MemoryCompressedConv(nnx.Module):
  """Holds compress_k, compress_v and passes them to the mechanism.

  Args (the MECHANISM_MODULES factory signature):
    emb_dim: unused (the convolution acts on projected heads).
    num_heads, head_dim: the layer's heads.
    attention_kw: the mechanism's options; reads `compression` (default 3).
    rngs: parameter initialisation.
  """

  def __init__(self, *, emb_dim: int, num_heads: int, head_dim: int,
               max_length: int | None, attention_kw: Mapping[str, Any],
               rngs: nnx.Rngs):
    del emb_dim, max_length
    compression = int(attention_kw.get("compression", 3))
    shape = (compression, num_heads, head_dim, head_dim)
    init = jax.nn.initializers.variance_scaling(
        1.0, "fan_in", "truncated_normal", in_axis=(0, 2), out_axis=3,
        batch_axis=(1,))
    self.compress_k = nnx.Param(init(rngs.params(), shape))
    self.compress_v = nnx.Param(init(rngs.params(), shape))

  def __call__(self, x, context, *, deterministic: bool, rngs=None) -> dict:
    del x, context, deterministic, rngs
    return {"compress_k": self.compress_k[...], "compress_v": self.compress_v[...]}

"""Nystromformer's depthwise convolution skip (Xiong et al. 2021), owned by the
attention layer (`MECHANISM_MODULES["nystromformer"]`); see
attention/nystromformer.py.

attention_kw `conv_kernel_size` (default 0 = no skip; the official code uses
33): weights [heads, conv_kernel_size], one filter per head over the length,
LeCun normal over the kernel window.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
from flax import nnx


class NystromConv(nnx.Module):
  layer_options = ("conv_kernel_size",)

  def __init__(self, *, emb_dim: int, num_heads: int, head_dim: int,
               max_length: int | None, attention_kw: Mapping[str, Any],
               rngs: nnx.Rngs):
    del emb_dim, head_dim, max_length
    size = int(attention_kw.get("conv_kernel_size", 0) or 0)
    if size and size % 2 != 1:
      raise ValueError(f"conv_kernel_size must be odd, got {size}")
    init = jax.nn.initializers.lecun_normal(in_axis=1, out_axis=0)
    self.conv_kernel = (nnx.Param(init(rngs.params(), (num_heads, size)))
                        if size else None)

  def __call__(self, x, context, *, deterministic: bool, rngs=None) -> dict:
    del x, context, deterministic, rngs
    return {} if self.conv_kernel is None else {"conv_kernel": self.conv_kernel[...]}

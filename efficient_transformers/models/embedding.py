"""Token and position embeddings (Vaswani et al. 2017; LRA's AddPositionEmbs).

`Embedder` maps int tokens [batch, length] to [batch, length(+1), emb_dim]:
token embedding (normal(1.0) init, as LRA), an optional learned CLS vector
prepended (zero init), position embedding over the whole sequence (CLS takes
position 0, tokens 1..length, as in LRA's TransformerEncoder), then dropout.
`max_length` counts tokens only; the position table has max_length + 1 rows.

Positions (`position`):
  "sinusoidal": the fixed table of `sinusoidal_positions` (no parameters);
  "learned":    a [max_length, emb_dim] parameter, init normal(0.02) (LRA);
  "sinusoidal_2d": for square images in raster order (Pathfinder, LRA image):
                the first half of the width is the sinusoidal table of the
                row, the second half that of the column (as 2-D sin/cos
                positions in ViT/MAE); no parameters; CLS gets zeros.
                Not in LRA (its models see 1-D positions); our option.
                Encoders only: models/decoding.py does not handle it.
  "none":       no position information.
"""

from __future__ import annotations

import einops
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from efficient_transformers.models.dropout import check_rngs

POSITIONS = ("sinusoidal", "learned", "none", "sinusoidal_2d")


def sinusoidal_positions_2d(length: int, dim: int) -> np.ndarray:
  """float32 [length, dim]: row table | column table of a square raster image.

  Position p is row p // side, column p % side (side = sqrt(length)): its
  vector is sinusoidal_positions(side, dim // 2) at the row, then at the
  column. `length` must be a square and `dim` a multiple of 4.
  """
  side = int(round(np.sqrt(length)))
  if side * side != length:
    raise ValueError(f"sinusoidal_2d positions need a square image (length = "
                     f"side * side); got length {length}: use 'sinusoidal'")
  if dim % 4:
    raise ValueError(f"sinusoidal_2d positions need dim % 4 == 0, got {dim}")
  table = sinusoidal_positions(side, dim // 2)
  rows, columns = np.divmod(np.arange(length), side)
  return np.concatenate([table[rows], table[columns]], axis=1)


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
  """float32 [length, dim]: the fixed sin/cos position table of Vaswani et al.

  The two halves are concatenated, not interleaved (as in LRA and the Flax
  examples): for position p and i < dim // 2, with frequency
  w_i = 1 / 10000 ** (2 i / dim),

    table[p, i]            = sin(p * w_i)    (first half: sin)
    table[p, dim // 2 + i] = cos(p * w_i)    (second half: cos)

  `dim` must be even.
  """
  if dim % 2:
    raise ValueError(f"sinusoidal positions need an even dim, got {dim}")
  half = dim // 2
  frequency_D = 1.0 / 10000.0 ** (2.0 * np.arange(half) / dim)
  angle_LxD = np.arange(length)[:, None] * frequency_D[None, :]
  return np.concatenate([np.sin(angle_LxD), np.cos(angle_LxD)], axis=1).astype(
      np.float32)


class Embedder(nnx.Module):
  """Token embedding + position embedding + dropout.

  Args:
    vocab_size: number of token ids (id 0 is padding; it is embedded like any
      other id and masked later by the encoder).
    emb_dim: embedding width.
    max_length: longest input accepted (CLS not counted).
    position: "sinusoidal", "learned", "sinusoidal_2d" or "none".
    use_cls: prepend a learned CLS vector (zero init), before positions.
    dropout_rate: dropout on the summed embeddings (LRA's input dropout).
    rngs: parameter initialisation.
  """

  def __init__(self, vocab_size: int, emb_dim: int, max_length: int, *,
               position: str = "sinusoidal", dropout_rate: float = 0.1,
               use_cls: bool = False, rngs: nnx.Rngs):
    if position not in POSITIONS:
      raise ValueError(
          f"unknown position {position!r}; valid: {', '.join(POSITIONS)}")
    self.emb_dim = emb_dim
    self.max_length = max_length
    self.position = position
    self.use_cls = use_cls
    self.token_embedding = nnx.Embed(
        vocab_size, emb_dim, embedding_init=jax.nn.initializers.normal(1.0),
        rngs=rngs)
    if use_cls:
      self.cls = nnx.Param(jnp.zeros((emb_dim,), jnp.float32))
    if position == "learned":
      self.position_embedding = nnx.Param(jax.nn.initializers.normal(0.02)(
          rngs.params(), (max_length + use_cls, emb_dim)))
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, tokens: jax.Array, *, deterministic: bool,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """int tokens [batch, length] -> [batch, length (+1 with CLS), emb_dim]."""
    check_rngs(deterministic, rngs, "Embedder")
    if tokens.shape[1] > self.max_length:
      raise ValueError(
          f"input length {tokens.shape[1]} exceeds max_length {self.max_length}")
    x_BxLxE = self.token_embedding(tokens)
    if self.use_cls:
      cls_Bx1xE = einops.repeat(self.cls[...], "e -> b 1 e", b=tokens.shape[0])
      x_BxLxE = jnp.concatenate([cls_Bx1xE.astype(x_BxLxE.dtype), x_BxLxE], 1)
    length = x_BxLxE.shape[1]
    if self.position == "sinusoidal":
      x_BxLxE = x_BxLxE + jnp.asarray(
          sinusoidal_positions(length, self.emb_dim))[None]
    elif self.position == "learned":
      x_BxLxE = x_BxLxE + self.position_embedding[None, :length]
    elif self.position == "sinusoidal_2d":
      table = sinusoidal_positions_2d(tokens.shape[1], self.emb_dim)
      if self.use_cls:
        table = np.concatenate([np.zeros((1, self.emb_dim), np.float32), table])
      x_BxLxE = x_BxLxE + jnp.asarray(table)[None]
    return self.dropout(x_BxLxE, deterministic=deterministic, rngs=rngs)

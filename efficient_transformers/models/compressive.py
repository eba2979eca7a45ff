"""Memory compression of the Compressive Transformer (Rae et al. 2020).

Paper: Rae, Potapenko, Jayakumar, Hillier, Lillicrap, "Compressive
Transformers for Long-Range Sequence Modelling", ICLR 2020.
Survey family (Tay et al.): recurrence (+ downsampling of the memory).

Each layer keeps, besides Transformer-XL's memory of `mem_len` states, a
compressed memory of `cmem_len` slots (transformer_xl.py holds both). After a
segment of L states, the L oldest memories leave the memory; this module's
compression function f_c (the paper's best: a 1-D convolution with kernel =
stride = `compression_rate` c, no padding) turns them into L / c compressed
states, appended to the compressed memory (FIFO, oldest dropped). Keys and
values of the layer are then [compressed memory; memory; segment].

Attention-reconstruction loss (the paper's Algorithm 2): f_c is trained only
by

    L_attn = || attn(h, old) - attn(h, f_c(old)) ||^2

with attn the layer's content attention (its query, key and value
projections, no position terms), h the layer's normalised segment input and
old the evicted memories. Everything except f_c is behind
`jax.lax.stop_gradient` (queries, key and value weights, the norm, the
memories), and the compressed memories that the model attends to are stored
as stop_gradient values, so the language-modelling loss never reaches f_c.
The loss (mean over batch, segment positions and features, per layer, times
`reconstruction_weight`) is sown with `add_aux_loss(self, "reconstruction",
...)` in training only (deterministic=False); the train step adds it.

Cost: O(L d^2) for the convolution and O(L^2 d) for the loss per layer; the
attention itself grows to O(L (L + mem_len + cmem_len)).

Deviations: the loss uses the mean, not the sum, of squared differences (a
constant factor absorbed by `reconstruction_weight`); queries carry no
Transformer-XL content bias u. No official code exists (models.md Sec. 19).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from efficient_transformers import attention as attention_lib
from efficient_transformers.models.variables import add_aux_loss

_dense = attention_lib.get("dense")


def frozen(module: nnx.Module) -> nnx.Module:
  """A copy of `module` whose variables are behind stop_gradient."""
  graphdef, state = nnx.split(module)
  return nnx.merge(graphdef, jax.tree.map(jax.lax.stop_gradient, state))


class MemoryCompressor(nnx.Module):
  """f_c (strided Conv1d) and its attention-reconstruction loss.

  Args:
    emb_dim: width E of the memories.
    compression_rate: c, the conv's kernel size and stride.
    reconstruction_weight: factor of the sown loss.
    rngs: parameter initialisation.
  """

  def __init__(self, emb_dim: int, compression_rate: int, *,
               reconstruction_weight: float = 1.0, rngs: nnx.Rngs):
    if compression_rate < 1:
      raise ValueError(f"compression_rate must be >= 1, got {compression_rate}")
    self.compression_rate = compression_rate
    self.reconstruction_weight = reconstruction_weight
    self.conv = nnx.Conv(emb_dim, emb_dim, kernel_size=(compression_rate,),
                         strides=(compression_rate,), padding="VALID", rngs=rngs)

  def __call__(self, old_BxLxE: jax.Array) -> jax.Array:
    """[B, L, E] evicted memories -> [B, L / c, E] compressed ones."""
    if old_BxLxE.shape[1] % self.compression_rate:
      raise ValueError(
          f"the segment length {old_BxLxE.shape[1]} must be a multiple of "
          f"compression_rate {self.compression_rate} (config.data.max_length vs "
          "config.model.compression_rate)")
    return self.conv(old_BxLxE)

  def reconstruction_loss(self, attention, norm, x_norm_BxLxE, old_BxLxE,
                          old_valid_BxL) -> jax.Array:
    """Sows and returns the weighted loss; gradients reach only the conv.

    attention: the layer's RelativeAttention (its query/key/value projections);
    norm: the LayerNorm the layer applies to its context; x_norm: the
    normalised segment; old, old_valid: evicted memories and which are real.
    """
    attention, norm = frozen(attention), frozen(norm)
    old = jax.lax.stop_gradient(old_BxLxE)
    compressed = self(old)
    c = self.compression_rate
    compressed_valid = old_valid_BxL.reshape(old.shape[0], -1, c).all(-1)
    q = attention.split(attention.query(jax.lax.stop_gradient(x_norm_BxLxE)))

    def content_attention(memory, valid):
      memory = norm(memory)
      k = attention.split(attention.key(memory))
      v = attention.split(attention.value(memory))
      return _dense(q, k, v, mask=valid, impl="xla").astype(jnp.float32)

    target = content_attention(old, old_valid_BxL)
    approximation = content_attention(compressed, compressed_valid)
    loss = self.reconstruction_weight * jnp.mean((target - approximation) ** 2)
    add_aux_loss(self, "reconstruction", loss)
    return loss

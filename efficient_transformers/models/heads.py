"""Classification heads of LRA: a pooled classifier and the two-tower matcher.

Pooling (`pooling`):
  "cls":  the hidden state of a prepended CLS vector (sets Encoder use_cls);
  "mean": the mean over real tokens only (mask = tokens != 0). LRA's MEAN
          averages every position, padding included; ours is invariant to
          appended padding.
  "pma":  the Set Transformer's pooling by multihead attention (Lee et al.
          2019, models/set_transformer.PMA): `pma_seeds` (k, default 1)
          learned seeds attend to the real tokens (padding gets zero weight);
          the k pooled vectors are concatenated, [B, k * E]. Usable with any
          encoder (no CLS is prepended).

Heads, as LRA's `classifier_head` and `classifier_head_dual` (NLI interaction):
  Classifier: pooled [B, E] -> Dense(mlp_dim) -> ReLU -> Dense(num_classes)
  Matcher:    u, v = pooled tower(tokens1), tower(tokens2) with ONE shared
              encoder; [u, v, u*v, u-v] [B, 4E] -> Dense(mlp_dim) -> ReLU
              -> Dense(mlp_dim // 2) -> ReLU -> Dense(num_classes)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from efficient_transformers.models.encoder import Encoder
from efficient_transformers.models.set_transformer import PMA

POOLINGS = ("cls", "mean", "pma")


def _check_pooling(pooling: str) -> None:
  if pooling not in POOLINGS:
    raise ValueError(
        f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")


def pool(hidden_BxLxE: jax.Array, mask_BxL: jax.Array,
         pooling: str) -> jax.Array:
  """[B, L, E] hidden states and bool [B, L] mask -> [B, E] ("cls", "mean";
  "pma" has parameters: PooledEncoder)."""
  if pooling == "pma":
    raise ValueError("pooling 'pma' has learned seeds: use PooledEncoder")
  if pooling == "cls":
    return hidden_BxLxE[:, 0]
  weights_BxL = mask_BxL.astype(hidden_BxLxE.dtype)
  total_BxE = jnp.einsum("ble,bl->be", hidden_BxLxE, weights_BxL)
  count_Bx1 = jnp.maximum(weights_BxL.sum(axis=1, keepdims=True), 1.0)
  return total_BxE / count_Bx1


class PooledEncoder(nnx.Module):
  """The Encoder followed by pooling: tokens [B, L] -> [B, emb_dim].

  pooling "cls" prepends a CLS vector (Encoder use_cls) and returns its state;
  "mean" averages the real (non-padding) positions; "pma" pools with
  `pma_seeds` seeds (PMA with the encoder's num_heads and mlp_dim) and returns
  [B, pma_seeds * emb_dim]. `out_dim` is the pooled width.
  """

  def __init__(self, vocab_size: int, max_length: int, *, pooling: str,
               pma_seeds: int = 1, rngs: nnx.Rngs, **encoder_kw):
    _check_pooling(pooling)
    self.pooling = pooling
    self.encoder = Encoder(vocab_size, max_length, use_cls=pooling == "cls",
                           rngs=rngs, **encoder_kw)
    self.out_dim = encoder_kw["emb_dim"] * (pma_seeds if pooling == "pma" else 1)
    if pooling == "pma":
      self.pma = PMA(encoder_kw["emb_dim"], encoder_kw["num_heads"],
                     num_seeds=pma_seeds, mlp_dim=encoder_kw["mlp_dim"], rngs=rngs)
    else:
      self.pma = None

  def __call__(self, tokens: jax.Array, *, deterministic: bool,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    hidden, mask = self.encoder(tokens, deterministic=deterministic, rngs=rngs)
    if self.pma is not None:
      pooled_BxKxE = self.pma(hidden, mask=mask)
      return pooled_BxKxE.reshape(pooled_BxKxE.shape[0], -1)
    return pool(hidden, mask, self.pooling)


class Classifier(nnx.Module):
  """Encoder + pooling + MLP head: tokens [B, L] -> logits [B, num_classes].

  Args:
    vocab_size, max_length: as Encoder.
    num_classes: output classes.
    pooling: "cls", "mean" or "pma".
    pma_seeds: PMA's number of seeds k (pooling "pma" only).
    rngs: parameter initialisation.
    **encoder_kw: Encoder's sizes and mechanism (num_layers, emb_dim,
      num_heads, mlp_dim, qkv_dim, attention, attention_kw, dropout_rate,
      position).
  """

  def __init__(self, vocab_size: int, max_length: int, *, num_classes: int,
               pooling: str = "cls", pma_seeds: int = 1, rngs: nnx.Rngs,
               **encoder_kw):
    self.encoder = PooledEncoder(vocab_size, max_length, pooling=pooling,
                                 pma_seeds=pma_seeds, rngs=rngs, **encoder_kw)
    mlp_dim = encoder_kw["mlp_dim"]
    self.hidden = nnx.Linear(self.encoder.out_dim, mlp_dim, rngs=rngs)
    self.logits = nnx.Linear(mlp_dim, num_classes, rngs=rngs)

  def __call__(self, tokens: jax.Array, *, deterministic: bool,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """int tokens [B, L] (0 = padding) -> logits [B, num_classes]."""
    pooled_BxE = self.encoder(tokens, deterministic=deterministic, rngs=rngs)
    return self.logits(jax.nn.relu(self.hidden(pooled_BxE)))


class Matcher(nnx.Module):
  """LRA retrieval two-tower model: one shared encoder, NLI-style interaction.

  Args:
    vocab_size, max_length: as Encoder (max_length per document).
    num_classes: output classes (2 for LRA retrieval).
    pooling: "cls", "mean" or "pma".
    pma_seeds: PMA's number of seeds k (pooling "pma" only).
    rngs: parameter initialisation.
    **encoder_kw: as Classifier.
  """

  def __init__(self, vocab_size: int, max_length: int, *, num_classes: int = 2,
               pooling: str = "cls", pma_seeds: int = 1, rngs: nnx.Rngs,
               **encoder_kw):
    self.encoder = PooledEncoder(vocab_size, max_length, pooling=pooling,
                                 pma_seeds=pma_seeds, rngs=rngs, **encoder_kw)
    mlp_dim = encoder_kw["mlp_dim"]
    self.hidden1 = nnx.Linear(4 * self.encoder.out_dim, mlp_dim, rngs=rngs)
    self.hidden2 = nnx.Linear(mlp_dim, mlp_dim // 2, rngs=rngs)
    self.logits = nnx.Linear(mlp_dim // 2, num_classes, rngs=rngs)

  def __call__(self, tokens1: jax.Array, tokens2: jax.Array, *,
               deterministic: bool, rngs: nnx.Rngs | None = None) -> jax.Array:
    """int tokens1 [B, L1], tokens2 [B, L2] -> logits [B, num_classes]."""
    u_BxE = self.encoder(tokens1, deterministic=deterministic, rngs=rngs)
    v_BxE = self.encoder(tokens2, deterministic=deterministic, rngs=rngs)
    features_Bx4E = jnp.concatenate(
        [u_BxE, v_BxE, u_BxE * v_BxE, u_BxE - v_BxE], axis=-1)
    h = jax.nn.relu(self.hidden1(features_Bx4E))
    h = jax.nn.relu(self.hidden2(h))
    return self.logits(h)

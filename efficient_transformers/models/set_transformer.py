"""Set Transformer blocks: MAB, SAB, ISAB, PMA, and the `isab` inducing points.

Paper: Lee et al. 2019, "Set Transformer: A Framework for Attention-based
Permutation-Invariant Neural Networks" (Sec. 3).
Family: neural memory (Tay et al.'s survey): m learned inducing points (ISAB)
  or k learned seeds (PMA) form a small global memory.
Complexity (n set elements, width d): SAB O(n^2 d); ISAB O(n m d) time and
  O(n m) memory; PMA O(n k d). Causal: no (sets are unordered).

Blocks, as the paper writes them (Multihead without biases, per-head scaling
1/sqrt(d / num_heads); Multihead(Q, K, V) = concat_j(head_j) W_o):

    MAB(X, Y) = LN(H + rFF(H)),  H = LN(X + Multihead(X, Y, Y))
    SAB(X)    = MAB(X, X)                                          O(n^2)
    ISAB_m(X) = MAB(X, MAB(I, X)),  I in R^{m x d} learned         O(n m)
    PMA_k(Z)  = MAB(S, rFF(Z)),     S in R^{k x d} learned seeds   O(n k)

rFF (row-wise feed-forward, unspecified in the paper beyond "row-wise"):
Dense(mlp_dim) -> ReLU -> Dense(d), with biases. Padding: `mask` (bool
[B, n], True = real element) removes padded elements from every attention
over the set, so they contribute nothing to the ISAB summary or PMA's pooling.

Where the official code (juho-lee/set_transformer, modules.py) differs, and
what we do (the paper):
  - it scales by 1/sqrt(dim_V), the full width; we scale per head;
  - its q, k, v projections have biases; ours do not (the paper's W matrices);
  - its residual adds the projected query (fc_q(X)), not X; we add X;
  - its rFF is one Linear + ReLU added residually, with no output projection
    W_o after the heads; we use W_o and the two-layer rFF above;
  - its LayerNorms are off by default (ln=False); ours are on
    (`layer_norm=True`);
  - its PMA omits rFF(Z) before pooling; ours applies it;
  - it has no padding masks.

`InducingPoints` is different: it is the mechanism module of the attention
function `isab` (attention/isab.py, `config.model.attention = "isab"`), the
attention-function form of ISAB used inside the ordinary encoder block. It
owns `num_inducing` points per layer directly in each head's query space
(the paper's I W_q: the query projection of the first MAB only ever sees I,
so learning the product is a reparametrisation).
"""

from __future__ import annotations

from typing import Any, Mapping

import einops
import jax
import jax.numpy as jnp
from flax import nnx

from efficient_transformers.attention.dense import dense

_XAVIER = jax.nn.initializers.xavier_uniform()


class InducingPoints(nnx.Module):
  """`MECHANISM_MODULES["isab"]`: learned inducing points [m, heads, head_dim].

  Layer option (attention_kw, not passed to the function): `num_inducing` m
  (default 32, the official code's num_inds). xavier_uniform init over
  [m, heads * head_dim], as the official code's I.
  """

  layer_options = ("num_inducing",)

  def __init__(self, *, emb_dim: int, num_heads: int, head_dim: int,
               max_length: int | None, attention_kw: Mapping[str, Any],
               rngs: nnx.Rngs):
    del emb_dim, max_length
    num_inducing = int(attention_kw.get("num_inducing", 32))
    if num_inducing < 1:
      raise ValueError(f"num_inducing must be >= 1, got {num_inducing}")
    points = _XAVIER(rngs.params(), (num_inducing, num_heads * head_dim))
    self.inducing = nnx.Param(points.reshape(num_inducing, num_heads, head_dim))

  def __call__(self, x, context, *, deterministic: bool, rngs=None) -> dict:
    del x, context, deterministic, rngs
    return {"inducing": self.inducing[...]}


class RowFF(nnx.Module):
  """rFF: Dense(mlp_dim) -> ReLU -> Dense(dim), applied to every element."""

  def __init__(self, dim: int, mlp_dim: int, *, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(dim, mlp_dim, kernel_init=_XAVIER, rngs=rngs)
    self.out = nnx.Linear(mlp_dim, dim, kernel_init=_XAVIER, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.out(jax.nn.relu(self.hidden(x)))


class MAB(nnx.Module):
  """Multihead attention block MAB(X, Y): X [B, nx, d] attends to Y [B, ny, d].

  Args:
    dim: width d of X, Y and the output.
    num_heads: heads; each has d // num_heads features.
    mlp_dim: hidden width of rFF (default d).
    layer_norm: the paper's two LayerNorms (the official code's ln=True).
    rngs: parameter initialisation.
  """

  def __init__(self, dim: int, num_heads: int, *, mlp_dim: int | None = None,
               layer_norm: bool = True, rngs: nnx.Rngs):
    if dim % num_heads:
      raise ValueError(f"MAB width {dim} is not divisible by num_heads {num_heads}")
    self.num_heads = num_heads

    def projection():
      return nnx.Linear(dim, dim, use_bias=False, kernel_init=_XAVIER, rngs=rngs)

    self.query, self.key, self.value, self.out = (projection() for _ in range(4))
    self.rff = RowFF(dim, mlp_dim or dim, rngs=rngs)
    norm = lambda: nnx.LayerNorm(dim, rngs=rngs) if layer_norm else None
    self.attention_norm, self.rff_norm = norm(), norm()

  def multihead(self, x, y, mask=None):
    """Multihead(X, Y, Y) = concat_j softmax(q_j k_j^T / sqrt(d_h)) v_j W_o."""
    split = lambda t: einops.rearrange(t, "b t (n h) -> b t n h", n=self.num_heads)
    heads_BxTxNxH = dense(split(self.query(x)), split(self.key(y)),
                          split(self.value(y)), mask=mask)
    return self.out(einops.rearrange(heads_BxTxNxH, "b t n h -> b t (n h)"))

  def __call__(self, x: jax.Array, y: jax.Array, *,
               mask: jax.Array | None = None) -> jax.Array:
    """x [B, nx, d], y [B, ny, d], mask bool [B, ny] (True = real) -> [B, nx, d]."""
    norm = lambda f, t: t if f is None else f(t)
    h = norm(self.attention_norm, x + self.multihead(x, y, mask))
    return norm(self.rff_norm, h + self.rff(h))


class SAB(nnx.Module):
  """Set attention block SAB(X) = MAB(X, X): O(n^2), permutation equivariant."""

  def __init__(self, dim: int, num_heads: int, *, mlp_dim: int | None = None,
               layer_norm: bool = True, rngs: nnx.Rngs):
    self.mab = MAB(dim, num_heads, mlp_dim=mlp_dim, layer_norm=layer_norm, rngs=rngs)

  def __call__(self, x: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
    return self.mab(x, x, mask=mask)


def _learned_rows(rows: int, dim: int, rngs: nnx.Rngs) -> nnx.Param:
  if rows < 1:
    raise ValueError(f"need at least one inducing point / seed, got {rows}")
  return nnx.Param(_XAVIER(rngs.params(), (rows, dim)))


def _tile(rows_MxD: jax.Array, batch: int) -> jax.Array:
  return jnp.broadcast_to(rows_MxD[None], (batch,) + rows_MxD.shape)


class ISAB(nnx.Module):
  """Induced set attention block ISAB_m(X) = MAB(X, MAB(I, X)): O(n m).

  Args:
    dim, num_heads, mlp_dim, layer_norm: as MAB (both MABs).
    num_inducing: m learned inducing points I [m, dim] (xavier_uniform).
    rngs: parameter initialisation.
  """

  def __init__(self, dim: int, num_heads: int, *, num_inducing: int,
               mlp_dim: int | None = None, layer_norm: bool = True,
               rngs: nnx.Rngs):
    self.inducing = _learned_rows(num_inducing, dim, rngs)
    mab = lambda: MAB(dim, num_heads, mlp_dim=mlp_dim, layer_norm=layer_norm,
                      rngs=rngs)
    self.summarize, self.broadcast = mab(), mab()

  def summary(self, x: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
    """H = MAB(I, X): [B, m, dim]; padded elements of x contribute nothing."""
    return self.summarize(_tile(self.inducing[...], x.shape[0]), x, mask=mask)

  def __call__(self, x: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
    """x [B, n, dim], mask bool [B, n] -> [B, n, dim]."""
    return self.broadcast(x, self.summary(x, mask=mask))


class PMA(nnx.Module):
  """Pooling by multihead attention PMA_k(Z) = MAB(S, rFF(Z)): O(n k).

  Permutation invariant; padded elements get zero pooling weight. With one
  seed, its attention is a weighted mean of the elements' values (weights:
  a softmax over the real elements).

  Args:
    dim, num_heads, mlp_dim, layer_norm: as MAB (mlp_dim also sizes the rFF
      applied to Z).
    num_seeds: k learned seed vectors S [k, dim] (xavier_uniform).
    rngs: parameter initialisation.
  """

  def __init__(self, dim: int, num_heads: int, *, num_seeds: int = 1,
               mlp_dim: int | None = None, layer_norm: bool = True,
               rngs: nnx.Rngs):
    self.seeds = _learned_rows(num_seeds, dim, rngs)
    self.rff = RowFF(dim, mlp_dim or dim, rngs=rngs)
    self.mab = MAB(dim, num_heads, mlp_dim=mlp_dim, layer_norm=layer_norm,
                   rngs=rngs)

  def __call__(self, z: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
    """z [B, n, dim], mask bool [B, n] -> [B, num_seeds, dim]."""
    return self.mab(_tile(self.seeds[...], z.shape[0]), self.rff(z), mask=mask)

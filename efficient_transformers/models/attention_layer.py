"""Multi-head attention layer: projections around any registered mechanism.

Paper: Vaswani et al. 2017 (multi-head attention); the mechanism in the middle
is whichever `efficient_transformers.attention` registers under `attention`.

    x [B, Tq, E], context [B, Tk, E]
      q = x W_q, k = context W_k, v = context W_v     E -> qkv_dim, split into
                                                       num_heads heads of
                                                       qkv_dim // num_heads
      out = attention.get(attention)(q, k, v, mask=, causal=, **options)
      y = concat_heads(out) W_o                        qkv_dim -> E

As in LRA's `SelfAttention`: no biases, xavier_uniform kernels.

No attention-probability dropout: efficient mechanisms never materialise the
attention probabilities, so there is nothing to drop. LRA's
`attention_dropout_rate` is therefore not applied, for any mechanism.

Options: `attention_kw` (a dict, or an ml_collections ConfigDict) is passed to
the mechanism as keyword options. Values must be plain Python (numbers,
strings, tuples; lists become tuples) because they are static structure of the
module; arrays and random keys are parameters, which belong to a mechanism
module (below).

`attention_kw["shared_qk"]` (default False; Reformer's shared-QK attention)
is consumed by the layer itself: there is no key projection, keys are the
query projection of the context (k = q in self-attention).

Mechanism-owned parameters (the extension point): a mechanism that needs
learned or random tensors (Linformer projections, Performer features, routing
centroids, ...) registers a factory in `MECHANISM_MODULES[name]`:

    factory(*, emb_dim, num_heads, head_dim, max_length, attention_kw, rngs)
        -> nnx.Module
    module(x, context, *, deterministic, rngs) -> dict of extra keyword options

`max_length` is the longest key sequence the layer will see (the encoder's
max_length, CLS included; None when unknown), for parameters sized by length
(Linformer projections, Synthesizer weights). A module may consume options
that are not the function's (e.g. Linformer's `low_rank`): it lists them in
its `layer_options` attribute and the layer does not pass them to the function.

`x` [B, Tq, E] and `context` [B, Tk, E] are the layer's inputs (e.g. for
Longformer's separate global projections); `deterministic` and `rngs` are the
call's (e.g. for random features redrawn in training, fixed at evaluation).
A module that also needs the call's projected `q` [B, Tq, N, H], `k`
[B, Tk, N, H], key padding `mask` or `causal` flag (Routing centroids,
Sinkhorn's sorter) names them in its `call_inputs` attribute and receives
them as keyword arguments.

When the layer's attention name is in `MECHANISM_MODULES`, the layer creates
that module at construction (as `self.mechanism`) and merges its options over
`attention_kw` at every call.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import einops
import jax
from flax import nnx

from efficient_transformers import attention as attention_lib
from efficient_transformers.models.longformer_projections import LongformerGlobalProjections
from efficient_transformers.models.memory_compressed_conv import MemoryCompressedConv
from efficient_transformers.models.low_rank_projections import LinformerProjections
from efficient_transformers.models.nystrom_conv import NystromConv
from efficient_transformers.models.random_features import PerformerFeatures
from efficient_transformers.models.routing_centroids import RoutingCentroids
from efficient_transformers.models.sinkhorn_sorter import SinkhornSorter
from efficient_transformers.models.lsh_hashing import LSHRandomness
from efficient_transformers.models.set_transformer import InducingPoints
from efficient_transformers.models.synthesizer_weights import (SynthesizerDenseWeights,
                                                               SynthesizerRandomWeights)

MECHANISM_MODULES: dict[str, Callable[..., nnx.Module]] = {}
MECHANISM_MODULES["longformer"] = LongformerGlobalProjections
MECHANISM_MODULES["memory_compressed"] = MemoryCompressedConv
MECHANISM_MODULES["linformer"] = LinformerProjections
MECHANISM_MODULES["nystromformer"] = NystromConv
MECHANISM_MODULES["performer"] = PerformerFeatures
MECHANISM_MODULES["routing"] = RoutingCentroids
MECHANISM_MODULES["sinkhorn"] = SinkhornSorter
MECHANISM_MODULES["reformer"] = LSHRandomness
MECHANISM_MODULES["synthesizer_dense"] = SynthesizerDenseWeights
MECHANISM_MODULES["synthesizer_random"] = SynthesizerRandomWeights
MECHANISM_MODULES["isab"] = InducingPoints


def _freeze(value: Any) -> Any:
  """Lists become tuples so that options are hashable static structure."""
  if isinstance(value, (list, tuple)):
    return tuple(_freeze(v) for v in value)
  return value


def freeze_options(attention_kw: Mapping[str, Any] | None
                   ) -> tuple[tuple[str, Any], ...]:
  """attention_kw (dict, ConfigDict or None) -> sorted hashable pairs."""
  options = tuple(sorted(
      (str(k), _freeze(v)) for k, v in dict(attention_kw or {}).items()))
  for key, value in options:
    try:
      hash(value)
    except TypeError:
      raise ValueError(
          f"attention_kw[{key!r}] = {value!r} is not a plain Python value;"
          " arrays, keys and learned tensors belong to a MECHANISM_MODULES"
          " module") from None
  return options


class AttentionLayer(nnx.Module):
  """Projections + registered attention + output projection.

  Args:
    emb_dim: input and output width E.
    num_heads: number of heads N.
    qkv_dim: total width of q, k, v across heads (default emb_dim); each head
      has qkv_dim // num_heads features.
    attention: registered mechanism name (`efficient_transformers.attention`).
    attention_kw: keyword options for the mechanism.
    max_length: longest key sequence, for a mechanism module's parameters.
    rngs: parameter initialisation.
  """

  def __init__(self, emb_dim: int, num_heads: int, *,
               qkv_dim: int | None = None, attention: str = "dense",
               attention_kw: Mapping[str, Any] | None = None,
               max_length: int | None = None, rngs: nnx.Rngs):
    qkv_dim = emb_dim if qkv_dim is None else qkv_dim
    if qkv_dim % num_heads:
      raise ValueError(
          f"qkv_dim {qkv_dim} is not divisible by num_heads {num_heads}")
    self.attention = attention
    self.attention_fn = attention_lib.get(attention)  # unknown name fails here
    self.attention_options = freeze_options(attention_kw)
    # attention_kw["shared_qk"] (Reformer): consumed here, not passed to the
    # mechanism. Keys are the query projection of the context (k = q in
    # self-attention); the key projection is omitted.
    self.shared_qk = bool(dict(self.attention_options).get("shared_qk", False))
    self.attention_options = tuple(
        (k, v) for k, v in self.attention_options if k != "shared_qk")
    self.num_heads = num_heads
    head_dim = qkv_dim // num_heads

    def projection(d_in, d_out):
      return nnx.Linear(d_in, d_out, use_bias=False,
                        kernel_init=jax.nn.initializers.xavier_uniform(),
                        rngs=rngs)

    self.query = projection(emb_dim, qkv_dim)
    self.key = None if self.shared_qk else projection(emb_dim, qkv_dim)
    self.value = projection(emb_dim, qkv_dim)
    self.out = projection(qkv_dim, emb_dim)
    if attention in MECHANISM_MODULES:
      self.mechanism = MECHANISM_MODULES[attention](
          emb_dim=emb_dim, num_heads=num_heads, head_dim=head_dim,
          max_length=max_length,
          attention_kw=dict(self.attention_options), rngs=rngs)
    else:
      self.mechanism = None

  def __call__(self, x: jax.Array, context: jax.Array | None = None, *,
               mask: jax.Array | None = None, causal: bool = False,
               deterministic: bool = True,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Attends from x [B, Tq, E] to context [B, Tk, E] (default x).

    Args:
      x: queries' input [batch, q_len, emb_dim].
      context: keys' and values' input [batch, kv_len, emb_dim]; None = x.
      mask: optional bool [batch, kv_len] key padding over context, True = real.
      causal: query i sees keys j <= i.
      deterministic, rngs: passed to a mechanism module (if any).

    Returns:
      [batch, q_len, emb_dim].
    """
    context = x if context is None else context
    split = lambda t: einops.rearrange(t, "b t (n h) -> b t n h",
                                       n=self.num_heads)
    q_BxTxNxH = split(self.query(x))
    if self.shared_qk:
      k_BxSxNxH = q_BxTxNxH if context is x else split(self.query(context))
    else:
      k_BxSxNxH = split(self.key(context))
    v_BxSxNxH = split(self.value(context))
    options = self.mechanism_options(x, context, deterministic=deterministic,
                                     rngs=rngs, q=q_BxTxNxH, k=k_BxSxNxH,
                                     mask=mask, causal=causal)
    out_BxTxNxH = self.attention_fn(
        q_BxTxNxH, k_BxSxNxH, v_BxSxNxH, mask=mask, causal=causal, **options)
    return self.out(einops.rearrange(out_BxTxNxH, "b t n h -> b t (n h)"))

  def mechanism_options(self, x: jax.Array, context: jax.Array, *,
                        deterministic: bool = True,
                        rngs: nnx.Rngs | None = None, **call_inputs) -> dict:
    """The keyword options of the attention function for this call:
    attention_kw, less the mechanism module's layer_options, updated by the
    module's output (also used by models/decoding.py). `call_inputs` (q, k,
    mask, causal) reach the module when listed in its `call_inputs`."""
    options = dict(self.attention_options)
    if self.mechanism is not None:
      for key in getattr(self.mechanism, "layer_options", ()):
        options.pop(key, None)
      wanted = getattr(self.mechanism, "call_inputs", ())
      missing = [name for name in wanted if name not in call_inputs]
      if missing:
        raise ValueError(f"{self.attention}'s module needs {missing} at this call")
      options.update(self.mechanism(
          x, context, deterministic=deterministic, rngs=rngs,
          **{name: call_inputs[name] for name in wanted}))
    return options

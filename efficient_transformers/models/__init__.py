"""Flax NNX models around any registered attention mechanism.

One encoder (`encoder.Encoder`) serves every head; the attention layer
(`attention_layer.AttentionLayer`) does the projections, calls
`efficient_transformers.attention.get(name)` and owns mechanism parameters
through `attention_layer.MECHANISM_MODULES`.

Heads (`HEADS`, chosen by the training loop by name):
  "classifier":      Classifier(tokens) -> [B, num_classes]
                     (ListOps, text, image, Pathfinder)
  "matcher":         Matcher(tokens1, tokens2) -> [B, num_classes] (retrieval)
  "causal_lm":       CausalLM(tokens) -> [B, L, vocab]
  "encoder_decoder": EncoderDecoder(source, target) -> [B, Lt, vocab]
  "transformer_xl":  TransformerXL(tokens) -> [B, L, vocab], segment memory in
                     nnx.Cache (Transformer-XL, Compressive Transformer)
Every head's `__call__` takes `*, deterministic: bool, rngs: nnx.Rngs | None`;
dropout randomness is passed at call time, and `nnx.state(model)` holds only
`nnx.Param` variables.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
from flax import nnx

from efficient_transformers.models.attention_layer import (MECHANISM_MODULES,
                                                           AttentionLayer)
from efficient_transformers.models.block import Block
from efficient_transformers.models.embedding import (Embedder,
                                                     sinusoidal_positions)
from efficient_transformers.models.encoder import Encoder
from efficient_transformers.models.heads import Classifier, Matcher
from efficient_transformers.models.lm import CausalLM, EncoderDecoder
from efficient_transformers.models.transformer_xl import TransformerXL

HEADS: dict[str, type[nnx.Module]] = {
    "classifier": Classifier,
    "matcher": Matcher,
    "causal_lm": CausalLM,
    "encoder_decoder": EncoderDecoder,
    "transformer_xl": TransformerXL,  # segment memory (+ compressive), models/transformer_xl.py
}

# Keys of the "transformer_xl" head only -> default (see TransformerXL).
_TRANSFORMER_XL_KEYS = {"mem_len": 0, "eval_mem_len": None, "cmem_len": 0,
                        "compression_rate": 3, "reconstruction_weight": 1.0,
                        "batch_size": None}

# model_config key -> default when absent (None = required).
_ENCODER_KEYS = {
    "attention": None, "num_layers": None, "emb_dim": None, "num_heads": None,
    "mlp_dim": None, "attention_kw": {}, "qkv_dim": None, "dropout_rate": 0.1,
    "position": "sinusoidal", "layer_overrides": None,
    "moe": None,  # Mixture-of-Experts FFN options, models/moe.py
    "funnel": None,  # Funnel downsampling options, models/funnel.py
    "reversible": False, "remat": False,  # models/reversible.py
    "ffn_chunk_size": None,  # reversible stack's chunked feed-forward
}
_REQUIRED = ("attention", "num_layers", "emb_dim", "num_heads", "mlp_dim")


def build(model_config: Mapping[str, Any], *, head: str, vocab_size: int,
          num_classes: int, max_length: int, rngs: nnx.Rngs) -> nnx.Module:
  """Builds HEADS[head] from a model config (dict or ml_collections ConfigDict).

  Keys read: attention, num_layers, emb_dim, num_heads, mlp_dim (required);
  attention_kw ({}), layer_overrides (None; see Encoder), qkv_dim (emb_dim),
  dropout_rate (0.1), position ("sinusoidal"), pooling ("cls"; classifier and matcher only),
  pma_seeds (1; pooling "pma" only, models/set_transformer.PMA),
  moe (None; models/moe.py), funnel (None; models/funnel.py, encoders only),
  reversible (False), remat (False), ffn_chunk_size (None; models/reversible.py). Other keys are
  ignored. causal_lm and encoder_decoder ignore num_classes. transformer_xl
  also reads _TRANSFORMER_XL_KEYS (mem_len, eval_mem_len, cmem_len, ...).
  """
  if head not in HEADS:
    raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
  config = dict(model_config)
  missing = [k for k in _REQUIRED if k not in config]
  if missing:
    raise ValueError(f"model config lacks {', '.join(missing)}")
  encoder_kw = {k: config.get(k, default)
                for k, default in _ENCODER_KEYS.items()}
  if head in ("classifier", "matcher"):
    return HEADS[head](vocab_size, max_length, num_classes=num_classes,
                       pooling=config.get("pooling", "cls"),
                       pma_seeds=config.get("pma_seeds", 1), rngs=rngs,
                       **encoder_kw)
  if head == "transformer_xl":
    encoder_kw.update({k: config.get(k, default)
                       for k, default in _TRANSFORMER_XL_KEYS.items()})
  return HEADS[head](vocab_size, max_length, rngs=rngs, **encoder_kw)


def stage_lengths(model: nnx.Module, length: int) -> tuple[int, ...]:
  """Sequence length per stage of the model's first Encoder, for `length` tokens.

  One stage (length, plus CLS if any) unless the encoder has Funnel pooling;
  () if the model has no Encoder.
  """
  for _, node in nnx.iter_graph(model):
    if isinstance(node, Encoder):
      return node.stage_lengths(length)
  return ()


def count_params(model: nnx.Module) -> int:
  """Number of scalars in the model's nnx.Param variables."""
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


__all__ = [
    "HEADS", "build", "count_params", "stage_lengths", "MECHANISM_MODULES", "AttentionLayer",
    "Block", "Embedder", "sinusoidal_positions", "Encoder", "Classifier",
    "Matcher", "CausalLM", "EncoderDecoder",
]

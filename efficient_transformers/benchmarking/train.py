"""Train mode: a full training step of LRA's text classification model (LRA Table 2).

Each model is `presets.make(model, "text", overrides=...)` (the LRA text task's
model size: 4 layers, emb 256, MLP 1024, 4 heads; batch 32, byte-level
vocabulary of 257, 2 classes) with `data.max_length` set to the benchmarked
length and any size overridden by the caller; options derived from the sizes
are the presets' own (axial's grid from the length, in attention/axial.py;
Funnel's stages and BigBird's per-layer seeds from num_layers, in
presets.MODEL_FITS). The step is `training.steps.train_step` (AdamW,
dropout on, gradients of every parameter; compute dtype float32 or bfloat16)
on random tokens (no padding), its state from `steps.create_train_state`,
jitted with the state donated as in the training loop.

Models: every classifier preset of `presets.MODELS` (language-model presets
such as Transformer-XL have no text-classification form and are left out),
plus `EXTRA_MODELS` (variants that only the benchmark needs, e.g. LRA's
quadratic Transformer). A preset that fails is recorded as an error, not
raised.
"""

from __future__ import annotations

import functools
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp

from efficient_transformers import models
from efficient_transformers import presets
from efficient_transformers.benchmarking import measure
from efficient_transformers.training import steps
from efficient_transformers.training.optimizer import make_optimizer
from lra import text

TASK = "text"
HEAD = "classifier"
# name -> (preset, model config overrides).
EXTRA_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    # LRA's "Transformer": the quadratic score matrix (attention/dense.py impl
    # "xla"); the "transformer" preset is exact too but chunked, O(n) memory.
    "transformer_xla": ("transformer", {"attention_kw": {"impl": "xla"}}),
}
BASELINE = "transformer_xla"
SIZE_KEYS = ("num_layers", "emb_dim", "qkv_dim", "mlp_dim", "num_heads")


def default_models() -> list[str]:
  """EXTRA_MODELS + every preset that is a classifier (not a language model)."""
  return list(EXTRA_MODELS) + [name for name, preset in presets.MODELS.items()
                               if preset.get("head", HEAD) == HEAD]


def make_config(name: str, length: int, *, batch_size: int | None = None, **sizes):
  """The text config of model `name` at `length`, with sizes overridden."""
  preset, overrides = EXTRA_MODELS.get(name, (name, {}))
  if name not in default_models():
    raise ValueError(f"unknown model {name!r} (language models are not benchmarked"
                     f" on the text task); valid: {', '.join(default_models())}")
  for key in sizes:
    if key not in SIZE_KEYS:
      raise ValueError(f"unknown model size {key!r}; valid: {', '.join(SIZE_KEYS)}")
  model = {**overrides, **{k: v for k, v in sizes.items() if v is not None}}
  if sizes.get("emb_dim") is not None and sizes.get("qkv_dim") is None:
    model["qkv_dim"] = sizes["emb_dim"]
  train = {} if batch_size is None else {"batch_size": batch_size}
  return presets.make(preset, TASK, overrides={"data": {"max_length": length},
                                               "model": model, "train": train})


def random_batch(batch_size: int, length: int, seed: int = 0) -> dict[str, jax.Array]:
  """Random byte tokens (no padding) and labels, as lra.text batches them."""
  k1, k2 = jax.random.split(jax.random.key(seed))
  return {"inputs": jax.random.randint(k1, (batch_size, length), 1, text.VOCAB_SIZE,
                                       jnp.int32),
          "targets": jax.random.randint(k2, (batch_size,), 0, text.NUM_CLASSES, jnp.int32)}


def measure_one(name: str, length: int, *, repeats: int, memory_limit_gb: float,
                isolated: bool = False, batch_size: int | None = None,
                dtype: str = "float32", **sizes) -> dict[str, Any]:
  """One record: the train step of model `name` at `length` (compute `dtype`)."""
  record = {"model": name, "length": length, "phase": "train_step"}
  try:
    config = make_config(name, length, batch_size=batch_size, **sizes)
    record.update(attention=config.model.attention, batch_size=config.train.batch_size,
                  **{key: config.model.get(key) for key in SIZE_KEYS})
    model = models.build(config.model, head=HEAD, vocab_size=text.VOCAB_SIZE,
                         num_classes=text.NUM_CLASSES, max_length=length,
                         rngs=nnx.Rngs(params=0))
    record["num_params"] = models.count_params(model)
    tx = make_optimizer(config.train)
    graphdef, state = steps.create_train_state(model, tx)
    del model
    batch = random_batch(config.train.batch_size, length)
    step = jax.jit(functools.partial(steps.train_step, graphdef=graphdef, tx=tx,
                                     head=HEAD, seed=0, dtype=dtype), donate_argnums=0)
    holder = {"state": state}

    def call(compiled):  # each step feeds its new state to the next
      holder["state"], sums = compiled(holder["state"], batch)
      return sums["loss"]

    result = measure.run(lambda: step.lower(state, batch), call, repeats=repeats,
                         memory_limit_gb=memory_limit_gb, isolated=isolated)
  except Exception as e:  # noqa: BLE001 -- one model's failure is data
    hint = ("; if the preset needs adapting to the length or sizes, see"
            " presets.MODEL_FITS")
    return {**record, "status": "error",
            "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{hint}"}
  record.update(result)
  if result["status"] == "ok":
    record["steps_per_sec"] = 1.0 / result["seconds"]
  return record


__all__ = ["BASELINE", "EXTRA_MODELS", "default_models", "make_config", "measure_one",
           "random_batch"]

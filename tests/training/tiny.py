"""A tiny ListOps run (seconds on CPU) shared by the training tests."""

from efficient_transformers import presets

OVERRIDES = {
    "data.max_length": 40, "data.num_train_examples": 96,
    "data.generator.num_eval_examples": 24, "data.generator.min_length": 10,
    "data.generator.max_depth": 4,
    "model.num_layers": 1, "model.emb_dim": 16, "model.qkv_dim": 16,
    "model.mlp_dim": 16, "model.num_heads": 2,
    "train.batch_size": 8, "train.eval_batch_size": 16, "train.warmup_steps": 5,
    "train.num_train_steps": 30, "train.eval_every_steps": 5,
    "train.checkpoint_every_steps": 3, "train.log_every_steps": 2,
}


def config(**overrides):
  cfg = presets.make("transformer", "listops", "quick")
  for key, value in {**OVERRIDES, **overrides}.items():
    node = cfg
    *path, leaf = key.split(".")
    for part in path:
      node = node[part]
    node[leaf] = value
  return cfg


def flags(**overrides) -> list[str]:
  return [f"--config.{k}={v}" for k, v in {**OVERRIDES, **overrides}.items()]

"""Training: optimizer and schedules, pure train/eval steps, checkpoints,
metrics, and the loop behind train.py (`train_and_evaluate`)."""

from efficient_transformers.training import sharding
from efficient_transformers.training.loop import train_and_evaluate

__all__ = ["train_and_evaluate"]

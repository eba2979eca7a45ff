"""efficient_transformers: every family of Tay et al., "Efficient Transformers: A Survey".

Sub-packages (dependencies point one way, left to right):
  training/ -> models/ -> attention/ -> kernels/

- `attention`: pure-functional attention mechanisms (jax.lax), one file each, and
  the registry `attention.get(name)`.
- `models`: Flax NNX modules (embeddings, attention layer, blocks, encoder,
  heads) built around any registered mechanism.
- `training`: the train/eval loop behind `train.py`.
"""

__version__ = "0.1.0"

r"""Transformer (dense attention) on LRA Path-X: 128 x 128 = 16,384 pixels.

Reproduces LRA's Path-X task (google-research/long-range-arena@cd31e5c:
lra_benchmarks/image/configs/pathfinder128/base_pathfinder128_config.py +
transformer_base.py): 1 layer, emb 32, 2 heads, qkv 16, MLP 32, MEAN pooling,
learned positions, batch 64, 500,000 steps (200 epochs), cosine decay, gradient
clipping 1.0, on the LRA release's pathfinder128/curv_contour_length_14 images
(80/10/10 split). Expected test accuracy: none above chance -- LRA reports FAIL
(about 50%) for every model (Table 1).

  python train.py --config=configs/transformer_pathx.py --workdir=workdirs/transformer_pathx \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release

Offline, small: 256 generated 128 x 128 images (easy level), 50 steps; it only
shows that the pipeline runs at this length (it does not learn):

  python train.py --config=configs/transformer_pathx.py:quick --workdir=workdirs/quick_pathx
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("transformer", "pathx", arg)

r"""Image Transformer 1-D local attention (Parmar et al. 2018) on LRA ListOps.

Options: the unmasked 1-D local attention (image_local_1d) with query blocks
of 256 and a flange of 128 positions on each side (t2t imagetransformer_base:
block_length 256, block_width 128); the rest is the LRA ListOps Transformer
setup (efficient_transformers/presets.py).
Expected test accuracy: none published (the Image Transformer is not in the
LRA paper).

  python train.py --config=configs/image_transformer_listops.py --workdir=workdirs/image_transformer_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/image_transformer_listops.py:quick --workdir=workdirs/quick_image_transformer
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("image_transformer", "listops", arg)

r"""Nystromformer (Xiong et al. 2021, Nystrom approximation with landmarks) on LRA ListOps.

Options: 128 landmarks (xformers' Nystromformer-128), 6 pseudo-inverse
iterations, depthwise conv skip of kernel 33 (the official code's). The rest is
the LRA ListOps Transformer setup (efficient_transformers/presets.py).
Expected test accuracy: none published with LRA's recipe (not in the LRA
paper); the Nystromformer repository reports 37.15 on ListOps with its own
recipe (2 layers, dim 64, mean pooling), xformers' Nystromformer-128 36.29.

  python train.py --config=configs/nystromformer_listops.py --workdir=workdirs/nystromformer_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/nystromformer_listops.py:quick --workdir=workdirs/quick_nystromformer
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("nystromformer", "listops", arg)

r"""Performer (Choromanski et al. 2020, FAVOR+ positive orthogonal random features) on LRA ListOps.

Options: softmax kernel, 256 features (the paper's default), redrawn every
training step and fixed at evaluation (models/random_features.py). LRA's
released ListOps config used nb_features=2, which may explain its low score.
The rest is the LRA ListOps Transformer setup
(efficient_transformers/presets.py).
Expected test accuracy: 18.01 (LRA paper, Table 1).

  python train.py --config=configs/performer_listops.py --workdir=workdirs/performer_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/performer_listops.py:quick --workdir=workdirs/quick_performer
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("performer", "listops", arg)

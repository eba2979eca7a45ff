r"""Routing Transformer (Roy et al. 2021, online k-means routing attention) on LRA ListOps.

Options: 8 clusters whose windows cover the sequence once
(window = ceil(length / 8)), EMA centroids (decay 0.999) and commitment loss
weight 1e-4, from the official code's hparams
(efficient_transformers/presets.py). The rest is the LRA ListOps Transformer
setup.
Expected test accuracy: none published (the Routing Transformer is not in the
LRA paper).

  python train.py --config=configs/routing_listops.py --workdir=workdirs/routing_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/routing_listops.py:quick --workdir=workdirs/quick_routing
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("routing", "listops", arg)

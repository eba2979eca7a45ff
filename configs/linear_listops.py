r"""Linear Transformer (Katharopoulos et al. 2020, elu+1 feature map) on LRA ListOps.

Options: phi = elu + 1 (the paper's); padding is masked (the LRA code ignored
it). The rest is the LRA ListOps Transformer setup
(efficient_transformers/presets.py).
Expected test accuracy: 16.13 (LRA paper, Table 1).

  python train.py --config=configs/linear_listops.py --workdir=workdirs/linear_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/linear_listops.py:quick --workdir=workdirs/quick_linear
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("linear", "listops", arg)

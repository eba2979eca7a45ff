r"""Local Attention (Liu et al. 2018 block attention; LRA's "Local Attention") on LRA ListOps.

Options: non-overlapping blocks of 50 tokens, LRA's default block_size
(lra_benchmarks/models/local/local.py; the ListOps config sets none). The rest
is the LRA ListOps Transformer setup (efficient_transformers/presets.py).
Expected test accuracy: 15.82 (LRA paper, Table 1).

  python train.py --config=configs/local_listops.py --workdir=workdirs/local_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/local_listops.py:quick --workdir=workdirs/quick_local
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("local", "listops", arg)

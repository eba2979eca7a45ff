r"""BigBird (Zaheer et al. 2020, ITC block-sparse attention) on LRA ListOps.

Options: block_size 64 as LRA's BigBird configs (lra_benchmarks/*/configs/
bigbird_base.py); window 3, 1 global block at each end, 3 random blocks per
query block (official and HF defaults); one random seed per layer. The rest is
the LRA ListOps Transformer setup (efficient_transformers/presets.py).
Expected test accuracy: 36.05 (LRA paper, Table 1).

  python train.py --config=configs/bigbird_listops.py --workdir=workdirs/bigbird_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/bigbird_listops.py:quick --workdir=workdirs/quick_bigbird
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("bigbird", "listops", arg)

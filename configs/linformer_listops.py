r"""Linformer (Wang et al. 2020, low-rank projections of keys and values) on LRA ListOps.

Options: k = 32 projected positions (LRA's low_rank_features), one projection
shared by keys, values and heads, not across layers (LRA paper App. B.1), sized
for 4097 positions and sliced (models/low_rank_projections.py). The rest is the
LRA ListOps Transformer setup (efficient_transformers/presets.py).
Expected test accuracy: 35.70 (LRA paper, Table 1).

  python train.py --config=configs/linformer_listops.py --workdir=workdirs/linformer_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/linformer_listops.py:quick --workdir=workdirs/quick_linformer
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("linformer", "listops", arg)

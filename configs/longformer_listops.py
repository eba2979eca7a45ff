r"""Longformer (Beltagy et al. 2020, sliding window + global attention) on LRA ListOps.

Options: 256 keys on each side of every token, LRA's sliding_window_size 512
(lra_benchmarks/models/longformer/longformer.py) read as the full band; no
dilation; the CLS token is the one global token, with its own global
projections Q_g, K_g, V_g (models/longformer_projections.py). LRA passes no
global_mask (no global token); the paper makes the classification token global.
The rest is the LRA ListOps Transformer setup
(efficient_transformers/presets.py).
Expected test accuracy: 35.63 (LRA paper, Table 1).

  python train.py --config=configs/longformer_listops.py --workdir=workdirs/longformer_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128; the band then covers every token):

  python train.py --config=configs/longformer_listops.py:quick --workdir=workdirs/quick_longformer
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("longformer", "listops", arg)

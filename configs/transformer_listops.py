r"""Transformer (dense attention) on LRA ListOps.

Reproduces LRA's released config (google-research/long-range-arena@cd31e5c:
lra_benchmarks/listops/configs/base_listops_config.py + transformer_base.py):
4 layers, emb 512, 8 heads, MLP 1024, batch 32, 5000 steps, length 2000.
Expected test accuracy: 36.37 (LRA paper, Table 1).

  python train.py --config=configs/transformer_listops.py --workdir=workdirs/transformer_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small, about 5 minutes on 2 CPU cores (generated data, length <= 128):

  python train.py --config=configs/transformer_listops.py:quick --workdir=workdirs/quick
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("transformer", "listops", arg)

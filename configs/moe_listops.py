r"""Mixture-of-Experts FFN (Switch Transformer, Fedus et al. 2021) with dense attention on LRA ListOps.

Options (efficient_transformers/presets.py "moe", models/moe.py): 8 experts,
Switch top-1 routing (--config.model.moe.router=top2 for GShard, Lepikhin et
al. 2020) in every other layer's MLP, capacity factor 1.25 in training and 2.0
at evaluation, groups of 1024 tokens (mesh-tensorflow MoE1D defaults),
load-balancing loss weight 0.01 (Switch) and router z-loss weight 0.001
(ST-MoE). The rest is the LRA ListOps Transformer setup.
Expected test accuracy: none published (MoE is not in the LRA paper).

  python train.py --config=configs/moe_listops.py --workdir=workdirs/moe_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length 128):

  python train.py --config=configs/moe_listops.py:quick --workdir=workdirs/quick_moe
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("moe", "listops", arg)

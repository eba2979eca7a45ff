r"""Set Transformer (Lee et al. 2019: induced set attention + PMA pooling) on LRA ListOps.

Options (efficient_transformers/presets.py, "set_transformer"): every layer's
attention is ISAB through m = 32 learned inducing points per layer
(`num_inducing`, the official code's num_inds; attention/isab.py, O(L * m)),
and the classifier pools with PMA, one seed (`pooling="pma"`, `pma_seeds=1`;
the paper's classification decoder, models/set_transformer.PMA). The rest is
the LRA ListOps Transformer setup. Expected test accuracy: none published (the
Set Transformer is not in the LRA paper's Table 1).

  python train.py --config=configs/set_transformer_listops.py --workdir=workdirs/set_transformer_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/set_transformer_listops.py:quick --workdir=workdirs/quick_set_transformer
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("set_transformer", "listops", arg)

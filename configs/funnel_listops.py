r"""Funnel-Transformer downsampling (Dai et al. 2020) with dense attention on LRA ListOps.

Options (efficient_transformers/presets.py "funnel", models/funnel.py): the 4
layers form two stages of 2 (block_sizes (2, 2); (1, 1) for the quick variant's
2 layers), the sequence is mean-pooled with stride 2 between them (the paper's
pooling_size 2; only the first layer's queries are pooled, "pool_q_only"), and
the CLS token is kept out of the pooling ("separate_cls"). The rest is the LRA
ListOps Transformer setup. block_sizes must sum to model.num_layers. The
training log reports the sequence length per stage.
Expected test accuracy: none published (Funnel is not in the LRA paper).

  python train.py --config=configs/funnel_listops.py --workdir=workdirs/funnel_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length 128):

  python train.py --config=configs/funnel_listops.py:quick --workdir=workdirs/quick_funnel
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("funnel", "listops", arg)

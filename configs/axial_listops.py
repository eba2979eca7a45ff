r"""Axial Transformer attention (Ho et al. 2019) on LRA ListOps.

Options: the sequence is laid out on a grid (shape) of exactly max_length
tokens, by default the near-square one (attention/axial.py grid): 40 x 50 for
ListOps' 2000 (8 x 16 for the quick variant's 128), with mean pooling so that
no CLS token changes the length; layers alternate column (axis 0) and row
(axis 1) attention. The rest is the LRA ListOps Transformer setup
(efficient_transformers/presets.py). The grid follows --config.data.max_length
(a prime length has none: set --config.model.attention_kw.shape='(h, w)').
Expected test accuracy: none published (axial attention is not in the LRA
paper).

  python train.py --config=configs/axial_listops.py --workdir=workdirs/axial_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length 128):

  python train.py --config=configs/axial_listops.py:quick --workdir=workdirs/quick_axial
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("axial", "listops", arg)

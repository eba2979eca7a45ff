r"""Synthesizer (Tay et al. 2020, factorized random synthetic attention) on LRA ListOps.

Options: LRA's default synthesizer_mode 'factorized_random' with k = 32,
trained, sized for 4097 positions (models/synthesizer_weights.py). The rest is
the LRA ListOps Transformer setup (efficient_transformers/presets.py).
Expected test accuracy: 36.99 (LRA paper, Table 1).

  python train.py --config=configs/synthesizer_listops.py --workdir=workdirs/synthesizer_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/synthesizer_listops.py:quick --workdir=workdirs/quick_synthesizer
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("synthesizer", "listops", arg)

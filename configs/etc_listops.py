r"""ETC global-local attention (Ainslie et al. 2020) on LRA ListOps.

Options: the CLS token is the single global token (num_global 1) and long
tokens attend within local_radius 84 (ETC's EtcConfig default); the rest is
the LRA ListOps Transformer setup (efficient_transformers/presets.py).
Expected test accuracy: none published (ETC is not in the LRA paper).

  python train.py --config=configs/etc_listops.py --workdir=workdirs/etc_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/etc_listops.py:quick --workdir=workdirs/quick_etc
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("etc", "listops", arg)

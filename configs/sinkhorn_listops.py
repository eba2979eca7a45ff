r"""Sinkhorn Transformer (Tay et al. 2020, Sparse Sinkhorn attention) on LRA ListOps.

Options: blocks of 50 (LRA's default), each attending to its own block and one
block sorted by a learned SortNet through Gumbel-Sinkhorn (temperature 0.75, 7
iterations: sinkhorn-transformer's defaults)
(efficient_transformers/presets.py). The rest is the LRA ListOps Transformer
setup.
Expected test accuracy: 33.67 (LRA paper, Table 1), from LRA's implementation,
which summed all blocks into every sorted block (models.md section 20): ours
does not, so the number may differ.

  python train.py --config=configs/sinkhorn_listops.py --workdir=workdirs/sinkhorn_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/sinkhorn_listops.py:quick --workdir=workdirs/quick_sinkhorn
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("sinkhorn", "listops", arg)

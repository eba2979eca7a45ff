r"""Sparse Transformer (Child et al. 2019, fixed factorised attention) on LRA ListOps.

Options: the "fixed" pattern with blocks of 50 and 10 summary positions per
block, merged in every head, as LRA's Sparse Transformer
(lra_benchmarks/utils/train_utils.py: Fixed1Pattern(block_size=50) and
Fixed2Pattern(block_size=50, c=10)); attention `strided`, options stride 50,
pattern "fixed", num_summary 10, heads "combined". LRA's Fixed2 marks c + 1
positions per block, ours the last c (see attention/strided.py). The rest is
the LRA ListOps Transformer setup (efficient_transformers/presets.py).
Expected test accuracy: 17.07 (LRA paper, Table 1, "Sparse Trans.").

  python train.py --config=configs/sparse_listops.py --workdir=workdirs/sparse_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/sparse_listops.py:quick --workdir=workdirs/quick_sparse
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("sparse", "listops", arg)

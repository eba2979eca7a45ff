r"""Reformer (Kitaev et al. 2020, LSH attention with shared QK) on LRA ListOps.

Options (efficient_transformers/presets.py, "reformer"): one hash round, 10
buckets and chunks of 200 positions, as LRA's ReformerAttention effectively
used (n_hashes=1, n_buckets=10, the sequence cut into 10 chunks); ordinary
residual layers as in LRA (model.reversible=True gives the paper's reversible
stack). Unlike LRA's code, logits are scaled by 1/sqrt(d), a token attends to
itself only when nothing else is available, and hashing is random per step
(attention/reformer.py). The quick variant keeps ~8 chunks: chunk_size 16 and 8
buckets for its 129 positions. The rest is the LRA ListOps Transformer setup
(efficient_transformers/presets.py).
Expected test accuracy: 37.27 (LRA paper, Table 1).

  python train.py --config=configs/reformer_listops.py --workdir=workdirs/reformer_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/reformer_listops.py:quick --workdir=workdirs/quick_reformer
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("reformer", "listops", arg)

r"""Memory-Compressed Transformer (Liu et al. 2018, T-DMCA) on LRA ListOps.

Options: layers alternate local attention over blocks of 256 (t2t
attention_loc_block_length) and memory-compressed attention with compression
3 (the paper's and t2t's attention_red_factor), as the paper's "LMLML" mix;
the compression convolution is learned per head. The rest is the LRA ListOps
Transformer setup (efficient_transformers/presets.py).
Expected test accuracy: none published (not in the LRA paper).

  python train.py --config=configs/memory_compressed_listops.py \
      --workdir=workdirs/memory_compressed_listops \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release/listops-1000

Offline, small (generated data, length <= 128):

  python train.py --config=configs/memory_compressed_listops.py:quick \
      --workdir=workdirs/quick_memory_compressed
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("memory_compressed", "listops", arg)

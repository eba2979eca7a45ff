r"""Transformer-XL (Dai et al. 2019) on byte-level language modelling (task `lm`).

Segment-level recurrence with relative positions (models/transformer_xl.py)
on the IMDB reviews as one byte stream (lra/byte_lm.py; not an LRA task).
Options: presets.MODELS["transformer_xl"]; sizes and optimiser of the paper's
enwik8 base (kimiyoung/transformer-xl, run_enwik8_base.sh; presets.TASKS
["lm"]): 12 layers, d 512, 8 heads, segments and memory of 512, batch
22; evaluation with a memory of 2048 (the paper's base evaluates with 2100).
Expected: none published (not an LRA task; the paper's enwik8 base reaches
1.06 bits per character on another corpus). Metric: bits_per_byte.

  python train.py --config=configs/transformer_xl_lm.py --workdir=workdirs/txl_lm

Offline, small (2 layers of 64, segments of 128, memory 128 in training and
512 at evaluation, 1000 steps); without memory, for comparison, add
--config.model.mem_len=0 --config.model.eval_mem_len=0:

  python train.py --config=configs/transformer_xl_lm.py:quick --workdir=workdirs/txl_quick
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("transformer_xl", "lm", arg)

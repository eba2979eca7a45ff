r"""Transformer (dense attention) on LRA Retrieval: AAN citation matching.

Reproduces LRA's Retrieval task (google-research/long-range-arena@cd31e5c:
lra_benchmarks/matching/configs/base_match_config.py + transformer_base.py):
two towers sharing one encoder (4 layers, emb 128, 4 heads, MLP 512), CLS
pooling, [u, v, u*v, u-v] head, 4000 bytes per document, batch 32, 5000
steps, on LRA's new_aan_pairs.{train,eval,test}.tsv.
Expected test accuracy: 57.46 (LRA paper, Table 1).

  python scripts/prepare_data.py --output_dir=$HOME/lra_data --tasks=retrieval \
      --lra_release=$HOME/lra_release.gz
  python train.py --config=configs/transformer_retrieval.py --workdir=workdirs/transformer_retrieval \
      --config.data.data_dir=$HOME/lra_data/tsv_data

There is no offline source: the quick variant (2 small layers, 1000 bytes per
document) still needs the AAN files (same --config.data.data_dir).
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("transformer", "retrieval", arg)

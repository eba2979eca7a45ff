r"""Transformer (dense attention) on LRA Pathfinder: 32 x 32 = 1024 pixels.

Reproduces LRA's Pathfinder task (google-research/long-range-arena@cd31e5c:
lra_benchmarks/image/configs/pathfinder32/base_pathfinder32_config.py +
transformer_base.py, after ee6649e): 4 layers, emb 32, 4 heads, qkv 16, MLP 32,
MEAN pooling, batch 512, 62,400 steps (200 epochs), cosine decay, on the LRA
release's pathfinder32/curv_contour_length_14 images (80/10/10 split).
Expected test accuracy: 71.40 (LRA paper, Table 1).

  python train.py --config=configs/transformer_pathfinder.py --workdir=workdirs/transformer_pathfinder \
      --config.data.data_dir=$HOME/lra_data/lra_release/lra_release

Offline, on our generator instead (same settings; drawing the 200k images
takes about an hour of one core, cached afterwards):

  python train.py --config=configs/transformer_pathfinder.py --workdir=workdirs/transformer_pathfinder_gen \
      --config.data.source=generated

Small (presets.QUICK["pathfinder"]): a curriculum over our generator's easier
levels (2-, 3-, 4-paddle snakes, then 6, no distractors; 20,000 images each),
a small model, 8,000 steps. With axial attention it reaches val 0.629 /
test 0.627 (majority 0.51) in ~35 minutes of one CPU core
(docs/pathfinder.md, "The quick run"); with dense
attention, as here, a step is ~7x slower on CPU (about 2.5 hours; not yet
run to the end):

  python train.py --config=configs/transformer_pathfinder.py:quick --workdir=workdirs/quick_pathfinder
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("transformer", "pathfinder", arg)

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

Small (4,000 generated images of the easy level, baseline: 6-paddle snakes; a
small model; 800 steps, ~10 minutes on 2 idle CPU cores). It only shows that
the pipeline runs: measured here, it stays at chance (best val 0.532, test
0.516; majority rates 0.506 and 0.500). The easier settings tried to make a
short run learn (no distractors, 2-D positions, ...) stayed at chance too:
see docs/pathfinder.md, "The quick run":

  python train.py --config=configs/transformer_pathfinder.py:quick --workdir=workdirs/quick_pathfinder
"""

from configs import presets


def get_config(arg=None):
  return presets.make("transformer", "pathfinder", arg)

r"""Transformer (dense attention) on LRA Image: grayscale CIFAR-10 pixels.

Reproduces LRA's Image task (google-research/long-range-arena@cd31e5c:
lra_benchmarks/image/configs/cifar10/base_cifar10_config.py +
transformer_base.py, after ee6649e): 1 layer, emb 128, 8 heads, qkv 64, MLP
128, learned positions, batch 256, 35,000 steps (200 epochs), cosine decay,
on TFDS cifar10 (train[:90%] / train[90%:] / test), 1024 pixels with LRA's
grayscale.
Expected test accuracy: 42.44 (LRA paper, Table 1).

  python scripts/prepare_data.py --output_dir=$HOME/lra_data --tasks=image \
      --cifar_archive=cifar-10-binary.tar.gz --tfds_data_dir=$HOME/tensorflow_datasets
  python train.py --config=configs/transformer_image.py --workdir=workdirs/transformer_image \
      --config.data.data_dir=$HOME/tensorflow_datasets

(data_dir may hold the prepared cifar10, or just cifar-10-binary.tar.gz in
downloads/manual/.)

Offline, small, a few minutes on 2 CPU cores: Fashion-MNIST (`apt-get install
dataset-fashion-mnist`) averaged to 14x14 = 196 pixels; a stand-in, not LRA's
task (its numbers are not comparable with LRA's):

  python train.py --config=configs/transformer_image.py:quick --workdir=workdirs/quick_image
"""

from efficient_transformers import presets


def get_config(arg=None):
  return presets.make("transformer", "image", arg)

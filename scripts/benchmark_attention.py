r"""Time and memory of attention mechanisms against dense, forward and forward+backward.

  python scripts/benchmark_attention.py --attention=dense_xla,dense_chunked,local \
      --lengths=1024,2048,4096,8192,16384 --out=docs/benchmarks/attention_cpu

For each mechanism and length: the median wall time of `repeats` calls after a
warm-up (compilation excluded, `block_until_ready`), of the forward pass and of
forward+backward (gradients w.r.t. q, k, v of sum(out * cotangent)), on random
normal inputs (batch, heads, head_dim flags; LRA-style defaults 1, 4, 64), and
peak memory: the device's `peak_bytes_in_use` where the backend reports it
(GPU/TPU), otherwise the compiled program's memory analysis (arguments +
outputs + temporaries; on CPU this is what XLA allocates). A configuration
whose predicted memory exceeds --memory_limit_gb (default 8) is reported as OOM
instead of being run: on CPU a real out-of-memory kills the process rather
than raising, and the compiled prediction undercounts what XLA's CPU runtime
really holds (dense at 16K, predicted under 16 GB, was killed on a 24 GB
machine). Results are written after every measurement.

Writes <out>.json (machine description + every measurement) and <out>.md (a
table of forward+backward time and memory, with the ratio to dense at the same
length in brackets). Mechanism options per length live in VARIANTS below: the
paper defaults (or LRA's) with blocks/windows of 128.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers import attention

_ATTENTION = flags.DEFINE_list("attention", ["dense_xla", "dense_chunked"],
                               "Variants to measure (keys of VARIANTS).")
_LENGTHS = flags.DEFINE_list("lengths", ["1024", "2048", "4096", "8192", "16384"],
                             "Sequence lengths.")
_BATCH = flags.DEFINE_integer("batch", 1, "Batch size.")
_HEADS = flags.DEFINE_integer("heads", 4, "Attention heads.")
_HEAD_DIM = flags.DEFINE_integer("head_dim", 64, "Features per head.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Input dtype.")
_CAUSAL = flags.DEFINE_bool("causal", False, "Causal attention.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repeats (median reported).")
_MEMORY_LIMIT = flags.DEFINE_float("memory_limit_gb", 8.0,
                                   "Skip (report OOM) above this predicted memory.")
_OUT = flags.DEFINE_string("out", None, "Output prefix for .json and .md.")


def _fixed(name, **options):
  return lambda length, heads, head_dim: (name, options)


def _grid(length):
  """A near-square (height, width) with height * width == length."""
  height = int(np.sqrt(length))
  while length % height:
    height -= 1
  return height, length // height


def _linformer(length, heads, head_dim, k=256):
  proj = jax.random.normal(jax.random.key(0), (length, k)) / np.sqrt(length)
  return "linformer", {"proj_k": proj, "proj_v": proj}


# variant -> (length, heads, head_dim) -> (registered name, options).
# Blocks and windows of 128 unless the paper's default is stated.
VARIANTS = {
    "dense_xla": _fixed("dense", impl="xla"),
    "dense_chunked": _fixed("dense", impl="chunked"),
    "local": _fixed("local", block_size=128),
    "sliding_window": _fixed("sliding_window", window=128),
    "longformer": _fixed("longformer", window=128, num_global=1),
    "strided_fixed": _fixed("strided", stride=128, pattern="fixed", num_summary=8),
    "strided_strided": _fixed("strided", stride=128, pattern="strided"),
    "bigbird": _fixed("bigbird", block_size=64, num_window_blocks=3,
                      num_global_blocks=1, num_random_blocks=3, rng=0),
    "etc": _fixed("etc", num_global=1, local_radius=128),
    "image_local_1d": _fixed("image_local_1d", query_block_size=128, memory_flange=128),
    "image_local_2d": lambda n, h, d: ("image_local_2d", {"shape": _grid(n)}),
    "axial": lambda n, h, d: ("axial", {"shape": _grid(n), "axis": 1}),
    "memory_compressed": _fixed("memory_compressed", compression=3),
    "linformer": _linformer,
    "performer": lambda n, h, d: ("performer", {"num_features": 256,
                                               "rng": jax.random.key(0)}),
    "linear": _fixed("linear"),
    "nystromformer": _fixed("nystromformer", num_landmarks=128),
}
BASELINE = "dense_xla"


def _inputs(length, key):
  shape = (_BATCH.value, length, _HEADS.value, _HEAD_DIM.value)
  dtype = jnp.dtype(_DTYPE.value)
  keys = jax.random.split(key, 4)
  return [jax.random.normal(k, shape, jnp.float32).astype(dtype) for k in keys]


def _time(fn, args, repeats):
  jax.block_until_ready(fn(*args))  # warm-up (compiled already)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _compiled_bytes(compiled):
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None
  return (analysis.argument_size_in_bytes + analysis.output_size_in_bytes +
          analysis.temp_size_in_bytes)


def _peak_bytes(device):
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  return None if not stats else stats.get("peak_bytes_in_use")


def measure(variant: str, length: int) -> dict:
  name, options = VARIANTS[variant](length, _HEADS.value, _HEAD_DIM.value)
  fn = functools.partial(attention.get(name), causal=_CAUSAL.value, **options)
  q, k, v, cotangent = _inputs(length, jax.random.key(length))

  def loss(q, k, v):
    return jnp.sum(fn(q, k, v).astype(jnp.float32) * cotangent.astype(jnp.float32))

  result = {"variant": variant, "attention": name, "length": length,
            "options": {k: str(v) for k, v in options.items()}}
  programs = {"forward": jax.jit(fn), "forward_backward": jax.jit(jax.grad(loss, (0, 1, 2)))}
  for phase, program in programs.items():
    try:
      compiled = program.lower(q, k, v).compile()
      predicted = _compiled_bytes(compiled)
      if predicted is not None and predicted > _MEMORY_LIMIT.value * 2**30:
        result[phase] = {"status": "OOM", "predicted_bytes": predicted}
        continue
      seconds = _time(compiled, (q, k, v), _REPEATS.value)
      peak = _peak_bytes(jax.devices()[0])
      result[phase] = {"status": "ok", "seconds": seconds,
                       "bytes": peak if peak is not None else predicted,
                       "bytes_source": "peak_bytes_in_use" if peak is not None
                                       else "compiled memory analysis"}
    except Exception as e:  # noqa: BLE001 -- a real OOM on an accelerator
      if "RESOURCE_EXHAUSTED" not in str(e) and "Out of memory" not in str(e):
        raise
      result[phase] = {"status": "OOM", "error": str(e).splitlines()[0]}
  logging.info("%s", json.dumps(result))
  return result


def machine() -> dict:
  device = jax.devices()[0]
  return {"backend": jax.default_backend(), "device": str(device.device_kind),
          "num_devices": jax.device_count(), "jax": jax.__version__,
          "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
          "date": time.strftime("%Y-%m-%d"), "batch": _BATCH.value,
          "heads": _HEADS.value, "head_dim": _HEAD_DIM.value, "dtype": _DTYPE.value,
          "causal": _CAUSAL.value}


def _cell(result, baseline, phase):
  entry = result.get(phase, {})
  if entry.get("status") != "ok":
    return "OOM" if entry.get("status") == "OOM" else "—"
  text = f"{entry['seconds'] * 1e3:.0f} ms, {entry['bytes'] / 2**20:.0f} MiB"
  base = (baseline or {}).get(phase, {})
  if base.get("status") == "ok" and baseline is not result:
    text += (f" ({base['seconds'] / entry['seconds']:.1f}x faster,"
             f" {entry['bytes'] / base['bytes']:.2f}x memory)")
  return text


def markdown(results, info) -> str:
  lengths = sorted({r["length"] for r in results})
  variants = list(dict.fromkeys(r["variant"] for r in results))
  by_key = {(r["variant"], r["length"]): r for r in results}
  lines = [f"Measured {info['date']} on {info['backend']} ({info['device']}, "
           f"{info['cores']} cores), jax {info['jax']}; batch {info['batch']}, "
           f"{info['heads']} heads, head_dim {info['head_dim']}, {info['dtype']}, "
           f"causal={info['causal']}. Ratios are against {BASELINE} at the same length.", ""]
  for phase in ("forward_backward", "forward"):
    lines += [f"### {phase.replace('_', '+')}", "",
              "| variant | " + " | ".join(str(n) for n in lengths) + " |",
              "|---|" + "---|" * len(lengths)]
    for variant in variants:
      cells = [_cell(by_key[(variant, n)], by_key.get((BASELINE, n)), phase)
               if (variant, n) in by_key else "—" for n in lengths]
      lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines.append("")
  return "\n".join(lines)


def main(argv):
  del argv
  unknown = [v for v in _ATTENTION.value if v not in VARIANTS]
  if unknown:
    raise app.UsageError(f"unknown variants {unknown}; valid: {', '.join(VARIANTS)}")
  info = machine()
  results = []
  for length in map(int, _LENGTHS.value):
    for variant in _ATTENTION.value:
      results.append(measure(variant, length))
      _write(results, info)  # after every measurement: a killed run keeps its figures
  print(markdown(results, info))


def _write(results, info):
  if not _OUT.value:
    return
  os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
  with open(_OUT.value + ".json", "w") as f:
    json.dump({"machine": info, "results": results}, f, indent=1)
  with open(_OUT.value + ".md", "w") as f:
    f.write(markdown(results, info) + "\n")


if __name__ == "__main__":
  app.run(main)

r"""Speed of the Pallas block-sparse flash-attention kernel against dense attention.

  # On a GPU/TPU (the issue's table: bf16, head_dim 64 and 128, 4K..32K):
  python scripts/bench_kernels.py --out_dir=docs/benchmarks/kernels_h200
  # On CPU (interpret mode: slow; a smoke run only):
  JAX_PLATFORMS=cpu python scripts/bench_kernels.py --lengths=256 --heads=2 \
      --head_dims=64 --repeats=1 --out_dir=/tmp/bench_kernels

For each pattern (causal dense, sliding_window, bigbird), length and head_dim:
forward and forward+backward time of
  pallas  kernels/block_sparse_attention.py over the pattern's block layout
          (tiles of --block x --block), the default backend (interpret on CPU);
  xla     jax.nn.dot_product_attention(implementation="xla"): full dense
          attention (causal for the causal pattern);
  cudnn   the same with implementation="cudnn" (GPU only);
and achieved TFLOP/s. FLOPs count only computed work: for pallas the
non-empty tiles (4 * block^2 * head_dim per tile forward: QK^T and PV), for
dense the full matrix (half of it when causal); forward+backward counts 3.5x
the forward (FlashAttention's convention: 2 forward + 5 backward matmuls).
`speedup` is dense time / pallas time at the same length; `vs_cudnn` (GPU) is
pallas TFLOP/s / cudnn TFLOP/s (the issue's bar: >= 0.6 on an H200).

Patterns: causal dense; sliding_window with window=--window (keys each side);
bigbird with block_size=--block, 3 window, 1 global and 3 random blocks, one
random draw shared by the heads (the per-head draws of the real model have the
same tile counts). Layouts are built on the host from `attention.pattern`,
which materialises a bool [L, L] array (1 GB at 32K, several GB of temporaries
for sliding_window): host time, not measured.

Timing and memory: benchmarking/measure.py, as scripts/benchmark.py: compile
excluded, one warm-up call, median of --repeats calls ended by
block_until_ready; memory is XLA's compiled memory analysis, and a program
predicted above --memory_limit_gb is recorded as OOM without being run (as is
a real out-of-memory). Other errors are recorded too. Writes
<out_dir>/bench_kernels.json and .md (with date, device, jax version) after
every measurement.
"""

from __future__ import annotations

import functools
import json
import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from efficient_transformers import attention
from efficient_transformers.benchmarking import measure
from efficient_transformers.benchmarking import runner
from efficient_transformers.kernels.block_layout import build_layout
from efficient_transformers.kernels.block_sparse_attention import block_sparse_attention

PATTERNS = ("dense_causal", "sliding_window", "bigbird")

_LENGTHS = flags.DEFINE_list("lengths", ["4096", "8192", "16384", "32768"], "Lengths.")
_HEAD_DIMS = flags.DEFINE_list("head_dims", ["64", "128"], "Features per head.")
_PATTERNS = flags.DEFINE_list("patterns", list(PATTERNS), "Patterns.")
_BATCH = flags.DEFINE_integer("batch", 1, "Batch size.")
_HEADS = flags.DEFINE_integer("heads", 16, "Heads.")
_BLOCK = flags.DEFINE_integer("block", 128, "Tile size of the block layout (and "
                              "bigbird's block_size).")
_WINDOW = flags.DEFINE_integer("window", 256, "sliding_window: keys on each side.")
_DTYPE = flags.DEFINE_enum("dtype", "bfloat16", ["bfloat16", "float16", "float32"],
                           "Input dtype.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls (median reported).")
_MEMORY_LIMIT = flags.DEFINE_float(
    "memory_limit_gb", None, "OOM above this predicted memory (GiB). Default: the "
    "device's bytes_limit where reported, else half the host's RAM.")
_OUT_DIR = flags.DEFINE_string("out_dir", "bench_kernels_out", "Output folder.")

SETTINGS = ("lengths", "head_dims", "patterns", "batch", "heads", "block", "window",
            "dtype", "repeats", "memory_limit_gb")


def pattern_pairs(name: str, length: int, *, block: int, window: int):
  if name == "dense_causal":
    return attention.pattern("dense", length, length, causal=True)
  if name == "sliding_window":
    return attention.pattern("sliding_window", length, length, window=window)
  if name == "bigbird":
    return attention.pattern("bigbird", length, length, block_size=block,
                             num_random_blocks=3, rng=0, heads=1)
  raise ValueError(f"unknown pattern {name!r}; valid: {', '.join(PATTERNS)}")


def measure_impl(name, attend, inputs, flops, *, repeats, memory_limit_gb):
  """Rows of `name`'s forward and forward+backward (measure.run each)."""

  def both(q, k, v, d_out):
    out, pullback = jax.vjp(attend, q, k, v)
    return out, pullback(d_out)

  rows = []
  for mode, fn, args, mode_flops in (("fwd", attend, inputs[:3], flops),
                                     ("fwd+bwd", both, inputs, 3.5 * flops)):
    row = {"impl": name, "mode": mode}
    program = jax.jit(fn)
    try:
      result = measure.run(lambda: program.lower(*args), lambda c: c(*args),
                           repeats=repeats, memory_limit_gb=memory_limit_gb)
    except Exception as error:  # noqa: BLE001 -- recorded, not raised
      text = str(error).splitlines()[0][:200] if str(error) else ""
      rows.append({**row, "status": "error", "error": f"{type(error).__name__}: {text}"})
      continue
    row.update(result)
    if result["status"] == "ok":
      row.update(ms=1e3 * result["seconds"], tflops=mode_flops / result["seconds"] / 1e12)
    else:
      row["error"] = f"{result['status']}: {result['reason']}"
    rows.append(row)
  return rows


def bench_one(pattern: str, length: int, head_dim: int, *, batch: int, heads: int,
              block: int, window: int, dtype: str, repeats: int,
              memory_limit_gb: float) -> list[dict]:
  layout = build_layout(pattern_pairs(pattern, length, block=block, window=window),
                        block, block)
  shape = (batch, length, heads, head_dim)
  keys = jax.random.split(jax.random.key(0), 4)
  inputs = tuple(jax.random.normal(key, shape, jnp.dtype(dtype)) for key in keys)
  causal = pattern == "dense_causal"
  heads_factor = batch * heads // layout.heads
  sparse_flops = 4.0 * layout.num_computed_blocks * block**2 * head_dim * heads_factor
  dense_flops = 4.0 * batch * heads * length**2 * head_dim * (0.5 if causal else 1.0)
  base = {"pattern": pattern, "length": length, "head_dim": head_dim,
          "density": layout.density}
  limits = {"repeats": repeats, "memory_limit_gb": memory_limit_gb}
  rows = measure_impl("pallas", functools.partial(block_sparse_attention, layout=layout),
                      inputs, sparse_flops, **limits)
  impls = ["xla"] + (["cudnn"] if jax.default_backend() == "gpu" else [])
  for impl in impls:
    dense = functools.partial(jax.nn.dot_product_attention, is_causal=causal,
                              implementation=impl)
    rows += measure_impl(impl, dense, inputs, dense_flops, **limits)
  by_key = {(r["impl"], r["mode"]): r for r in rows}
  for row in rows:
    pallas = by_key[("pallas", row["mode"])]
    if row["impl"] != "pallas" and "ms" in row and "ms" in pallas:
      row["speedup"] = row["ms"] / pallas["ms"]  # > 1: pallas is faster
      pallas[f"vs_{row['impl']}_tflops"] = pallas["tflops"] / row["tflops"]
  return [{**base, **row} for row in rows]


def markdown(records, header):
  lines = [header, "",
           "| pattern | L | head_dim | density | impl | mode | ms | TFLOP/s | MiB | "
           "dense/pallas time | pallas/cudnn TFLOP/s |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in records:
    ms = f"{r['ms']:.3f}" if "ms" in r else r.get("error", "")
    tflops = f"{r['tflops']:.3g}" if "tflops" in r else ""
    mib = f"{r['bytes'] / 2**20:.3g}" if r.get("bytes") is not None else ""
    speed = f"{r['speedup']:.2f}x" if "speedup" in r else ""
    ratio = f"{r['vs_cudnn_tflops']:.2f}" if "vs_cudnn_tflops" in r else ""
    lines.append(f"| {r['pattern']} | {r['length']} | {r['head_dim']} | "
                 f"{r['density']:.3f} | {r['impl']} | {r['mode']} | {ms} | {tflops} | "
                 f"{mib} | {speed} | {ratio} |")
  return "\n".join(lines) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  for name in _PATTERNS.value:
    if name not in PATTERNS:
      raise app.UsageError(f"unknown pattern {name!r}; valid: {', '.join(PATTERNS)}")
  memory_limit_gb = runner.memory_limit_gb(runner.Settings(
      memory_limit_gb=_MEMORY_LIMIT.value))
  settings = {name: flags.FLAGS[name].value for name in SETTINGS}
  settings.update(lengths=[int(n) for n in _LENGTHS.value],
                  head_dims=[int(d) for d in _HEAD_DIMS.value])
  settings["memory_limit_gb"] = float(f"{memory_limit_gb:.3g}")
  meta = {**measure.machine(), "settings": settings}
  header = (f"# Block-sparse Pallas attention vs dense ({meta['device']}, "
            f"{meta['backend']}, jax {meta['jax']}, {meta['date']})\n\n"
            f"batch {_BATCH.value}, heads {_HEADS.value}, {_DTYPE.value}, tiles "
            f"{_BLOCK.value}x{_BLOCK.value}; sliding_window window {_WINDOW.value}; "
            "memory: XLA's compiled memory analysis; command: python "
            "scripts/bench_kernels.py " + " ".join(
                f"--{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in {**settings, "out_dir": _OUT_DIR.value}.items()))
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  records, table = [], markdown([], header)
  for pattern in _PATTERNS.value:
    for length in settings["lengths"]:
      for head_dim in settings["head_dims"]:
        records += bench_one(pattern, length, head_dim, batch=_BATCH.value,
                             heads=_HEADS.value, block=_BLOCK.value,
                             window=_WINDOW.value, dtype=_DTYPE.value,
                             repeats=_REPEATS.value, memory_limit_gb=memory_limit_gb)
        with open(os.path.join(_OUT_DIR.value, "bench_kernels.json"), "w") as f:
          json.dump({**meta, "records": records}, f, indent=1)
        table = markdown(records, header)
        with open(os.path.join(_OUT_DIR.value, "bench_kernels.md"), "w") as f:
          f.write(table)
  print(table)


if __name__ == "__main__":
  app.run(main)

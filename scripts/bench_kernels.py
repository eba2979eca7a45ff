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

Timing: compile excluded, one warm-up call, median of --repeats calls ended by
block_until_ready. Errors (e.g. dense xla out of memory at 32K) are recorded.
Writes <out_dir>/bench_kernels.json and .md (with date, device, jax version).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers import attention
from efficient_transformers.kernels.block_layout import build_layout
from efficient_transformers.kernels.block_sparse_attention import block_sparse_attention

PATTERNS = ("dense_causal", "sliding_window", "bigbird")


def pattern_pairs(name, length, args):
  if name == "dense_causal":
    return attention.pattern("dense", length, length, causal=True)
  if name == "sliding_window":
    return attention.pattern("sliding_window", length, length, window=args.window)
  if name == "bigbird":
    return attention.pattern("bigbird", length, length, block_size=args.block,
                             num_random_blocks=3, rng=0, heads=1)
  raise ValueError(f"unknown pattern {name!r}; valid: {', '.join(PATTERNS)}")


def time_call(fn, *inputs, repeats):
  jax.block_until_ready(fn(*inputs))  # compile + warm-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*inputs))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def forward_and_backward(attend):
  forward = jax.jit(attend)

  @jax.jit
  def both(q, k, v, d_out):
    out, pullback = jax.vjp(attend, q, k, v)
    return out, pullback(d_out)

  return forward, both


def measure(name, attend, inputs, flops, repeats):
  forward, both = forward_and_backward(attend)
  rows = []
  for mode, fn, args, mode_flops in (("fwd", forward, inputs[:3], flops),
                                     ("fwd+bwd", both, inputs, 3.5 * flops)):
    try:
      seconds = time_call(fn, *args, repeats=repeats)
      rows.append({"impl": name, "mode": mode, "ms": 1e3 * seconds,
                   "tflops": mode_flops / seconds / 1e12})
    except Exception as error:  # noqa: BLE001 -- recorded, e.g. out of memory
      rows.append({"impl": name, "mode": mode, "error": f"{type(error).__name__}: "
                   f"{str(error).splitlines()[0][:200] if str(error) else ''}"})
  return rows


def bench_one(pattern, length, head_dim, args):
  layout = build_layout(pattern_pairs(pattern, length, args), args.block, args.block)
  dtype = jnp.dtype(args.dtype)
  shape = (args.batch, length, args.heads, head_dim)
  keys = jax.random.split(jax.random.key(0), 4)
  inputs = tuple(jax.random.normal(key, shape, dtype) for key in keys)
  causal = pattern == "dense_causal"
  heads_factor = args.batch * args.heads // layout.heads
  sparse_flops = 4.0 * layout.num_computed_blocks * args.block**2 * head_dim * heads_factor
  dense_flops = 4.0 * args.batch * args.heads * length**2 * head_dim * (0.5 if causal else 1.0)
  base = {"pattern": pattern, "length": length, "head_dim": head_dim,
          "density": layout.density}
  rows = measure("pallas", functools.partial(block_sparse_attention, layout=layout),
                 inputs, sparse_flops, args.repeats)
  impls = ["xla"] + (["cudnn"] if jax.default_backend() == "gpu" else [])
  for impl in impls:
    dense = functools.partial(jax.nn.dot_product_attention, is_causal=causal,
                              implementation=impl)
    rows += measure(impl, dense, inputs, dense_flops, args.repeats)
  by_key = {(r["impl"], r["mode"]): r for r in rows}
  for row in rows:
    pallas = by_key[("pallas", row["mode"])]
    if row["impl"] != "pallas" and "ms" in row and "ms" in pallas:
      row["speedup"] = row["ms"] / pallas["ms"]  # > 1: pallas is faster
      pallas[f"vs_{row['impl']}_tflops"] = pallas["tflops"] / row["tflops"]
  return [{**base, **row} for row in rows]


def markdown(records, header):
  lines = [header, "",
           "| pattern | L | head_dim | density | impl | mode | ms | TFLOP/s | "
           "dense/pallas time | pallas/cudnn TFLOP/s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in records:
    ms = f"{r['ms']:.3f}" if "ms" in r else r.get("error", "")
    tflops = f"{r['tflops']:.3g}" if "tflops" in r else ""
    speed = f"{r['speedup']:.2f}x" if "speedup" in r else ""
    ratio = f"{r['vs_cudnn_tflops']:.2f}" if "vs_cudnn_tflops" in r else ""
    lines.append(f"| {r['pattern']} | {r['length']} | {r['head_dim']} | "
                 f"{r['density']:.3f} | {r['impl']} | {r['mode']} | {ms} | {tflops} | "
                 f"{speed} | {ratio} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ints = lambda text: [int(x) for x in text.split(",")]
  parser.add_argument("--lengths", type=ints, default=[4096, 8192, 16384, 32768])
  parser.add_argument("--head_dims", type=ints, default=[64, 128])
  parser.add_argument("--patterns", default=",".join(PATTERNS))
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--heads", type=int, default=16)
  parser.add_argument("--block", type=int, default=128)
  parser.add_argument("--window", type=int, default=256)
  parser.add_argument("--dtype", default="bfloat16")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--out_dir", default="bench_kernels_out")
  args = parser.parse_args(argv)
  device = jax.devices()[0]
  meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "device": getattr(device, "device_kind", str(device)),
          "backend": jax.default_backend(), "jax": jax.__version__,
          "settings": {k: v for k, v in vars(args).items() if k != "out_dir"}}
  header = (f"# Block-sparse Pallas attention vs dense ({meta['device']}, "
            f"{meta['backend']}, jax {meta['jax']}, {meta['date']})\n\n"
            f"batch {args.batch}, heads {args.heads}, {args.dtype}, tiles "
            f"{args.block}x{args.block}; sliding_window window {args.window}; "
            "command: python scripts/bench_kernels.py " + " ".join(
                f"--{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in vars(args).items()))
  os.makedirs(args.out_dir, exist_ok=True)
  records = []
  for pattern in args.patterns.split(","):
    for length in args.lengths:
      for head_dim in args.head_dims:
        records += bench_one(pattern, length, head_dim, args)
        with open(os.path.join(args.out_dir, "bench_kernels.json"), "w") as f:
          json.dump({**meta, "records": records}, f, indent=1)
        table = markdown(records, header)
        with open(os.path.join(args.out_dir, "bench_kernels.md"), "w") as f:
          f.write(table)
  print(table)


if __name__ == "__main__":
  main()

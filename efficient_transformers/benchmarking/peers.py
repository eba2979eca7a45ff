"""Peer mode: our attention functions next to the PyTorch implementations.

Each `Pair` names one of our mechanisms (with its options at a length) and the
PyTorch module it is compared with (built in `peers_torch.py`, which imports
torch; this module does not, so its pure parts are tested without it). Both
sides get the same shapes (batch, length, heads, head_dim; float32) and the
same hyperparameters, and are timed the same way: forward+backward w.r.t. q, k,
v (a loss sum(out * cotangent)), one warm-up call, `repeats` timed calls,
median; the peer's own parameters (projections, sort nets, convolutions, memory
key/values) are frozen, so that both sides differentiate w.r.t. q, k, v only.

Memory, the same method on both sides: the rise of the process's resident set
above what it held before the first call (inputs built, our program compiled),
peak (Linux VmHWM, reset through /proc/self/clear_refs) minus that baseline.
XLA's compiled memory analysis of our program is recorded beside it.

One process per measurement (`python -m
efficient_transformers.benchmarking.peers SIDE PAIR LENGTH REPEATS OUT_JSON`);
scripts/benchmark_peers.py runs ours and the peer interleaved, pair by pair and
length by length, for several passes, and reports the median over passes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import sys
import time
from typing import Any, Callable, Iterable

SIDES = ("ours", "peer")
LENGTHS = (4096, 16384)


@dataclasses.dataclass(frozen=True)
class Pair:
  name: str
  attention: str                        # our registered mechanism
  options: Callable[[int], dict]        # length -> our options (arrays built lazily)
  peer: str                             # the PyTorch side, as a reader would name it
  hyper: str                            # the shared hyperparameters, in words
  note: str = ""                        # where the two sides do different work


def _routing_options(n):
  import jax  # pylint: disable=g-import-not-at-top
  clusters = max(1, n // 64)
  centroids = jax.random.normal(jax.random.key(1), (clusters, 64))
  return {"centroids": centroids, "window": 64}


def _linformer_options(n):
  import jax  # pylint: disable=g-import-not-at-top
  keys = jax.random.split(jax.random.key(1))
  proj = lambda key: jax.random.normal(key, (n, 256)) / math.sqrt(256)
  return {"proj_k": proj(keys[0]), "proj_v": proj(keys[1])}


def _nystromformer_options(n):
  import jax  # pylint: disable=g-import-not-at-top
  return {"num_landmarks": 256, "pinv_iterations": 6,
          "conv_kernel": jax.random.normal(jax.random.key(1), (4, 33)) / 33}


def _sinkhorn_options(n):
  import jax  # pylint: disable=g-import-not-at-top
  nb = n // 64
  return {"block_size": 64,
          "sort_logits": jax.random.normal(jax.random.key(1), (1, 4, nb, nb))}


def _performer_options(n):
  import jax  # pylint: disable=g-import-not-at-top
  return {"num_features": 256, "rng": jax.random.key(1)}


def _reformer_options(hashes):
  def options(n):
    import jax  # pylint: disable=g-import-not-at-top
    return {"num_hashes": hashes, "chunk_size": 64, "num_buckets": n // 64,
            "rng": jax.random.key(1)}
  return options


PAIRS: dict[str, Pair] = {p.name: p for p in [
    Pair("dense_chunked", "dense", lambda n: {"impl": "chunked"},
         "torch scaled_dot_product_attention", "exact softmax attention"),
    Pair("performer", "performer", _performer_options,
         "performer-pytorch FastAttention", "256 random features, softmax kernel"),
    Pair("reformer_2", "reformer", _reformer_options(2),
         "reformer-pytorch LSHAttention", "2 hashes, chunks/buckets of 64, L/64 buckets",
         "ours and the peer both attend within a chunk and the previous one"),
    Pair("reformer_8", "reformer", _reformer_options(8),
         "reformer-pytorch LSHAttention", "8 hashes, chunks/buckets of 64, L/64 buckets"),
    Pair("local", "local", lambda n: {"block_size": 128},
         "local-attention LocalAttention (no look-around)", "blocks of 128"),
    Pair("sliding_window", "sliding_window", lambda n: {"window": 128},
         "local-attention LocalAttention (look 1 back, 1 forward)",
         "128 keys each side (peer: 3 blocks of 128 keys)",
         "the peer attends to the 3 x 128 keys of its block and both neighbours; "
         "ours to the 257 keys with |i - j| <= 128"),
    Pair("routing", "routing", _routing_options,
         "routing-transformer KmeansAttention (eval)", "window 64, L/64 clusters",
         "the peer adds no memory key/value when not causal; both normalise q, k"),
    Pair("linear", "linear", lambda n: {},
         "linear-attention-transformer linear_attn",
         "feature maps: ours elu+1 with a normaliser, the peer softmax(q), softmax(k)"),
    Pair("nystromformer", "nystromformer", _nystromformer_options,
         "nystrom-attention NystromAttention (projections removed)",
         "256 landmarks, 6 pinv iterations, residual conv 33"),
    Pair("sinkhorn", "sinkhorn", _sinkhorn_options,
         "sinkhorn-transformer SinkhornAttention", "buckets of 64",
         "the peer also computes its sort logits from q and k (AttentionSortNet); "
         "ours takes them as an argument"),
    Pair("linformer", "linformer", _linformer_options,
         "linformer LinformerSelfAttention (projections removed)", "k = 256"),
]}


# ---------------------------------------------------------------- pure parts

def median_seconds(records: Iterable[dict], pair: str, side: str, length: int):
  """Median over passes of the "ok" records' seconds (None if there are none)."""
  values = [r["seconds"] for r in records if r.get("status") == "ok" and
            r["pair"] == pair and r["side"] == side and r["length"] == length]
  return statistics.median(values) if values else None


def median_bytes(records: Iterable[dict], pair: str, side: str, length: int,
                 key: str = "bytes"):
  values = [r[key] for r in records if r.get("status") == "ok" and r.get(key)
            and r["pair"] == pair and r["side"] == side and r["length"] == length]
  return statistics.median(values) if values else None


def ratio(ours: float | None, peer: float | None) -> float | None:
  """ours / peer (below 1: ours is faster or smaller); None if either is missing."""
  if ours is None or peer is None or peer <= 0:
    return None
  return ours / peer


def summarize(records: list[dict], pairs: Iterable[str],
              lengths: Iterable[int]) -> list[dict]:
  """One row per (pair, length): medians, time and memory ratios."""
  rows = []
  for pair in pairs:
    for length in lengths:
      row = {"pair": pair, "length": length}
      for side in SIDES:
        row[f"{side}_seconds"] = median_seconds(records, pair, side, length)
        row[f"{side}_bytes"] = median_bytes(records, pair, side, length)
      row["passes"] = sum(1 for r in records if r["pair"] == pair and
                          r["length"] == length and r["side"] == "ours")
      row["time_ratio"] = ratio(row["ours_seconds"], row["peer_seconds"])
      row["memory_ratio"] = ratio(row["ours_bytes"], row["peer_bytes"])
      rows.append(row)
  return rows


def _fmt(value, spec, suffix="") -> str:
  return "—" if value is None else f"{value:{spec}}{suffix}"


def _length(n: int) -> str:
  return f"{n // 1024}K" if n % 1024 == 0 else str(n)


def markdown(rows: list[dict], pairs: dict[str, Pair] | None = None) -> str:
  """The side-by-side table: time and memory of each side, ours / peer."""
  pairs = PAIRS if pairs is None else pairs
  lines = ["| ours | peer | hyperparameters | length | ours (s) | peer (s) | "
           "time ours/peer | ours (MB) | peer (MB) | memory ours/peer |",
           "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
  for row in rows:
    pair = pairs.get(row["pair"])
    peer, hyper = (pair.peer, pair.hyper) if pair else ("?", "")
    mb = lambda b: None if b is None else b / 1e6
    lines.append(
        f"| {row['pair']} | {peer} | {hyper} | {_length(row['length'])} | "
        f"{_fmt(row['ours_seconds'], '.3f')} | {_fmt(row['peer_seconds'], '.3f')} | "
        f"{_fmt(row['time_ratio'], '.2f', '×')} | {_fmt(mb(row['ours_bytes']), '.0f')} | "
        f"{_fmt(mb(row['peer_bytes']), '.0f')} | {_fmt(row['memory_ratio'], '.2f', '×')} |")
  notes = [f"- {name}: {pairs[name].note}" for name in dict.fromkeys(r["pair"] for r in rows)
           if name in pairs and pairs[name].note]
  if notes:
    lines += ["", "Differences in work:", *notes]
  return "\n".join(lines) + "\n"


# ------------------------------------------------------------ measurement

def _rss(field: str) -> int:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1]) * 1024
  raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
  with open("/proc/self/clear_refs", "w") as f:
    f.write("5")


def time_and_memory(call: Callable[[], Any], sync: Callable[[Any], Any],
                    repeats: int) -> dict[str, Any]:
  """Median seconds of `repeats` calls after a warm-up; peak RSS rise."""
  base = _rss("VmRSS")
  _reset_peak()
  sync(call())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    sync(call())
    times.append(time.perf_counter() - start)
  return {"seconds": statistics.median(times), "times": times,
          "bytes": max(0, _rss("VmHWM") - base)}


def inputs_numpy(length: int, batch: int = 1, heads: int = 4, head_dim: int = 64):
  """q, k, v, cotangent as float32 numpy [batch, length, heads, head_dim]."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(length)
  return [rng.standard_normal((batch, length, heads, head_dim), dtype=np.float32)
          for _ in range(4)]


def measure_ours(pair: Pair, length: int, repeats: int) -> dict[str, Any]:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from efficient_transformers import attention  # pylint: disable=g-import-not-at-top
  from efficient_transformers.benchmarking import measure  # pylint: disable=g-import-not-at-top
  options = pair.options(length)
  arrays = {k: v for k, v in options.items() if isinstance(v, jax.Array)}
  static = {k: v for k, v in options.items() if k not in arrays}
  fn = attention.get(pair.attention)
  q, k, v, cot = (jnp.asarray(x) for x in inputs_numpy(length))

  def loss(q, k, v, arrays):
    return jnp.sum(fn(q, k, v, **static, **arrays) * cot)

  compiled = jax.jit(jax.grad(loss, (0, 1, 2))).lower(q, k, v, arrays).compile()
  result = time_and_memory(lambda: compiled(q, k, v, arrays), jax.block_until_ready,
                           repeats)
  result["compiled_bytes"] = measure.compiled_bytes(compiled)
  return result


def measure_peer(pair: Pair, length: int, repeats: int) -> dict[str, Any]:
  from efficient_transformers.benchmarking import peers_torch  # pylint: disable=g-import-not-at-top
  return peers_torch.measure(pair.name, length, repeats)


def measure_one(side: str, name: str, length: int, repeats: int) -> dict[str, Any]:
  record = {"pair": name, "side": side, "length": length}
  pair = PAIRS[name]
  try:
    result = (measure_ours if side == "ours" else measure_peer)(pair, length, repeats)
  except Exception as e:  # noqa: BLE001 -- recorded, not raised
    return {**record, "status": "error", "error": f"{type(e).__name__}: {e}"[:500]}
  return {**record, "status": "ok", **result}


if __name__ == "__main__":
  side_, name_, length_, repeats_, out_ = sys.argv[1:]
  rec = measure_one(side_, name_, int(length_), int(repeats_))
  with open(out_, "w") as f_:
    json.dump(rec, f_)
  print(json.dumps(rec))
  sys.exit(0 if rec["status"] == "ok" else 1)

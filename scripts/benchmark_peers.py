r"""Our attention functions side by side with their PyTorch peers.

  pip install -e ".[peers]"       # torch (CPU build) and lucidrains' packages
  python scripts/benchmark_peers.py --lengths=4096,16384 --passes=2 \
      --out=docs/benchmarks/peers_cpu

For every pair of efficient_transformers/benchmarking/peers.py PAIRS (ours, the
peer; same shapes: batch 1, 4 heads, head_dim 64, float32; same
hyperparameters) and length: forward+backward w.r.t. q, k, v, each measurement
in its own process, ours and the peer interleaved pair by pair (the side that
goes first alternates between passes), the median over --passes of each side's
median of --repeats timed calls. Memory: the peak rise of the process's
resident set during the calls (the same method on both sides). Writes
<out>.json (machine, settings, every record, the summary rows) and <out>.md
(the table with ratios ours/peer) after every measurement.
"""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from efficient_transformers.benchmarking import peers

_PAIRS = flags.DEFINE_list("pairs", list(peers.PAIRS), "Pairs to measure.")
_LENGTHS = flags.DEFINE_list("lengths", [str(n) for n in peers.LENGTHS], "Lengths.")
_PASSES = flags.DEFINE_integer("passes", 2, "Interleaved passes (median reported).")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed calls per measurement (median).")
_TIMEOUT = flags.DEFINE_integer("timeout", 900, "Seconds per measurement.")
_OUT = flags.DEFINE_string("out", None, "Output prefix for .json and .md.")


def machine() -> dict:
  return {"python": platform.python_version(), "cpu": platform.processor() or
          platform.machine(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
          "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def run_one(side: str, pair: str, length: int) -> dict:
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(
      filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
  env.setdefault("JAX_PLATFORMS", "cpu")
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "record.json")
    try:
      child = subprocess.run(
          [sys.executable, "-m", "efficient_transformers.benchmarking.peers", side, pair,
           str(length), str(_REPEATS.value), path],
          capture_output=True, text=True, check=False, env=env, cwd=ROOT,
          timeout=_TIMEOUT.value)
    except subprocess.TimeoutExpired:
      return {"pair": pair, "side": side, "length": length, "status": "error",
              "error": f"timeout after {_TIMEOUT.value} s"}
    if os.path.exists(path):
      with open(path) as f:
        return json.load(f)
  tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
  return {"pair": pair, "side": side, "length": length, "status": "error",
          "error": f"exit {child.returncode}: {tail}"}


def write(report: dict, out: str) -> None:
  with open(out + ".json", "w") as f:
    json.dump(report, f, indent=1)
  m = report["machine"]
  header = (f"# Attention alone, ours vs PyTorch peers ({m['date']})\n\n"
            f"Machine: {m['cpu_count']} CPU cores ({m['cpu']}, {m['platform']}), "
            f"Python {m['python']}; batch 1, 4 heads, head_dim 64, float32, "
            "forward+backward w.r.t. q, k, v; median of "
            f"{report['settings']['passes']} interleaved passes of "
            f"{report['settings']['repeats']} timed calls each, one process per "
            "measurement. Ratios are ours / peer (below 1: ours is faster or "
            "smaller). Memory: peak rise of the resident set during the calls.\n\n"
            f"Command: `{report['command']}`\n\n")
  with open(out + ".md", "w") as f:
    f.write(header + peers.markdown(report["rows"]))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  unknown = [p for p in _PAIRS.value if p not in peers.PAIRS]
  if unknown:
    raise app.UsageError(f"unknown pairs {unknown}; valid: {', '.join(peers.PAIRS)}")
  lengths = [int(n) for n in _LENGTHS.value]
  report = {"machine": machine(), "command": "python " + " ".join(sys.argv),
            "settings": {"passes": _PASSES.value, "repeats": _REPEATS.value,
                         "lengths": lengths, "pairs": _PAIRS.value},
            "records": [], "rows": []}
  for p in range(_PASSES.value):
    for pair in _PAIRS.value:
      for length in lengths:
        sides = peers.SIDES if p % 2 == 0 else peers.SIDES[::-1]
        for side in sides:
          record = {**run_one(side, pair, length), "pass": p}
          report["records"].append(record)
          print(json.dumps({k: v for k, v in record.items() if k != "times"}), flush=True)
          report["rows"] = peers.summarize(report["records"], _PAIRS.value, lengths)
          if _OUT.value:
            write(report, _OUT.value)
  print(peers.markdown(report["rows"]))


if __name__ == "__main__":
  app.run(main)

"""How long a GPU queue entry will take: its guess, or its FLOPs over a measured rate.

Full LRA runs (train entries without `arg`) are estimated as

  startup + steps * step_s + eval_batches * eval_s,
  step_s = max(flops_per_step / rate, MIN_STEP_S),
  eval_s = max(step_s / 3 * eval_batch / batch, MIN_EVAL_STEP_S)

where flops_per_step is XLA's count of the bf16 training step (written into
the queue by `gpu_queue.py --write_queue --flops`; a lower bound: loop bodies
are counted once) and `rate` is, first found:
  1. the model's own measured rate: flops_per_step * steps_per_sec of one of
     its finished full runs (this session or an earlier one, from the queue);
  2. its `bench_train` step at the nearest length to 4K (the LRA text model,
     batch 32): flops of its Text run / that step time, scaled to 4000 tokens;
  3. the median of every rate of 1 and 2;
  4. DEFAULT_RATE.
Quick runs: the mean measured time of finished quick runs of the same task.
Benchmark entries: the longest measured entry of the same kind. Else the
entry's estimate_s (a guess). The basis is reported beside the number, and
the measurement beside both.
"""

from __future__ import annotations

import math
import statistics

DEFAULT_RATE = 1e14       # counted FLOP/s of a bf16 H200 step before any measurement
MIN_STEP_S = 0.004        # launch and optimizer overhead of the smallest models
MIN_EVAL_STEP_S = 0.002   # likewise for an eval batch
DEFAULT_STEP_S = 0.05     # full runs with no FLOP count
STARTUP_S = 60.0          # imports, data loading, compilation
MEASURED_KINDS = ("bench_kernels", "bench_dense", "bench_train")  # alike within a kind
TINY_ESTIMATE_S = {"env": 15, "data": 15, "tests": 30, "bench_kernels": 40,
                   "bench_dense": 30, "bench_train": 30, "train": 40}


class Calibration:
  """Measured rates and times, from the queue's results and this session's runs."""

  def __init__(self, flops_by_id: dict[str, float]):
    self.flops_by_id = flops_by_id
    self.rates: dict[str, list[float]] = {}
    self.bench: dict[str, dict[int, float]] = {}
    self.quick: dict[str, list[float]] = {}
    self.kind_seconds: dict[str, list[float]] = {}

  @classmethod
  def from_queue(cls, queue: dict) -> "Calibration":
    cal = cls({e["id"]: e["flops_per_step"] for e in queue["entries"]
               if e.get("flops_per_step")})
    for entry in queue["entries"]:
      if entry.get("status") == "done" and entry.get("result"):
        cal.add(entry, entry["result"])
    return cal

  def add(self, entry: dict, result: dict) -> None:
    if result.get("status", "done") != "done":
      return
    if entry["kind"] in MEASURED_KINDS and result.get("seconds"):
      self.kind_seconds.setdefault(entry["kind"], []).append(float(result["seconds"]))
    if entry["kind"] == "train" and entry.get("arg") == "quick" and result.get("seconds"):
      self.quick.setdefault(entry["task"], []).append(float(result["seconds"]))
    elif entry["kind"] == "train" and result.get("steps_per_sec") and entry.get(
        "flops_per_step"):
      self.rates.setdefault(entry["model"], []).append(
          entry["flops_per_step"] * result["steps_per_sec"])
    elif entry["kind"] == "bench_train" and result.get("step_seconds"):
      self.bench[entry["model"]] = {int(k): float(v)
                                    for k, v in result["step_seconds"].items()}

  def _bench_rate(self, model: str) -> float | None:
    steps = self.bench.get(model)
    flops = self.flops_by_id.get(f"lra_{model}_text_s0")
    if not steps or not flops:
      return None
    length = min(steps, key=lambda n: abs(n - 4096))
    return flops / (steps[length] * 4000 / length)

  def rate(self, model: str) -> tuple[float, str]:
    if self.rates.get(model):
      return statistics.median(self.rates[model]), f"{model}'s measured full runs"
    bench = self._bench_rate(model)
    if bench:
      return bench, f"{model}'s bench_train step"
    pooled = [r for rs in self.rates.values() for r in rs] + [
        r for r in map(self._bench_rate, self.bench) if r]
    if pooled:
      return statistics.median(pooled), f"median of {len(pooled)} measured rates"
    return DEFAULT_RATE, "default rate"


def _train_sizes(entry: dict) -> dict:
  from efficient_transformers import presets  # pylint: disable=import-outside-toplevel
  from gpu_queue_entries import EVAL_EXAMPLES  # pylint: disable=import-outside-toplevel
  config = presets.make(entry["model"], entry["task"], entry.get("arg"))
  train = config.train
  val, test = EVAL_EXAMPLES.get(entry["task"], (2000, 2000))
  ebs = train.get("eval_batch_size", train.batch_size)
  evals = train.num_train_steps // train.eval_every_steps + 1
  return {"steps": train.num_train_steps, "batch": train.batch_size, "eval_batch": ebs,
          "eval_batches": evals * math.ceil(val / ebs) + math.ceil(test / ebs)}


def estimate(entry: dict, cal: Calibration, *, tiny: bool = False) -> dict:
  """{"seconds": float, "basis": str} for `entry`."""
  kind = entry["kind"]
  if tiny:
    seconds = entry.get("tiny_estimate_s",
                        entry.get("estimate_s") if kind == "command" else None)
    return {"seconds": float(seconds if seconds is not None else TINY_ESTIMATE_S[kind]),
            "basis": "tiny"}
  if kind == "train" and entry.get("arg") == "quick":
    measured = cal.quick.get(entry["task"])
    if measured:
      return {"seconds": statistics.mean(measured),
              "basis": f"mean of {len(measured)} measured quick {entry['task']} runs"}
    return {"seconds": float(entry.get("estimate_s", 120)), "basis": "guess"}
  if kind == "train":
    sizes = _train_sizes(entry)
    flops = entry.get("flops_per_step")
    if flops:
      rate, basis = cal.rate(entry["model"])
      step_s = max(flops / rate, MIN_STEP_S)
      basis = (f"{flops:.3g} FLOP/step at {rate:.3g} FLOP/s ({basis}): "
               f"{1e3 * step_s:.1f} ms/step")
    else:
      step_s, basis = DEFAULT_STEP_S, f"no FLOP count: {1e3 * DEFAULT_STEP_S:.0f} ms/step"
    # An eval batch: the forward pass (a third of a step) of eval_batch rows.
    eval_s = max(step_s / 3 * sizes["eval_batch"] / sizes["batch"], MIN_EVAL_STEP_S)
    seconds = STARTUP_S + sizes["steps"] * step_s + sizes["eval_batches"] * eval_s
    return {"seconds": seconds, "step_s": step_s,
            "basis": f"{sizes['steps']} steps x {basis}; {sizes['eval_batches']} eval "
                     f"batches x {1e3 * eval_s:.1f} ms"}
  measured = cal.kind_seconds.get(kind)
  if measured:
    return {"seconds": max(measured),
            "basis": f"longest of {len(measured)} measured {kind} entries"}
  return {"seconds": float(entry.get("estimate_s", 60)), "basis": "guess"}


def all_flops(queue: dict | None, entries_module) -> dict[str, float]:
  """flops_per_step of every full train entry that has none yet (slow: ~10 s each)."""
  have = {e["id"] for e in (queue or {}).get("entries", []) if e.get("flops_per_step")}
  out = {}
  for entry in entries_module.entries():
    if (entry["kind"] == "train" and not entry.get("arg") and entry["status"] != "blocked"
        and entry["id"] not in have):
      try:
        out[entry["id"]] = entries_module.train_flops(entry)
      except Exception as e:  # noqa: BLE001 -- reported; the entry keeps no count
        print(f"{entry['id']}: no FLOP count ({type(e).__name__}: {e})", flush=True)
        continue
      print(f"{entry['id']}: {out[entry['id']]:.3g} FLOP/step", flush=True)
  return out

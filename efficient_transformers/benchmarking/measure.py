"""Timing, memory and OOM handling shared by the benchmark's two modes.

- `run(compiled, args, ...)`: the measurement of one compiled program. Memory
  is judged BEFORE running from XLA's memory analysis (arguments + outputs +
  temporaries - donated aliases); a program predicted above the limit is
  recorded as OOM without being run (on CPU a real out-of-memory kills the
  process rather than raising, and the prediction undercounts what the CPU
  runtime really holds, so the limit should keep a margin). Otherwise: one
  warm-up call (compilation is already done), then `repeats` timed calls, each
  ended by `block_until_ready`; the median is reported. Peak memory is the
  device's `peak_bytes_in_use` where the backend reports it and the process
  measures one program only (`isolated`), else the compiled prediction.
- A RESOURCE_EXHAUSTED error at compile or run time is recorded as OOM too.
- `matmul_flops_per_sec`: the machine's dense matmul rate, measured the same
  way, as the physical limit the kernels' achieved FLOP/s are read against.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

GIB = 2**30


def machine() -> dict[str, Any]:
  """Backend, device kind, device count, jax version and host CPU."""
  device = jax.devices()[0]
  return {"backend": jax.default_backend(), "device": str(device.device_kind),
          "num_devices": jax.device_count(), "jax": jax.__version__,
          "python": platform.python_version(),
          "cpu": platform.processor() or platform.machine(),
          "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def compiled_bytes(compiled) -> int | None:
  """XLA's predicted memory of a compiled program, or None if not reported."""
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None
  return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes +
             analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)


def compiled_flops(compiled) -> float | None:
  """XLA's own FLOP count of a compiled program (loop bodies counted once)."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001 -- not every backend implements it
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return None if not cost or "flops" not in cost else float(cost["flops"])


def peak_bytes() -> int | None:
  """The device's peak_bytes_in_use (GPU/TPU), None where not reported (CPU)."""
  device = jax.devices()[0]
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  return None if not stats else stats.get("peak_bytes_in_use")


def is_oom(error: BaseException) -> bool:
  text = str(error)
  return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or \
      "out of memory" in text


def time_calls(call: Callable[[], Any], repeats: int) -> float:
  """Median seconds of `repeats` calls after one warm-up call."""
  jax.block_until_ready(call())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(call())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def run(lower: Callable[[], Any], call: Callable[[Any], Any], *, repeats: int,
        memory_limit_gb: float, isolated: bool = False) -> dict[str, Any]:
  """Compiles (`lower().compile()`), checks the memory limit, then times.

  `call(compiled)` makes one call of the compiled program (it may carry state
  between calls, e.g. a train step feeding its new state to the next one).
  Returns a dict with status "ok" (seconds, bytes, bytes_source,
  predicted_bytes, xla_flops) or "OOM" (reason, predicted_bytes).
  """
  try:
    compiled = lower().compile()
  except Exception as e:  # noqa: BLE001 -- only an OOM is data; others raise
    if not is_oom(e):
      raise
    return {"status": "OOM", "reason": "compile: " + str(e).splitlines()[0]}
  predicted = compiled_bytes(compiled)
  result = {"predicted_bytes": predicted, "xla_flops": compiled_flops(compiled)}
  if predicted is not None and predicted > memory_limit_gb * GIB:
    return {"status": "OOM", **result,
            "reason": f"predicted {predicted / GIB:.2f} GiB > --memory_limit_gb="
                      f"{memory_limit_gb:g}"}
  try:
    seconds = time_calls(lambda: call(compiled), repeats)
  except Exception as e:  # noqa: BLE001
    if not is_oom(e):
      raise
    return {"status": "OOM", **result, "reason": "run: " + str(e).splitlines()[0]}
  peak = peak_bytes() if isolated else None
  return {"status": "ok", "seconds": seconds, **result,
          "bytes": peak if peak is not None else predicted,
          "bytes_source": "peak_bytes_in_use" if peak is not None
                          else "compiled memory analysis"}


def matmul_flops_per_sec(size: int, dtype: str, repeats: int) -> dict[str, Any]:
  """The rate of one [size, size] @ [size, size] matmul (2 size^3 FLOPs)."""
  keys = jax.random.split(jax.random.key(0))
  a, b = (jax.random.normal(k, (size, size), jnp.float32).astype(dtype) for k in keys)
  compiled = jax.jit(jnp.matmul).lower(a, b).compile()
  seconds = time_calls(lambda: compiled(a, b), repeats)
  return {"size": size, "dtype": dtype, "seconds": seconds,
          "flops_per_sec": 2 * size**3 / seconds}

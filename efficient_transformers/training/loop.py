"""The training loop behind train.py: train, evaluate, checkpoint, resume, report.

`train_and_evaluate(config, workdir)`:
1. checks the config and loads every split (a bad config or missing data stops
   here, before anything in the workdir is touched);
2. builds the model (NNX) and AdamW; resumes from `<workdir>/checkpoints` if a
   checkpoint exists (same data position, dropout keys and best-so-far);
3. trains with periodic evaluation on the validation split; the parameters with
   the best validation accuracy (lowest loss for language modelling) are kept;
4. evaluates those best parameters on the test split (test accuracy is reported
   at the best validation step, not the last one) and writes `results.json`.
Killing the process at any moment and rerunning the same command gives the same
results and the same metrics.jsonl rows as an uninterrupted run
(tests/training/test_resume.py). Rerunning it on a finished workdir (results.json
for the same number of steps) changes nothing: it logs the finished run's results.
"""

from __future__ import annotations

import functools
import json
import logging as python_logging
import os
import time

from absl import logging
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from efficient_transformers import models
from efficient_transformers.models.moe import activated_params
from efficient_transformers.training import config_checks, metrics_log, sharding
from efficient_transformers.training.checkpoints import Checkpoints
from efficient_transformers.training.metrics_log import MetricsLog
from efficient_transformers.training.optimizer import make_optimizer, make_schedule
from efficient_transformers.training.steps import (create_train_state, eval_step, reset_caches,
                                                  train_step)
import lra

SPLITS = ("train", "val", "test")
# Evaluation logs its progress (batches done / total) at most this often.
EVAL_PROGRESS_SECONDS = 10.0


class _HideTpuProbe(python_logging.Filter):
  """jax logs `Unable to initialize backend 'tpu': ... libtpu.so ...` at INFO
  whenever it probes for a TPU on a machine that has none (every CPU or GPU
  machine). It is not an error; keep it out of train.py's output."""

  def filter(self, record: python_logging.LogRecord) -> bool:
    return not (record.levelno < python_logging.WARNING and
                str(record.msg).startswith("Unable to initialize backend 'tpu'"))


# Installed at import, before train.py first asks jax for its devices.
python_logging.getLogger("jax._src.xla_bridge").addFilter(_HideTpuProbe())


class NonFiniteLossError(FloatingPointError):
  pass


def _load(config, split: str, **stage_options) -> lra.SplitData:
  data = config.data
  # config.data.options: the source's own options (e.g. movie_reviews' seed,
  # cache_dir, max_examples); generated sources also get the generator's.
  options = dict(data.get("options") or {})
  if data.source == "generated":
    options.update({"num_train_examples": data.num_train_examples, **data.generator})
  return lra.load(config.task, split, source=data.source, data_dir=data.data_dir,
                  max_length=data.max_length, **{**options, **stage_options})


def load_splits(config) -> dict[str, lra.SplitData]:
  return {split: _load(config, split) for split in SPLITS}


def curriculum_stages(config, train: lra.SplitData) -> list[tuple[dict, int | None]]:
  """[(train arrays, num_steps), ...] for `lra.staged_batches`.

  `config.data.curriculum` (optional): a list of stages {"options": {...},
  "num_steps": n}, each training on the task's train split loaded with
  `options` over config.data.options (e.g. an easier Pathfinder difficulty)
  for n steps; after the last stage, training goes on with config.data itself,
  which is also what validation and test always use.
  """
  stages = []
  for k, stage in enumerate(config.data.get("curriculum") or []):
    stage = dict(stage)
    unknown = sorted(set(stage) - {"options", "num_steps"})
    num_steps = stage.get("num_steps")
    if unknown or isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
      raise ValueError(f"config.data.curriculum[{k}] must be {{'options': {{...}}, "
                       f"'num_steps': int >= 1}}; got {stage}")
    data = _load(config, "train", **dict(stage.get("options") or {}))
    if (data.vocab_size, data.num_classes, data.max_length) != (
        train.vocab_size, train.num_classes, train.max_length):
      raise ValueError(f"config.data.curriculum[{k}] changes the vocabulary, classes or"
                       f" length ({data.vocab_size}, {data.num_classes}, {data.max_length})"
                       f" from the task's ({train.vocab_size}, {train.num_classes},"
                       f" {train.max_length}); stages must only change the examples")
    logging.info("curriculum stage %d: %d steps on %s (%d examples)", k, num_steps,
                 dict(stage.get("options") or {}), len(data))
    stages.append((data.arrays, num_steps))
  return stages + [(train.arrays, None)]


def _head(config, arrays) -> str:
  """config.model.head if set; else from the data: two inputs -> matcher,
  per-token targets [N, L] -> causal_lm, otherwise classifier."""
  if config.model.get("head"):
    return config.model.head
  if "inputs1" in arrays:
    return "matcher"
  return "causal_lm" if arrays["targets"].ndim == 2 else "classifier"


def _format_time(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
      f"{seconds // 60}m{seconds % 60:02d}s"


def evaluate(eval_fn, params, model_state, split: lra.SplitData, batch_size: int, *,
             name: str = "eval", progress_seconds: float = EVAL_PROGRESS_SECONDS
             ) -> dict[str, float]:
  """Mean loss and accuracy over `split` (per token for language modelling,
  with bits_per_byte). Segment memory (nnx.Cache) starts empty and is carried
  across the split's batches in order.

  Logs a line when it starts and then, every `progress_seconds`, the batches
  done out of the total (a large split takes minutes)."""
  num_examples = len(split)
  num_batches = -(-num_examples // batch_size)
  logging.info("evaluating on %s: %d examples in %d batches", name, num_examples,
               num_batches)
  start = last_report = time.time()
  totals, model_state = None, reset_caches(model_state)
  for done, batch in enumerate(lra.eval_batches(split.arrays, batch_size)):
    sums, model_state = eval_fn(params, model_state, batch)
    if totals is not None:
      # Waits for the `done` batches before this one while this one runs: one
      # batch in flight, so the count logged is what the device has done.
      jax.block_until_ready(totals)
      if time.time() - last_report >= progress_seconds:
        last_report = time.time()
        logging.info("evaluating on %s: %d/%d batches (%.0f%%), %s", name, done,
                     num_batches, 100 * done / num_batches,
                     _format_time(last_report - start))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = jax.device_get(totals)
  metrics = {"loss": totals["loss"] / totals["count"],
             "accuracy": totals["correct"] / totals["count"]}
  if split.arrays["targets"].ndim == 2:  # byte-level LM: nats per byte -> bits
    metrics["bits_per_byte"] = metrics["loss"] / np.log(2)
  return metrics


def train_and_evaluate(config, workdir: str) -> dict:
  """Runs (or resumes) one experiment in `workdir`; returns the results dict."""
  wall_start = time.time()
  config_checks.check_config(config)
  config_checks.check_workdir_matches(config, workdir)
  finished = metrics_log.read_results(workdir)
  if finished is not None and finished.get(
      "num_train_steps", config.train.num_train_steps) == config.train.num_train_steps:
    logging.info("%s: run already finished (results.json); nothing was changed. Its"
                 " results:\n%s\nTo evaluate again, delete %s and rerun.", workdir,
                 json.dumps(finished, indent=2),
                 os.path.join(workdir, metrics_log.RESULTS_FILE))
    return finished
  try:
    splits = load_splits(config)
    train = splits["train"]
    stages = curriculum_stages(config, train)
    head = _head(config, train.arrays)
    model = models.build(config.model, head=head, vocab_size=train.vocab_size,
                         num_classes=train.num_classes, max_length=train.max_length,
                         rngs=nnx.Rngs(params=config.seed))
  except (ValueError, FileNotFoundError) as e:
    raise config_checks.ConfigError(str(e)) from e
  for name, split in splits.items():
    logging.info("%s: %d examples, length %d, majority-class rate %.4f",
                 name, len(split), split.max_length, split.majority_class_rate())
  num_params = models.count_params(model)
  logging.info("model: %s attention, %s head, %d parameters", config.model.attention,
               head, num_params)
  if config.model.get("funnel"):
    logging.info("sequence length per stage: %s",
                 models.stage_lengths(model, train.max_length))
  if config.model.get("moe"):
    logging.info("MoE: %d parameters, %d activated per token", *activated_params(model))
  tx = make_optimizer(config.train)
  schedule = make_schedule(config.train)
  graphdef, state = create_train_state(model, tx)
  try:
    mesh = sharding.make_mesh(config.train.get("expert_parallelism", 1))
    sharding.check_batch_size(config.train.batch_size, "config.train.batch_size", mesh)
    sharding.check_batch_size(config.train.eval_batch_size, "config.train.eval_batch_size",
                              mesh)
  except ValueError as e:
    raise config_checks.ConfigError(str(e)) from e
  if mesh.devices.size > 1:
    logging.info("mesh %s over %d devices in %d processes", dict(mesh.shape),
                 mesh.devices.size, jax.process_count())
  state = sharding.place_state(state, mesh)

  # Everything above can fail on a bad config; only now is the workdir written.
  os.makedirs(workdir, exist_ok=True)
  if sharding.is_writer():
    metrics_log.write_text_atomically(os.path.join(workdir, "config.json"),
                                      config.to_json(indent=2))
    # Results of a shorter run that this one extends (more num_train_steps).
    stale = os.path.join(workdir, metrics_log.RESULTS_FILE)
    if os.path.exists(stale):
      os.remove(stale)
  checkpoints = Checkpoints(workdir)
  meta = {"best_val_accuracy": -1.0, "best_val_loss": float("inf"), "best_step": -1,
          "wall_seconds": 0.0,
          "train_seconds": 0.0, "train_steps": 0}
  step = 0
  if checkpoints.latest_step() is not None:
    state, meta = checkpoints.restore_latest(state)
    step = int(state.step)
    logging.info("resumed %s from step %d (best val accuracy %.4f at step %d)",
                 workdir, step, meta["best_val_accuracy"], meta["best_step"])
  # Best checkpoints and metrics rows of steps after `step` (all of them on a
  # fresh start) come from a killed session: they are dropped, and this session
  # writes them again.
  checkpoints.discard_after(step)
  log = MetricsLog(workdir, enabled=sharding.is_writer(), start_step=step)

  results = _train(config, state, meta, graphdef, tx, schedule, head, splits, stages,
                   checkpoints, log, wall_start, mesh)
  results["num_params"] = num_params
  if sharding.is_writer():
    metrics_log.write_results(workdir, results)
  log.close()
  checkpoints.close()
  logging.info("results: %s", metrics_log.dumps(results))
  return results


def _train(config, state, meta, graphdef, tx, schedule, head, splits, stages, checkpoints,
           log, wall_start, mesh):
  cfg = config.train
  dtype = cfg.get("dtype", "float32")
  # The state keeps its placement (experts split, the rest replicated) step to step.
  state_sharding = jax.tree.map(lambda x: x.sharding, state)
  train_fn = jax.jit(functools.partial(
      train_step, graphdef=graphdef, tx=tx, head=head, seed=config.seed, dtype=dtype,
      grad_accum_steps=cfg.get("grad_accum_steps", 1)), donate_argnums=0,
      out_shardings=(state_sharding, sharding.replicated(mesh)))
  eval_step_fn = jax.jit(functools.partial(eval_step, graphdef=graphdef, head=head,
                                           dtype=dtype))

  def eval_fn(params, model_state, batch):
    return eval_step_fn(params, model_state, sharding.shard_batch(batch, mesh))

  num_steps = cfg.num_train_steps
  step = int(state.step)
  batches = lra.staged_batches(stages, cfg.batch_size, seed=config.seed,
                               start_step=step, shuffle=not splits["train"].ordered)
  wall_offset = meta["wall_seconds"]
  # window_steps: steps whose metrics are in `totals`; timed_steps: those whose
  # time is in the window (the first step of a session compiles; it is not timed).
  totals, window_start, window_steps, timed_steps = None, time.time(), 0, 0
  compiling = True

  def flush_train_metrics():
    """Host sync: logs the window's mean metrics; aborts on a non-finite loss."""
    nonlocal totals, window_start, window_steps, timed_steps
    if totals is None:
      return
    sums = jax.device_get(totals)
    elapsed = time.time() - window_start
    meta["train_seconds"] += elapsed
    meta["train_steps"] += timed_steps
    loss = sums["loss"] / sums["count"]
    if not np.isfinite(loss):
      raise NonFiniteLossError(
          f"training loss became {loss} between steps {step - window_steps} and {step};"
          f" stopping. The last good checkpoint (step {checkpoints.latest_step()}) is kept."
          " Lower config.train.learning_rate or set config.train.grad_clip_norm.")
    rate = timed_steps / max(elapsed, 1e-9)
    log.write(step, "train", loss=loss, accuracy=sums["correct"] / sums["count"],
              aux_loss=sums["aux_loss"] / window_steps,
              grad_norm=sums["grad_norm"] / window_steps,
              learning_rate=float(schedule(step)), steps_per_sec=rate)
    logging.info("step %d/%d | loss %.4f | acc %.4f | lr %.3g | %.2f steps/s | ETA %s",
                 step, num_steps, loss, sums["correct"] / sums["count"],
                 float(schedule(step)), rate,
                 _format_time((num_steps - step) / max(rate, 1e-9)))
    totals, window_start, window_steps, timed_steps = None, time.time(), 0, 0

  while step < num_steps:
    state, sums = train_fn(state, sharding.shard_batch(next(batches), mesh))
    step += 1
    window_steps += 1
    if compiling:  # the session's first step compiles: exclude it from the timing
      jax.block_until_ready(sums)
      window_start, compiling = time.time(), False
    else:
      timed_steps += 1
    sums = dict(sums)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    is_last = step == num_steps
    do_eval = step % cfg.eval_every_steps == 0 or is_last
    do_save = step % cfg.checkpoint_every_steps == 0 or is_last
    if step % cfg.log_every_steps == 0 or do_eval or do_save:
      flush_train_metrics()
    if do_eval:
      val = evaluate(eval_fn, state.params, state.model_state, splits["val"],
                     cfg.eval_batch_size, name=f"val (step {step})")
      log.write(step, "val", **val)
      # Classification keeps the best accuracy; language modelling the lowest
      # loss (bits per byte).
      improved = (val["loss"] < meta.get("best_val_loss", float("inf"))
                  if "bits_per_byte" in val else val["accuracy"] > meta["best_val_accuracy"])
      logging.info("step %d | val loss %.4f | val acc %.4f%s", step, val["loss"],
                   val["accuracy"], " (best)" if improved else "")
      if improved:
        meta["best_val_accuracy"], meta["best_step"] = float(val["accuracy"]), step
        meta["best_val_loss"] = float(val["loss"])
        checkpoints.save_best(step, state.params, state.model_state)
      window_start = time.time()  # eval time is not train time
    if do_save:
      meta["wall_seconds"] = wall_offset + time.time() - wall_start
      checkpoints.save_latest(state, meta)
      window_start = time.time()

  best_params, best_model_state = checkpoints.restore_best(state.params, state.model_state)
  test = evaluate(eval_fn, best_params, best_model_state, splits["test"], cfg.eval_batch_size,
                  name=f"test (best step {meta['best_step']})")
  log.write(meta["best_step"], "test", **test)
  logging.info("test accuracy %.4f at the best validation step %d (val accuracy %.4f);"
               " majority-class rates: val %.4f, test %.4f", test["accuracy"],
               meta["best_step"], meta["best_val_accuracy"],
               splits["val"].majority_class_rate(), splits["test"].majority_class_rate())
  results = {
      "task": config.task,
      "model": config.get("model_name"),  # the preset (efficient_transformers/presets.py)
      "attention": config.model.attention,
      "seed": config.seed,
      "best_step": meta["best_step"],
      "val_accuracy": meta["best_val_accuracy"],
      "test_accuracy": float(test["accuracy"]),
      "test_loss": float(test["loss"]),
      "val_majority_class_rate": splits["val"].majority_class_rate(),
      "test_majority_class_rate": splits["test"].majority_class_rate(),
      "num_train_steps": num_steps,
      "steps_per_sec": meta["train_steps"] / max(meta["train_seconds"], 1e-9),
      "wall_seconds": wall_offset + time.time() - wall_start,
  }
  if "bits_per_byte" in test:
    results["test_bits_per_byte"] = float(test["bits_per_byte"])
  return results

"""Orbax checkpoints of a run: the latest state (for resume) and the best one.

Layout under `<workdir>/checkpoints/`:
  latest/<step>/  state (step, params, model state, optimizer) + `meta` JSON: best
                  validation accuracy and step, accumulated wall time and train time.
  best/<step>/    params and model state at the best validation accuracy so far.
Orbax writes each step to a temporary directory and renames it when complete,
so a run killed mid-save leaves the previous checkpoint intact (the temporary
directory is removed when the run is restarted).

Resume rule: the latest checkpoint is the truth. Best checkpoints newer than it
were written by steps that will be replayed, so `discard_after(step)` removes
them (the replay writes them again, identically).
"""

from __future__ import annotations

import os
import shutil

from flax import nnx
import jax
import orbax.checkpoint as ocp

from efficient_transformers.training.steps import TrainState


def _manager(directory: str, max_to_keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False,
      cleanup_tmp_directories=True)  # a save cut short by a kill
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def _pure(state: TrainState):
  return {"step": state.step, "params": nnx.to_pure_dict(state.params),
          "model_state": nnx.to_pure_dict(state.model_state),
          "opt_state": state.opt_state}


def _replaced(template, pure):
  """A copy of nnx.State `template` holding the values of `pure` (a pure dict)."""
  state = jax.tree.map(lambda x: x, template)
  nnx.replace_by_pure_dict(state, pure)
  return state


class Checkpoints:
  """The latest and best checkpoints of one workdir."""

  def __init__(self, workdir: str):
    self.directory = os.path.join(workdir, "checkpoints")
    self.latest = _manager(os.path.join(self.directory, "latest"), max_to_keep=2)
    self.best = _manager(os.path.join(self.directory, "best"), max_to_keep=1)

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def save_latest(self, state: TrainState, meta: dict) -> None:
    step = int(state.step)
    self.latest.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_pure(state)), meta=ocp.args.JsonSave(meta)))
    self.latest.wait_until_finished()

  def restore_latest(self, template: TrainState) -> tuple[TrainState, dict]:
    """Restores into `template`'s structure (a freshly initialised state)."""
    step = self.latest.latest_step()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _pure(template))
    restored = self.latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    pure = restored["state"]
    state = TrainState(step=pure["step"], params=_replaced(template.params, pure["params"]),
                       model_state=_replaced(template.model_state, pure["model_state"]),
                       opt_state=pure["opt_state"])
    return state, dict(restored["meta"])

  def save_best(self, step: int, params, model_state) -> None:
    variables = {"params": nnx.to_pure_dict(params),
                 "model_state": nnx.to_pure_dict(model_state)}
    self.best.save(step, args=ocp.args.Composite(
        variables=ocp.args.StandardSave(variables)), force=True)
    self.best.wait_until_finished()

  def restore_best(self, template_params, template_model_state):
    """(params, model_state) saved at the best validation step."""
    step = self.best.latest_step()
    if step is None:
      raise FileNotFoundError(f"no best checkpoint under {self.directory}/best")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                            {"params": nnx.to_pure_dict(template_params),
                             "model_state": nnx.to_pure_dict(template_model_state)})
    restored = self.best.restore(step, args=ocp.args.Composite(
        variables=ocp.args.StandardRestore(abstract)))["variables"]
    return (_replaced(template_params, restored["params"]),
            _replaced(template_model_state, restored["model_state"]))

  def discard_after(self, step: int) -> None:
    """Removes best checkpoints written after `step` (they will be replayed)."""
    for s in self.best.all_steps():
      if s > step:
        shutil.rmtree(os.path.join(self.best.directory, str(s)))
    self.best.reload()

  def close(self) -> None:
    self.latest.close()
    self.best.close()

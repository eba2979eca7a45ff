"""Variable kinds that the training step treats differently from parameters.

Every model's state splits three ways (`nnx.split(model, nnx.Param, AuxLoss, ...)`):

- `nnx.Param` — trained by the optimiser, checkpointed.
- `AuxLoss` — scalars a module contributes to the *training* loss during a
  forward pass (MoE load-balancing and router z-loss, the Routing Transformer's
  commitment loss, the Compressive Transformer's reconstruction loss). A module
  calls `add_aux_loss(self, "name", weighted_value)` with the weight already
  applied; the train step runs the model through `call_with_aux_loss` (which
  captures them with `nnx.capture`) and adds their sum to the cross-entropy.
  They are transient: never stored in the model, carried between steps or
  checkpointed.
- everything else (`nnx.BatchStat` for running statistics such as routing
  centroids updated by an exponential moving average; `nnx.Cache` for
  Transformer-XL segment memory) — "model state": updated by the forward pass
  in training (never by the optimiser), carried in `TrainState.model_state`
  and checkpointed, so a resumed run continues with exactly the same values.
  Modules must leave it unchanged when `deterministic=True` (evaluation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class AuxLoss(nnx.Intermediate):
  """A weighted auxiliary loss sown during a forward pass (see module docstring)."""


def add_aux_loss(module: nnx.Module, name: str, value: jax.Array) -> None:
  """Records `value` (a scalar, weight applied) to be added to the training loss.

  Several calls under the same name (e.g. one per forward pass of a shared
  module) accumulate; all are summed by `call_with_aux_loss`.
  """
  value = jnp.asarray(value, jnp.float32)
  if value.shape != ():
    raise ValueError(f"auxiliary loss {name!r} must be a scalar, got shape {value.shape}")
  module.sow(AuxLoss, name, value)


def _total(state) -> jax.Array:
  return sum((jnp.sum(leaf) for leaf in jax.tree.leaves(state)), jnp.zeros((), jnp.float32))


def call_with_aux_loss(model: nnx.Module, *args, **kwargs) -> tuple[object, jax.Array]:
  """(model(*args, **kwargs), float32 sum of the AuxLoss values it sowed)."""
  out, aux = nnx.capture(model, AuxLoss)(*args, **kwargs)
  return out, _total(aux)

"""Data parallelism with JAX's own runtime: one code path for one CPU, many
devices, and many hosts.

- Processes: `initialize_distributed` calls `jax.distributed.initialize` (from
  explicit arguments, or with JAX's cluster auto-detection: SLURM, Open MPI,
  Cloud TPU, or the JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
  JAX_PROCESS_ID environment variables). On CPU, cross-process collectives use
  gloo.
- Mesh: every device of every process on one axis, `data`.
- Batches: sharded along `data` by rows. Every process reads the same
  deterministic batch stream (lra.train_batches / eval_batches) and hands JAX
  only its own rows of each global batch (`shard_batch`), so the result does
  not depend on the number of devices or hosts: N devices with global batch B
  compute exactly what one device computes with batch B (to float32 rounding of
  the cross-device sums; tests/training/test_sharding.py).
- State (parameters, optimiser state, model state): replicated on every device.

MoE expert weights are stacked [num_experts, ...] (models/moe.py) so that an
`expert` mesh axis can shard them; the loop does not build that axis yet (all
parameters replicated): that is the next step for expert parallelism.
"""

from __future__ import annotations

import os

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None, *, auto: bool = False) -> bool:
  """Joins a multi-process run when asked to; returns whether it did.

  Asked to = a coordinator address is given (argument or JAX_COORDINATOR_ADDRESS)
  or `auto` (cluster auto-detection by jax.distributed.initialize()). Must run
  before anything touches a JAX device.
  """
  if not (auto or coordinator_address or "JAX_COORDINATOR_ADDRESS" in os.environ):
    return False
  # CPU hosts need a collectives implementation for cross-process sums.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  return True


def make_mesh() -> Mesh:
  """All devices of all processes on the `data` axis."""
  return Mesh(np.array(jax.devices()), (DATA_AXIS,))


def check_batch_size(batch_size: int, what: str, mesh: Mesh) -> None:
  """ValueError unless `batch_size` splits evenly over devices and processes."""
  devices, processes = mesh.devices.size, jax.process_count()
  if batch_size % devices or batch_size % processes:
    raise ValueError(f"{what}={batch_size} must be a multiple of the number of devices"
                     f" ({devices}) and processes ({processes}) for data parallelism")


def replicate(tree, mesh: Mesh):
  """Places every array of `tree` (identical on every process) on every device."""
  sharding = NamedSharding(mesh, P())

  def put(x):
    x = np.asarray(jax.device_get(x)) if isinstance(x, jax.Array) else x
    if not hasattr(x, "shape"):
      return x
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree.map(put, tree)


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """The global batch (identical on every process) as arrays sharded by rows;
  each process contributes only the rows its devices hold."""
  out = {}
  for name, array in batch.items():
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    rows = sorted({index[0].start or 0 for index in
                   sharding.addressable_devices_indices_map(array.shape).values()})
    per_device = array.shape[0] // mesh.devices.size
    local = np.concatenate([array[start:start + per_device] for start in rows])
    out[name] = jax.make_array_from_process_local_data(sharding, local, array.shape)
  return out


def is_writer() -> bool:
  """Only process 0 writes the workdir's logs and results (all processes
  take part in checkpointing, which orbax coordinates)."""
  return jax.process_index() == 0

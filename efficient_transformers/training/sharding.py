"""Data parallelism with JAX's own runtime: one code path for one CPU, many
devices, and many hosts.

- Processes: `initialize_distributed` calls `jax.distributed.initialize` (from
  explicit arguments, or with JAX's cluster auto-detection: SLURM, Open MPI,
  Cloud TPU, or the JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
  JAX_PROCESS_ID environment variables). On CPU, cross-process collectives use
  gloo.
- Mesh: every device of every process, laid out as (`data`, `expert`) with
  `expert` of size `expert_parallelism` (1 by default: pure data parallelism).
- Batches: sharded by rows over all devices (both axes). Every process reads the same
  deterministic batch stream (lra.train_batches / eval_batches) and hands JAX
  only its own rows of each global batch (`shard_batch`), so the result does
  not depend on the number of devices or hosts: N devices with global batch B
  compute exactly what one device computes with batch B (to float32 rounding of
  the cross-device sums; tests/training/test_sharding.py).
- State (parameters, optimiser state, model state): replicated on every
  device, except variables whose metadata names mesh axes
  (`nnx.get_partition_spec`): MoE expert weights, stacked [num_experts, ...]
  and tagged "expert" (models/moe.py), are split over the `expert` axis, and
  so are their optimiser moments. XLA inserts the collectives the dispatch
  and combine einsums need.
"""

from __future__ import annotations

import os

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from flax import nnx

DATA_AXIS = "data"
EXPERT_AXIS = "expert"
BATCH_AXES = (DATA_AXIS, EXPERT_AXIS)  # batch rows are split over every device


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


def make_mesh(expert_parallelism: int = 1) -> Mesh:
  """All devices of all processes as a (data, expert) grid."""
  count = jax.device_count()
  if expert_parallelism < 1 or count % expert_parallelism:
    raise ValueError(f"expert_parallelism={expert_parallelism} must divide the number of"
                     f" devices ({count})")
  devices = np.array(jax.devices()).reshape(count // expert_parallelism, expert_parallelism)
  return Mesh(devices, (DATA_AXIS, EXPERT_AXIS))


def check_batch_size(batch_size: int, what: str, mesh: Mesh) -> None:
  """ValueError unless `batch_size` splits evenly over devices and processes."""
  devices, processes = mesh.devices.size, jax.process_count()
  if batch_size % devices or batch_size % processes:
    raise ValueError(f"{what}={batch_size} must be a multiple of the number of devices"
                     f" ({devices}) and processes ({processes}) for data parallelism")


def place_state(tree, mesh: Mesh):
  """Places `tree` (identical on every process) on the mesh: each array split
  as its variable's sharding metadata says (e.g. experts over `expert`),
  replicated otherwise."""
  is_spec = lambda x: isinstance(x, P)  # noqa: E731
  specs = jax.tree.leaves(nnx.get_partition_spec(tree), is_leaf=is_spec)
  values, treedef = jax.tree.flatten(tree)
  if len(specs) != len(values):
    raise ValueError("sharding metadata does not match the state's arrays")

  def put(x, spec):
    if not hasattr(x, "shape"):
      return x
    x = np.asarray(jax.device_get(x))
    spec = spec if is_spec(spec) else P()
    return jax.make_array_from_callback(x.shape, NamedSharding(mesh, spec),
                                        lambda index: x[index])

  return jax.tree.unflatten(treedef, [put(x, s) for x, s in zip(values, specs)])


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """The global batch (identical on every process) as arrays sharded by rows;
  each process contributes only the rows its devices hold."""
  out = {}
  for name, array in batch.items():
    sharding = NamedSharding(mesh, P(BATCH_AXES))
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


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())

"""Runs a few data-parallel train steps of a tiny classifier; writes the losses
and final parameters to an .npz. Used by test_sharding.py in subprocesses:

  python data_parallel_worker.py OUT.npz [COORDINATOR NUM_PROCESSES PROCESS_ID]

Environment: WORKER_MOE=1 replaces the MLP by a 4-expert MoE (models/moe.py);
EXPERT_PARALLELISM=K splits the experts over a mesh axis of K devices.
"""

import functools
import os
import sys

from efficient_transformers.training import sharding

if len(sys.argv) > 2:
  sharding.initialize_distributed(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

from flax import nnx  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from efficient_transformers import models  # noqa: E402
from efficient_transformers.training import steps  # noqa: E402

MODEL = {"attention": "dense", "num_layers": 1, "emb_dim": 16, "num_heads": 2,
         "mlp_dim": 32, "dropout_rate": 0.1}


def main(out_path):
  config = dict(MODEL)
  if os.environ.get("WORKER_MOE"):
    config["moe"] = {"num_experts": 4, "router": "top2", "capacity_factor_train": 1.0,
                     "capacity_factor_eval": 2.0, "group_size": 16,
                     "load_balance_weight": 0.01, "z_loss_weight": 0.001, "every": 1}
  model = models.build(config, head="classifier", vocab_size=11, num_classes=3,
                       max_length=9, rngs=nnx.Rngs(params=0))
  tx = optax.adamw(1e-2)
  graphdef, state = steps.create_train_state(model, tx)
  mesh = sharding.make_mesh(int(os.environ.get("EXPERT_PARALLELISM", "1")))
  state = sharding.place_state(state, mesh)
  train_fn = jax.jit(functools.partial(steps.train_step, graphdef=graphdef, tx=tx,
                                       head="classifier", seed=0))
  rng = np.random.default_rng(0)
  losses = []
  for _ in range(3):
    batch = {"inputs": rng.integers(1, 11, (8, 8)).astype(np.int32),
             "targets": rng.integers(0, 3, (8,)).astype(np.int32)}
    state, sums = train_fn(state, sharding.shard_batch(batch, mesh))
    losses.append(float(sums["loss"]) / float(sums["count"]))
  params = [np.asarray(x) for x in jax.tree.leaves(state.params)]
  if sharding.is_writer() or len(sys.argv) > 2:
    np.savez(out_path, losses=np.array(losses), devices=mesh.devices.size,
             **{f"p{i}": p for i, p in enumerate(params)})


if __name__ == "__main__":
  main(sys.argv[1])

r"""Train and evaluate one model on one LRA task.

  python train.py --config=configs/transformer_listops.py --workdir=workdirs/listops \
      [--config.train.num_train_steps=1000 ...]

`--config` is a Python file whose get_config(arg) returns an ml_collections
ConfigDict; `--config=file.py:quick` passes "quick" as arg (a small offline run).
Any field can be overridden with --config.a.b=value. Rerunning the same command
on the same --workdir resumes from its last checkpoint. The workdir receives
config.json, metrics.jsonl, TensorBoard events, checkpoints/ and results.json.

Every local device is used (data parallel). Several hosts: run the same command
on each with --coordinator_address=HOST:PORT --num_processes=N --process_id=I
(or --multihost on a cluster JAX auto-detects: SLURM, Open MPI, Cloud TPU);
the workdir must be on a filesystem all hosts share.
"""

import logging as python_logging
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from efficient_transformers.training import config_checks, sharding, train_and_evaluate
from efficient_transformers.training.loop import NonFiniteLossError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/{model}_{task}.py[:arg]).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory: checkpoints, metrics and results go here.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-host: HOST:PORT of process 0 (jax.distributed).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Multi-host with the cluster's settings auto-detected by JAX.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_quiet_libraries)
  sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value,
                                  _PROCESS_ID.value, auto=_MULTIHOST.value)
  logging.info("jax %s on %s: %s", jax.__version__, jax.default_backend(), jax.devices())
  try:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except config_checks.ConfigError as e:
    # Bad config, data or missing data: `error: <what and how to fix it>`, exit 2.
    config_checks.exit_with(e, _CONFIG.value, flags.FLAGS["config"].config_filename)
  except NonFiniteLossError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


def _quiet_libraries(record) -> bool:
  """Keeps orbax's per-save INFO chatter out of the progress output."""
  return record.levelno >= python_logging.WARNING or "/orbax/" not in record.pathname


if __name__ == "__main__":
  logging.set_verbosity(logging.INFO)
  app.run(main, flags_parser=config_checks.parse_flags)  # bad flags: `error:`, exit 2

r"""Writes LRA-format ListOps TSVs (basic_{train,val,test}.tsv), seeded.

The defaults reproduce the sizes and settings of Long Range Arena's ListOps
(Tay et al., ICLR 2021; generator of lra_benchmarks/data/listops.py): 96,000 /
2,000 / 2,000 trees, 500 < length < 2000, max_depth 10, max_args 10. That takes
minutes on one CPU core (about 8% of drawn trees are kept).

    python scripts/generate_listops.py --output_dir=/tmp/listops --seed=0

(from the repo root; with PYTHONPATH=. until the repo is pip-installed).

The files can then be read with
`lra.load("listops", split, source="lra_release", data_dir=output_dir)`.
"""

from absl import app
from absl import flags

from lra import listops

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder for the TSVs.",
                                  required=True)
_SEED = flags.DEFINE_integer("seed", 0, "Generator seed.")
_NUM_TRAIN = flags.DEFINE_integer("num_train_examples", 96_000,
                                  "Training trees.")
_NUM_EVAL = flags.DEFINE_integer("num_eval_examples", 2_000,
                                 "Trees in each of val and test.")
_MIN_LENGTH = flags.DEFINE_integer("min_length", 500,
                                   "Keep trees with length > min_length.")
_MAX_LENGTH = flags.DEFINE_integer("max_length", 2000,
                                   "Keep trees with length < max_length.")
_MAX_DEPTH = flags.DEFINE_integer("max_depth", 10, "Maximum tree depth.")
_MAX_ARGS = flags.DEFINE_integer("max_args", 10, "Maximum operator arity.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  splits = listops.generate(
      seed=_SEED.value, num_train_examples=_NUM_TRAIN.value,
      num_eval_examples=_NUM_EVAL.value, min_length=_MIN_LENGTH.value,
      max_length=_MAX_LENGTH.value, max_depth=_MAX_DEPTH.value,
      max_args=_MAX_ARGS.value)
  listops.write_splits(_OUTPUT_DIR.value, splits)
  for split in listops.SPLITS:
    print(f"{listops.tsv_path(_OUTPUT_DIR.value, split)}: "
          f"{len(splits[split])} examples")


if __name__ == "__main__":
  app.run(main)

"""ListOps: generator, evaluator, TSV files, tokenizer and loader.

ListOps (Nangia & Bowman, "ListOps: A Diagnostic Dataset for Latent Tree
Learning", NAACL SRW 2018), in the long form used by Long Range Arena (Tay et
al., ICLR 2021): a prefix expression over the digits 0-9 with the operators
`[MIN`, `[MAX`, `[MED` (median, truncated: `int(np.median)`) and `[SM` (sum
mod 10), each closed by `]`. The target is the expression's value (10 classes).

Generator (LRA's published procedure, but seeded): a node at depth < max_depth
is an operator with probability 0.25 (else a leaf); at max_depth it is a leaf;
an operator has `randint(2, max_args)` children. A tree's length counts values
plus 2 per operator (the operator and its `]`), never parentheses. Trees with
min_length < length < max_length are kept, de-duplicated, and split in
generation order: train, then val, then test (so the splits are disjoint).

Text form, as LRA's `to_string` prints its nested binary tuples:
`[MAX 2 9 ]` is written `( ( ( [MAX 2 ) 9 ) ] )`.

Tokenizer, a FIXED vocabulary (not built from data, unlike LRA's):
  0 = padding, 1..10 = digits '0'..'9', 11 = '[MIN', 12 = '[MAX', 13 = '[MED',
  14 = '[SM', 15 = ']'.  VOCAB_SIZE = 16.
Parentheses are dropped (as LRA does). `]` is kept: LRA's tokenizer dropped it,
which leaves the tree structure ambiguous and the task unsolvable as posed.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import random
import time
from typing import NamedTuple, Union

from absl import logging
import numpy as np

from lra import dataset

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
CLOSE = "]"
OPERATOR_PROB = 0.25  # LRA's VALUE_P: a node is an operator iff random() <= it.
NUM_CLASSES = 10
SPLITS = dataset.SPLITS
SOURCES = ("generated", "lra_release")
LRA_DEFAULTS = dict(min_length=500, max_length=2000, max_depth=10, max_args=10)

PAD_ID = 0
VOCAB = ("<pad>",) + tuple(str(v) for v in range(10)) + OPERATORS + (CLOSE,)
TOKEN_IDS = {token: i for i, token in enumerate(VOCAB) if i != PAD_ID}
VOCAB_SIZE = len(VOCAB)
_LABELS = {str(v): v for v in range(NUM_CLASSES)}

# A tree is a leaf value, or (operator, children).
Tree = Union[int, tuple[str, tuple["Tree", ...]]]


class Example(NamedTuple):
  source: str  # LRA text form, with parentheses.
  target: int


# ---------------------------------------------------------------- trees


class _TooLong(Exception):
  pass


def random_tree(rng: random.Random, *, max_depth: int = 10, max_args: int = 10,
                length_limit: int | None = None) -> tuple[Tree | None, int]:
  """Draws one tree by LRA's procedure; returns (tree, length).

  With `length_limit`, drawing stops as soon as the length reaches it and
  (None, length so far) is returned: such a tree would be rejected anyway, so
  the accepted trees have the same distribution, only faster.
  """
  length = [0]

  def draw(depth):
    if depth < max_depth and rng.random() <= OPERATOR_PROB:
      length[0] += 2
      if length_limit is not None and length[0] >= length_limit:
        raise _TooLong
      children = tuple(draw(depth + 1) for _ in range(rng.randint(2, max_args)))
      return (rng.choice(OPERATORS), children)
    length[0] += 1
    if length_limit is not None and length[0] >= length_limit:
      raise _TooLong
    return rng.randrange(10)

  try:
    return draw(1), length[0]
  except _TooLong:
    return None, length[0]


def tree_length(tree: Tree) -> int:
  """LRA's length: values + 2 per operator (= tokens without parentheses)."""
  if isinstance(tree, int):
    return 1
  return 2 + sum(tree_length(child) for child in tree[1])


def _median(values: list[int]) -> int:
  """int(np.median(values)) for non-negative ints: .5 medians truncate."""
  s = sorted(values)
  mid = len(s) // 2
  return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) // 2


_APPLY = {
    "[MIN": min,
    "[MAX": max,
    "[MED": _median,
    "[SM": lambda values: sum(values) % 10,
}


def evaluate(tree: Tree) -> int:
  """The value of a tree, 0..9."""
  if isinstance(tree, int):
    return tree
  op, children = tree
  return _APPLY[op]([evaluate(child) for child in children])


def to_string(tree: Tree) -> str:
  """LRA's text form: `[OP a b ]` as binary pairs `( ( ( [OP a ) b ) ] )`."""
  if isinstance(tree, int):
    return str(tree)
  op, children = tree
  text = f"( {op} {to_string(children[0])} )"
  for child in children[1:]:
    text = f"( {text} {to_string(child)} )"
  return f"( {text} {CLOSE} )"


def tokenize(source: str) -> list[str]:
  """Whitespace tokens without parentheses: values, operators and `]`."""
  return [t for t in source.split() if t not in ("(", ")")]


def parse(source: str) -> Tree:
  """Inverse of `to_string` (parentheses optional); ValueError if malformed."""
  stack: list[tuple[str, list[Tree]]] = []
  result = None
  for token in tokenize(source):
    if result is not None:
      raise ValueError(f"tokens after the end of the expression: {source!r}")
    if token in OPERATORS:
      stack.append((token, []))
      continue
    if token == CLOSE:
      if not stack or len(stack[-1][1]) < 1:
        raise ValueError(f"unexpected {CLOSE!r} in {source!r}")
      op, children = stack.pop()
      node = (op, tuple(children))
    elif token in TOKEN_IDS:
      node = int(token)
    else:
      raise ValueError(f"unknown ListOps token {token!r} in {source!r}")
    if stack:
      stack[-1][1].append(node)
    else:
      result = node
  if result is None or stack:
    raise ValueError(f"incomplete ListOps expression: {source!r}")
  return result


# ------------------------------------------------------------ generator


def _max_tree_length(max_depth: int, max_args: int) -> int:
  length = 1
  for _ in range(max_depth - 1):
    length = 2 + max_args * length
  return length


def generate(*, seed: int = 0, num_train_examples: int = 96_000,
             num_eval_examples: int = 2_000, min_length: int = 500,
             max_length: int = 2000, max_depth: int = 10, max_args: int = 10,
             log_every: int = 5000) -> dict[str, list[Example]]:
  """Generates {'train', 'val', 'test'} examples; same arguments, same data.

  Splits hold num_train_examples, num_eval_examples and num_eval_examples
  distinct trees with min_length < length < max_length, taken in generation
  order. Logs progress (absl) every `log_every` accepted trees.
  """
  if max_args < 2 or max_depth < 1:
    raise ValueError(f"need max_args >= 2 and max_depth >= 1; got {max_args=}, "
                     f"{max_depth=}")
  if not min_length + 1 < max_length:
    raise ValueError(f"no length L with {min_length} < L < {max_length}")
  if min_length + 1 > _max_tree_length(max_depth, max_args):
    raise ValueError(f"{max_depth=} and {max_args=} allow no tree longer "
                     f"than {_max_tree_length(max_depth, max_args)} <= "
                     f"{min_length=}")
  sizes = dict(train=num_train_examples, val=num_eval_examples,
               test=num_eval_examples)
  total = sum(sizes.values())
  rng = random.Random(seed)
  seen, examples = set(), []
  drawn = drawn_at_last_accept = 0
  start = time.time()
  while len(examples) < total:
    tree, length = random_tree(rng, max_depth=max_depth, max_args=max_args,
                               length_limit=max_length)
    drawn += 1
    if drawn - drawn_at_last_accept > 1_000_000:
      raise RuntimeError(f"1e6 draws without a new tree after {len(examples)} "
                         "accepted: too few distinct trees for these settings")
    if tree is None or length <= min_length:
      continue
    source = to_string(tree)
    if source in seen:
      continue
    seen.add(source)
    examples.append(Example(source, evaluate(tree)))
    drawn_at_last_accept = drawn
    if len(examples) % log_every == 0 or len(examples) == total:
      logging.info("ListOps: %d/%d trees accepted, %d drawn (%.1f%%), %.0f s",
                   len(examples), total, drawn, 100 * len(examples) / drawn,
                   time.time() - start)
  splits, offset = {}, 0
  for split, size in sizes.items():
    splits[split] = examples[offset:offset + size]
    offset += size
  return splits


# ------------------------------------------------------------ TSV files


def tsv_path(data_dir: str, split: str) -> str:
  """LRA's file name: {data_dir}/basic_{split}.tsv."""
  return os.path.join(data_dir, f"basic_{split}.tsv")


def write_tsv(path: str, examples: list[Example]) -> None:
  """Writes `Source\\tTarget` + rows, atomically (tmp file + os.replace)."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w", newline="") as f:
    writer = csv.writer(f, delimiter="\t", lineterminator="\n")
    writer.writerow(["Source", "Target"])
    writer.writerows(examples)
  os.replace(tmp, path)


def read_tsv(path: str) -> list[Example]:
  """Reads an LRA ListOps TSV (header `Source\\tTarget`).

  A bad line (not UTF-8, not two fields, a label that is not a class id
  0..9) raises `lra.dataset.DataError` naming the file and line.
  """
  return _read_tsv(path)[0]


def _read_tsv(path: str) -> tuple[list[Example], list[int]]:
  """(examples, the line number of each) of a ListOps TSV file."""
  examples, line_numbers = [], []
  rows = csv.reader(dataset.text_lines(path), delimiter="\t")
  header = next(rows, None)
  if header != ["Source", "Target"]:
    raise dataset.DataError(path, "line 1", f"header {dataset.show(header)}",
                            "['Source', 'Target'] (an LRA ListOps TSV file)")
  for row in rows:
    line = rows.line_num
    if not row:  # A blank line.
      continue
    if len(row) != 2 or row[1].strip() not in _LABELS:
      cut = dataset.CUT_SHORT if _is_last(rows) and dataset.ends_mid_line(path) else ""
      if len(row) != 2:
        raise dataset.DataError(
            path, f"line {line}", f"{len(row)} tab-separated field"
            f"{'s' if len(row) != 1 else ''} {dataset.show(row)}{cut}",
            "2: Source<TAB>Target")
      raise dataset.DataError(path, f"line {line}",
                              f"label {dataset.show(row[1])}{cut}",
                              f"a class id in 0..{NUM_CLASSES - 1} (the "
                              "expression's value)")
    examples.append(Example(row[0], _LABELS[row[1].strip()]))
    line_numbers.append(line)
  return examples, line_numbers


def _is_last(rows) -> bool:
  try:
    return next(rows, None) is None
  except dataset.DataError:
    return False


def write_splits(output_dir: str, splits: dict[str, list[Example]]) -> None:
  """Writes basic_{train,val,test}.tsv under output_dir (created if needed)."""
  os.makedirs(output_dir, exist_ok=True)
  for split, examples in splits.items():
    write_tsv(tsv_path(output_dir, split), examples)


# ------------------------------------------------------------ tokenizer


def encode(sources: list[str], max_length: int, locate=None) -> np.ndarray:
  """int32 [N, max_length] token ids: truncated, padded with PAD_ID (0).

  An unknown token raises `lra.dataset.DataError` naming the example, or
  the (path, "line N") that `locate(row)` gives.
  """
  ids = np.full((len(sources), max_length), PAD_ID, np.int32)
  for row, source in enumerate(sources):
    try:
      tokens = [TOKEN_IDS[t] for t in tokenize(source)[:max_length]]
    except KeyError as e:
      path, where = locate(row) if locate else (None, f"ListOps example {row}")
      raise dataset.DataError(path, where, f"token {dataset.show(e.args[0])}",
                              f"a ListOps token: {' '.join(VOCAB[1:])} or a "
                              "parenthesis") from None
    ids[row, :len(tokens)] = tokens
  return ids


# --------------------------------------------------------------- loader

_GENERATOR_VERSION = 1  # Bump when the generator's output changes.
_GENERATED_OPTIONS = ("seed", "num_train_examples", "num_eval_examples",
                      "min_length", "max_depth", "max_args")
_DOWNLOAD_HELP = (
    "Get LRA's files: download "
    "https://storage.googleapis.com/long-range-arena/lra_release.gz, run "
    "`tar xf lra_release.gz`, and pass data_dir=<...>/lra_release/lra_release/"
    "listops-1000. Or use source=\"generated\", which works offline.")


def generated_params(max_length: int | None = None, **options) -> dict:
  """All generator parameters, LRA's defaults filled in."""
  params = dict(seed=0, num_train_examples=96_000, num_eval_examples=2_000,
                **LRA_DEFAULTS)
  params.update(options)
  if max_length is not None:
    params["max_length"] = max_length
  return params


def generated_cache_dir(data_dir: str, params: dict) -> str:
  """data_dir/listops_generated_<hash of the generator parameters>."""
  key = json.dumps(dict(params, version=_GENERATOR_VERSION), sort_keys=True)
  digest = hashlib.sha256(key.encode()).hexdigest()[:12]
  return os.path.join(data_dir, f"listops_generated_{digest}")


@functools.lru_cache(maxsize=1)
def _generate_in_memory(**params) -> dict[str, list[Example]]:
  return generate(**params)


def _load_generated(split: str, data_dir: str | None, params: dict):
  if data_dir is None:
    return _generate_in_memory(**params)[split]
  cache_dir = generated_cache_dir(data_dir, params)
  path = tsv_path(cache_dir, split)
  if all(os.path.exists(tsv_path(cache_dir, s)) for s in SPLITS):
    logging.info("ListOps: reading cached %s", path)
    return read_tsv(path)
  logging.info("ListOps: generating %s into %s", params, cache_dir)
  splits = generate(**params)
  write_splits(cache_dir, splits)
  tmp = os.path.join(cache_dir, f"params.json.tmp{os.getpid()}")
  with open(tmp, "w") as f:
    json.dump(dict(params, version=_GENERATOR_VERSION), f, indent=1)
  os.replace(tmp, os.path.join(cache_dir, "params.json"))
  return splits[split]


def load(split: str, *, source: str, data_dir: str | None = None,
         max_length: int | None = None, **options) -> dataset.SplitData:
  """Loads one ListOps split as `SplitData` (`inputs` int32 [N, L], `targets`).

  Args:
    split: "train", "val" or "test".
    source: "lra_release" reads data_dir/basic_{split}.tsv (LRA's
      listops-1000 folder); "generated" runs the seeded generator.
    data_dir: for "lra_release", the folder of the TSV files; for "generated",
      optional: the three splits are cached (and reused) under
      data_dir/listops_generated_<hash>/; without it they are generated in
      memory (the last parameter set is kept for the other splits).
    max_length: encoding length L (longer sequences are truncated). For
      "generated" it is also the generator's (strict) upper length bound.
      Default 2000.
    **options: "generated" only: seed (0), num_train_examples (96000),
      num_eval_examples (2000, each of val and test), min_length (500),
      max_depth (10), max_args (10).
  """
  dataset.check_split_and_source("ListOps", split, source, SOURCES)
  if source == "lra_release":
    if options:
      raise ValueError(f"source='lra_release' takes no options; got "
                       f"{sorted(options)}")
    if max_length is None:
      max_length = LRA_DEFAULTS["max_length"]
    if data_dir is None:
      raise FileNotFoundError(f"source='lra_release' needs data_dir, the "
                              f"folder holding basic_{split}.tsv. "
                              f"{_DOWNLOAD_HELP}")
    path = tsv_path(data_dir, split)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"ListOps file not found: {path}. {_DOWNLOAD_HELP}")
    examples, line_numbers = _read_tsv(path)
    locate = lambda row: (path, f"line {line_numbers[row]}")
  else:
    unknown = sorted(set(options) - set(_GENERATED_OPTIONS))
    if unknown:
      raise ValueError(f"unknown ListOps option(s) {unknown} for "
                       f"source='generated'; valid: {_GENERATED_OPTIONS} and "
                       "max_length")
    params = generated_params(max_length, **options)
    max_length = params["max_length"]
    examples = _load_generated(split, data_dir, params)
    locate = None
  return dataset.SplitData(
      arrays=dict(inputs=encode([e.source for e in examples], max_length, locate),
                  targets=np.array([e.target for e in examples], np.int32)),
      vocab_size=VOCAB_SIZE, num_classes=NUM_CLASSES, max_length=max_length,
      task="listops", split=split, source=source)

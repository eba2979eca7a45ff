"""ListOps generator, evaluator, TSV files and tokenizer (small sizes only)."""

import random

from hypothesis import given
from hypothesis import strategies as st
import numpy as np
import pytest

from lra import listops

SMALL = dict(min_length=10, max_length=60, max_depth=5, max_args=5)


def small_splits(seed=0, num_train=30, num_eval=10):
  return listops.generate(seed=seed, num_train_examples=num_train,
                          num_eval_examples=num_eval, **SMALL)


@pytest.mark.parametrize("text, value", [
    ("[MIN 4 2 7 ]", 2),
    ("[MAX 4 2 7 ]", 7),
    ("[MED 4 2 7 ]", 4),
    ("[MED 1 2 ]", 1),        # 1.5 truncates to 1.
    ("[MED 3 8 1 6 ]", 4),    # (3 + 6) / 2 = 4.5 truncates to 4.
    ("[SM 9 8 7 ]", 4),       # 24 mod 10.
    ("[SM 5 5 ]", 0),
    ("[MAX 2 9 ]", 9),
    ("[MIN 5 [MAX 1 3 ] 8 ]", 3),
    ("[SM [MED 9 9 0 ] [MIN 7 8 ] 3 ]", 9),  # 9 + 7 + 3 = 19.
    ("[MAX [MIN [SM 6 6 ] 4 ] [MED 1 2 3 4 ] ]", 2),
    ("( ( ( [MAX 2 ) 9 ) ] )", 9),  # LRA's printed form.
    ("7", 7),
])
def test_evaluate_known_answers(text, value):
  assert listops.evaluate(listops.parse(text)) == value


@given(st.lists(st.integers(0, 9), min_size=1, max_size=12))
def test_median_matches_numpy(values):
  assert listops.evaluate(("[MED", tuple(values))) == int(np.median(values))


def test_to_string_is_lras_binary_nesting():
  tree = ("[MAX", (2, 9))
  assert listops.to_string(tree) == "( ( ( [MAX 2 ) 9 ) ] )"
  nested = ("[MIN", (("[SM", (1, 2)), 3, 4))
  text = "( ( ( ( [MIN ( ( ( [SM 1 ) 2 ) ] ) ) 3 ) 4 ) ] )"
  assert listops.to_string(nested) == text
  assert listops.parse(text) == nested


@pytest.mark.parametrize("text", ["[MAX 1 2", "[MAX 1 ] 3", "]", "[MAX 12 ]",
                                  "[FIRST 1 2 ]", ""])
def test_parse_rejects_malformed(text):
  with pytest.raises(ValueError):
    listops.parse(text)


def test_generated_lengths_and_targets():
  splits = small_splits()
  assert [len(splits[s]) for s in listops.SPLITS] == [30, 10, 10]
  for examples in splits.values():
    for source, target in examples:
      tree = listops.parse(source)
      assert listops.to_string(tree) == source
      assert listops.evaluate(tree) == target
      length = listops.tree_length(tree)
      assert SMALL["min_length"] < length < SMALL["max_length"]
      encoded = listops.encode([source], SMALL["max_length"])
      assert (encoded != 0).sum() == length == len(listops.tokenize(source))


def test_length_limit_keeps_the_distribution():
  rng = random.Random(3)
  for _ in range(200):
    tree, length = listops.random_tree(rng, max_depth=6, max_args=6)
    assert length == listops.tree_length(tree)
  for _ in range(200):
    tree, length = listops.random_tree(rng, max_depth=6, max_args=6,
                                       length_limit=20)
    assert (tree is None) == (length >= 20)


def test_max_depth_one_is_a_leaf():
  tree, length = listops.random_tree(random.Random(0), max_depth=1)
  assert isinstance(tree, int) and length == 1


def test_generation_is_deterministic():
  assert small_splits(seed=1) == small_splits(seed=1)
  assert small_splits(seed=1) != small_splits(seed=2)


def test_splits_are_disjoint_and_distinct():
  splits = small_splits(num_train=40, num_eval=15)
  sources = [e.source for s in listops.SPLITS for e in splits[s]]
  assert len(set(sources)) == len(sources) == 70


def test_generate_rejects_impossible_bounds():
  with pytest.raises(ValueError, match="no length"):
    listops.generate(min_length=10, max_length=11)
  with pytest.raises(ValueError, match="max_depth"):
    listops.generate(min_length=100, max_length=200, max_depth=2, max_args=5)


def test_tsv_round_trip(tmp_path):
  splits = small_splits(seed=4)
  listops.write_splits(str(tmp_path), splits)
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      "basic_test.tsv", "basic_train.tsv", "basic_val.tsv"]
  first = (tmp_path / "basic_train.tsv").read_text().splitlines()[:2]
  assert first[0] == "Source\tTarget"
  assert first[1] == f"{splits['train'][0].source}\t{splits['train'][0].target}"
  for split in listops.SPLITS:
    path = listops.tsv_path(str(tmp_path), split)
    assert listops.read_tsv(path) == splits[split]


def test_tsv_rejects_bad_header(tmp_path):
  path = tmp_path / "basic_train.tsv"
  path.write_text("Input\tLabel\n1\t1\n")
  with pytest.raises(ValueError, match="header"):
    listops.read_tsv(str(path))


def test_vocabulary_is_fixed():
  assert listops.VOCAB_SIZE == 16
  assert listops.PAD_ID == 0
  assert listops.TOKEN_IDS["0"] == 1 and listops.TOKEN_IDS["9"] == 10
  assert [listops.TOKEN_IDS[op] for op in listops.OPERATORS] == [11, 12, 13, 14]
  assert listops.TOKEN_IDS["]"] == 15


def test_encode_keeps_close_pads_and_truncates():
  source = "( ( ( [MAX 2 ) 9 ) ] )"
  ids = listops.encode([source, "3"], 6)
  assert ids.dtype == np.int32 and ids.shape == (2, 6)
  np.testing.assert_array_equal(ids, [[12, 3, 10, 15, 0, 0],
                                      [4, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(listops.encode([source], 2), [[12, 3]])


def test_encode_rejects_unknown_tokens():
  with pytest.raises(ValueError, match="MEAN"):
    listops.encode(["[MEAN 1 2 ]"], 10)

"""scripts/benchmark_peers.py's pure parts (no torch needed): medians, ratios, table."""

import math

from efficient_transformers.benchmarking import peers


def _record(pair, side, length, seconds, nbytes, status="ok"):
  return {"pair": pair, "side": side, "length": length, "status": status,
          "seconds": seconds, "bytes": nbytes}


def test_ratio():
  assert peers.ratio(1.0, 2.0) == 0.5
  assert peers.ratio(None, 2.0) is None
  assert peers.ratio(1.0, None) is None
  assert peers.ratio(1.0, 0.0) is None


def test_summarize_medians_over_passes_and_skips_errors():
  records = [
      _record("linear", "ours", 4096, 1.0, 100), _record("linear", "peer", 4096, 4.0, 50),
      _record("linear", "ours", 4096, 3.0, 300), _record("linear", "peer", 4096, 2.0, 150),
      _record("linear", "ours", 4096, None, None, status="error"),
  ]
  (row,) = peers.summarize(records, ["linear"], [4096])
  assert row["ours_seconds"] == 2.0 and row["peer_seconds"] == 3.0
  assert math.isclose(row["time_ratio"], 2.0 / 3.0)
  assert row["ours_bytes"] == 200 and row["peer_bytes"] == 100
  assert row["memory_ratio"] == 2.0
  assert row["passes"] == 3


def test_summarize_missing_side_gives_no_ratio():
  (row,) = peers.summarize([_record("routing", "ours", 16384, 1.0, 10)], ["routing"],
                           [16384])
  assert row["peer_seconds"] is None and row["time_ratio"] is None


def test_markdown_table():
  records = [_record("routing", "ours", 4096, 0.5, 2e6),
             _record("routing", "peer", 4096, 1.0, 4e6)]
  text = peers.markdown(peers.summarize(records, ["routing", "linear"], [4096]))
  lines = text.splitlines()
  assert lines[0].startswith("| ours | peer |") and lines[1].startswith("|---")
  routing = next(l for l in lines if l.startswith("| routing |"))
  assert "| 4K |" in routing and "0.50×" in routing and "| 2 | 4 |" in routing
  assert "KmeansAttention" in routing
  linear = next(l for l in lines if l.startswith("| linear |"))
  assert linear.count("—") == 6  # nothing measured: no numbers, no ratios
  assert "Differences in work:" in text  # pairs' notes listed under the table


def test_every_pair_names_a_registered_mechanism():
  from efficient_transformers import attention  # pylint: disable=g-import-not-at-top
  for pair in peers.PAIRS.values():
    assert pair.attention in attention.REGISTRY, pair.name

"""scripts/benchmark.py's machinery (efficient_transformers/benchmarking) at tiny sizes."""

import json
import math

import pytest

from efficient_transformers import attention
from efficient_transformers.benchmarking import kernel
from efficient_transformers.benchmarking import report
from efficient_transformers.benchmarking import runner

# A tiny LRA text model: the train mode's code path, at a size that compiles fast.
TINY_TRAIN = dict(mode="train", batch=2, num_layers=1, emb_dim=16, mlp_dim=16,
                  num_heads=2, repeats=1)


def _load(prefix):
  with open(f"{prefix}.json") as f:
    return json.load(f)


@pytest.mark.slow
def test_train_mode_two_models(tmp_path):
  prefix = str(tmp_path / "train")
  runner.run(runner.Settings(models=("transformer_xla", "linear"), lengths=(64,),
                             **TINY_TRAIN), prefix, echo=False)
  out = _load(prefix)
  assert out["mode"] == "train" and out["baseline"] == "transformer_xla"
  assert {"backend", "device", "jax", "cpu_count"} <= set(out["machine"])
  assert out["settings"]["batch"] == 2 and out["settings"]["num_layers"] == 1
  records = out["results"]
  assert [(r["model"], r["length"]) for r in records] == [
      ("transformer_xla", 64), ("linear", 64)]
  for r in records:
    assert r["status"] == "ok", r
    assert r["phase"] == "train_step" and r["seconds"] > 0 and r["bytes"] > 0
    assert r["steps_per_sec"] == pytest.approx(1 / r["seconds"])
    assert r["bytes_source"] == "compiled memory analysis"
    assert r["attention"] in ("dense", "linear") and r["num_params"] > 0
  assert all("speedup" in r and "memory_ratio" in r for r in records)
  assert set(out["exponents"]) == {"transformer_xla", "linear"}
  table = (tmp_path / "train.md").read_text()
  assert "| model | steps/s 64 | peak memory (GB) 64 |" in table
  assert "| linear | " in table


def test_oom_is_data_and_stops_longer_lengths(tmp_path):
  prefix = str(tmp_path / "oom")
  runner.run(runner.Settings(mode="kernel", models=("linear",), lengths=(32, 64),
                             phases=("forward",), memory_limit_gb=1e-6, repeats=1,
                             matmul_size=64), prefix, echo=False)
  first, second = _load(prefix)["results"]
  assert first["status"] == "OOM" and "predicted" in first["reason"]
  assert first["predicted_bytes"] > 1e-6 * 2**30 and "seconds" not in first
  assert second["status"] == "OOM" and second["reason"] == "not run: OOM at 32"
  assert "| linear | OOM | OOM |" in (tmp_path / "oom.md").read_text()


def test_kernel_mode_two_mechanisms(tmp_path):
  prefix = str(tmp_path / "kernel")
  result = runner.run(runner.Settings(
      mode="kernel", models=("dense_xla", "local"), lengths=(64, 128), num_heads=2,
      head_dim=8, repeats=1, matmul_size=128, fit_min=64, fit_max=128), prefix, echo=False)
  out = _load(prefix)
  assert out["mode"] == "kernel" and out["baseline"] == "dense_xla"
  assert out["matmul"]["size"] == 128 and out["matmul"]["flops_per_sec"] > 0
  records = out["results"]
  assert len(records) == 2 * 2 * 2  # models x phases x lengths
  for r in records:
    assert r["status"] == "ok", r
    assert r["seconds"] > 0 and r["bytes"] > 0 and r["flops_per_sec"] > 0
  by_key = {(r["model"], r["length"], r["phase"]): r for r in records}
  dense = by_key[("dense_xla", 128, "forward")]
  assert dense["flops"] == 2 * 1 * 4 * 128**2 * 8  # heads * batch * 4 n^2 d
  assert by_key[("dense_xla", 128, "forward_backward")]["flops"] == 3 * dense["flops"]
  assert by_key[("local", 128, "forward")]["options"] == {"block_size": "128"}
  paths = report.plot(result, prefix)
  assert all((tmp_path / p.split("/")[-1]).stat().st_size > 0 for p in paths)


def test_mechanism_without_entry_is_reported_not_raised(monkeypatch):
  def needs_options(q, k, v, *, mask=None, causal=False, secret):
    return q * secret

  monkeypatch.setitem(attention.REGISTRY, "needs_options", needs_options)
  assert "needs_options" in kernel.default_variants()
  record = kernel.measure_one("needs_options", 16, "forward", batch=1, heads=1,
                              head_dim=4, dtype="float32", causal=False, repeats=1,
                              memory_limit_gb=1.0)
  assert record["status"] == "error"
  assert "no entry in benchmarking/kernel.py VARIANTS" in record["error"]


@pytest.mark.parametrize("name", ["dense_xla", "local", "linformer", "linear"])
def test_flop_formula_matches_xla_count(name):
  """Known answer: for kernels without loops, XLA's count of the compiled forward
  is the formula's plus softmax/normalisation work (a few percent)."""
  record = kernel.measure_one(name, 512, "forward", batch=1, heads=2, head_dim=32,
                              dtype="float32", causal=False, repeats=1,
                              memory_limit_gb=1e-9)  # compile only: predicted OOM
  assert record["status"] == "OOM"
  assert record["xla_flops"] == pytest.approx(record["flops"], rel=0.15)


def test_every_registered_mechanism_is_benchmarked():
  covered = {kernel.variant(name).attention for name in kernel.default_variants()}
  assert covered == set(attention.REGISTRY)


def test_exponent_fit_on_synthetic_data():
  lengths = [1024, 2048, 4096, 8192, 16384, 32768]
  assert report.fit_exponent(lengths, [3e-9 * n**2 for n in lengths]) == pytest.approx(2)
  assert report.fit_exponent(lengths, [n * math.log(n) for n in lengths]) == \
      pytest.approx(1.1, abs=0.05)
  assert report.fit_exponent([1024], [1.0]) is None
  records = [{"model": "quad", "length": n, "phase": "train_step", "status": "ok",
              "seconds": 1e-8 * n**2, "bytes": 100 * n} for n in lengths]
  records.append({"model": "quad", "length": 65536, "phase": "train_step",
                  "status": "OOM"})
  records[0]["seconds"] = 1e9  # 1K is outside the default 2K-16K fit
  fit = report.exponents(records, "train_step")["quad"]
  assert fit["lengths"] == [2048, 4096, 8192, 16384]
  assert fit["time"] == pytest.approx(2) and fit["memory"] == pytest.approx(1)


def test_lra_table_layout_with_ratios():
  records = [{"model": m, "length": 1024, "phase": "train_step", "status": "ok",
              "seconds": s, "steps_per_sec": 1 / s, "bytes": b}
             for m, s, b in (("transformer_xla", 0.5, 2e9), ("performer", 0.1, 1e9))]
  records.append({"model": "performer", "length": 2048, "phase": "train_step",
                  "status": "OOM", "reason": "predicted"})
  report.add_ratios(records, "transformer_xla")
  text = report.markdown({"mode": "train", "results": records, "baseline": "transformer_xla",
                          "settings": {"batch": 32},
                          "machine": {"date": "d", "backend": "cpu", "device": "cpu",
                                      "num_devices": 1, "cpu_count": 2, "jax": "x"}})
  assert "| transformer_xla | 2 | — | 2 | — |" in text
  assert "| performer | 10 (5.00×) | OOM | 1 (0.50×) | OOM |" in text

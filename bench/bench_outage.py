"""Benchmark: how fast and how cheaply a batch stops when the whole run fails.

    python bench/bench_outage.py [--n 600] [--after 100] [--workers N] [--latency-ms 20]

For each fault it starts a stand-in Canvas with a course of N active students,
runs `set_user_state.py --csv` setting them all inactive, and lets the first
`--after` writes through; then the fault begins for every request:

- maintenance: 503 with a proxy's HTML page and no Retry-After
- server error: 500 with Canvas's error report body
- revoked token: 401 "Revoked access token."
- no answer: every request waits past --timeout (1 s here)
- writes only: every write (the DELETEs) gets 500, or 503, while reads still work; the
  look-again reads after each failed write succeed, and 5 failed writes in a row stop the run

It prints the seconds and requests from the fault to the stop, the exit code,
the rows failed, and the lines on stderr, beside what the issue aims at: one
line, exit 75, no row failed, requests after the fault bounded by about the
writes in flight plus the 10 failures that stop the run (the issue measured
253 s and 3,522 requests for maintenance before, and 522 requests for a
revoked token). Then it runs the same command again with Canvas back and
reports whether it finished the job. Each cell takes a few seconds.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench.bench_pacing import TOKEN, batch_command, build  # noqa: E402
from standin import Fault  # noqa: E402


def maintenance():
    return Fault("status", status=503, times=10 ** 9, headers={"Content-Type": "text/html"},
                 body="<html><body><h1>Canvas is down for maintenance</h1></body></html>")


def server_error():
    return Fault("status", status=500, times=10 ** 9,
                 body={"errors": [{"message": "An error occurred."}], "error_report_id": 1})


def silent():
    return Fault("delay", seconds=3.0, times=10 ** 9)


def writes_only(status):
    return lambda: Fault("status", status=status, method="DELETE", times=10 ** 9,
                         body={"errors": [{"message": "An error occurred."}], "error_report_id": 1})


FAULTS = {"maintenance (503)": maintenance, "server error (500)": server_error,
          "revoked token (401)": None, "no answer (timeout)": silent,
          "writes only (500)": writes_only(500), "writes only (503)": writes_only(503)}


def run_cell(make_fault, n, after, workers, latency):
    canvas = build(n, latency, 0.0)
    canvas.bucket, store = None, canvas.store
    mark: dict[str, float] = {}

    def begin():
        mark.update(requests=len(canvas.requests), time=time.monotonic())
        if make_fault is None:
            store.tokens[TOKEN] = "revoked"
        else:
            canvas.faults.append(make_fault())
    canvas.fault(Fault("delay", method="DELETE", skip=after, times=1, then=begin))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            args, env = batch_command(ROOT, tmp, canvas, n, workers)
            args += ["--timeout", "1"]
            proc = subprocess.run(args, env=env, cwd=tmp, capture_output=True, text=True)
            stopped = time.monotonic()
            requests_after = len(canvas.requests) - mark.get("requests", len(canvas.requests))
            canvas.faults.clear()
            store.tokens[TOKEN] = "admin"
            rerun = subprocess.run(args, env=env, cwd=tmp, capture_output=True, text=True)
        failed = re.search(r"failed (\d+)", proc.stderr)
        inactive = sum(e.workflow_state == "inactive" for e in store.enrollments.values())
        return {"seconds": stopped - mark.get("time", stopped), "requests": requests_after,
                "exit": proc.returncode, "failed": int(failed[1]) if failed else -1,
                "lines": len(proc.stderr.strip().splitlines()), "rerun": rerun.returncode,
                "finished": inactive == n, "message": proc.stderr.strip().splitlines()[-1][:150]}
    finally:
        canvas.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="students in the batch")
    parser.add_argument("--after", type=int, default=100, help="writes before the fault")
    parser.add_argument("--workers", type=int, help="pass --workers N (default: the script's own)")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    print(f"{args.n} rows, fault after {args.after} writes, latency {args.latency_ms:g} ms; aim: exit 75, "
          "one line, 0 failed, requests after the fault ~ writes in flight + 5 writes or 10 requests\n")
    print(f"{'fault':<22} {'seconds':>8} {'requests':>9} {'exit':>5} {'failed':>7} {'lines':>6} "
          f"{'rerun':>6} {'job done':>9}", flush=True)
    messages = []
    for name, make_fault in FAULTS.items():
        cell = run_cell(make_fault, args.n, args.after, args.workers, args.latency_ms / 1000)
        print(f"{name:<22} {cell['seconds']:>8.2f} {cell['requests']:>9} {cell['exit']:>5} "
              f"{cell['failed']:>7} {cell['lines']:>6} {cell['rerun']:>6} {cell['finished']!s:>9}", flush=True)
        messages.append(f"  {name}: {cell['message']}...")
    print("\nthe one line each printed:\n" + "\n".join(messages))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

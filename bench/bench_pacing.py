"""Benchmark: how close a --csv batch runs to the speed Canvas's rate limiter allows.

    python bench/bench_pacing.py [--latency-ms 50 150] [--n 1000 5000] [--cost 0.3 1.0]
                                 [--root DIR] [--workers N]

For every cell (latency x N x cost) it starts a stand-in Canvas with Canvas's
leaky bucket (high-water mark 600, outflow 10 units/s, 50 units reserved up
front by every request in flight; app/middleware/request_throttle.rb), a course
of N active students and a fixed latency per request, then times one
`set_user_state.py --csv` run that sets all N inactive. It prints the wall
time beside the limit that latency and bucket allow for the requests the run
made, the throttled answers and the failed rows.

The limit, for R requests of cost c at latency L, is the time of the fastest
schedule the bucket admits, request by request from an empty bucket:
    n = ceil((600 - level) / 50) - 1    requests that fit in flight at this level
    dt = L / n                          (if n < 1: wait for the outflow to make room)
    level = max(0, level + c - 10 * dt)
    T = sum of dt
At first 11 requests fit; as the real costs fill the bucket fewer do, until
the outflow of 10 units a second alone sets the pace.
`--root` runs the scripts of another checkout (for example today's main), so
two versions can be compared on the same cells.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from standin import StandinCanvas  # noqa: E402

TOKEN = "bench-token"
HWM, OUTFLOW, UP_FRONT = 600.0, 10.0, 50.0


def limit_seconds(requests: int, latency: float, cost: float) -> float:
    """The fluid schedule in the module docstring, summed request by request."""
    level = total = 0.0
    for _ in range(requests):
        fit = math.ceil((HWM - level) / UP_FRONT) - 1
        if fit < 1:  # wait until the outflow lets one more reservation in
            wait = (level - (HWM - 2 * UP_FRONT)) / OUTFLOW
            level, total, fit = level - wait * OUTFLOW, total + wait, 1
        dt = latency / fit
        level = max(0.0, level + cost - OUTFLOW * dt)
        total += dt
    return total


def build(n: int, latency: float, cost: float) -> StandinCanvas:
    canvas = StandinCanvas().start()
    store = canvas.store
    store.tokens[TOKEN] = "admin"
    course = store.add_course("Big course", "BIG-2027")
    for i in range(n):
        store.enroll(store.add_user(f"S{i:05d}", f"Student {i:05d}"), course)
    canvas.latency = (latency, latency)
    canvas.bucket = (HWM, OUTFLOW, cost)
    return canvas


def batch_command(root: Path, tmp: str, canvas: StandinCanvas, n: int, workers) -> tuple[list, dict]:
    """(argv, environment) of `set_user_state.py --csv` setting the N students of build() inactive."""
    csv = Path(tmp, "inactive.csv")
    csv.write_text("course_id,sis_user_id,state\n" +
                   "".join(f"sis_course_id:BIG-2027,S{i:05d},inactive\n" for i in range(n)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANVAS_")}
    env.update(CANVAS_URL=canvas.url, CANVAS_TOKEN=TOKEN)
    args = [sys.executable, str(root / "set_user_state.py"), "--csv", str(csv),
            "--log", str(Path(tmp, "audit.jsonl"))]
    return args + (["--workers", str(workers)] if workers else []), env


def run_cell(root: Path, n: int, latency: float, cost: float, workers) -> dict:
    canvas = build(n, latency, cost)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            args, env = batch_command(root, tmp, canvas, n, workers)
            start = time.monotonic()
            proc = subprocess.run(args, env=env, cwd=tmp, capture_output=True, text=True)
            seconds = time.monotonic() - start
        failed = re.search(r"failed (\d+)", proc.stderr)
        inactive = sum(e.workflow_state == "inactive" for e in canvas.store.enrollments.values())
        return {"requests": len(canvas.requests), "throttled": canvas.throttled,
                "failed": int(failed[1]) if failed else n - inactive, "seconds": seconds,
                "exit": proc.returncode, "inactive": inactive}
    finally:
        canvas.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[50, 150])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--cost", type=float, nargs="+", default=[0.3, 1.0])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose scripts to run")
    parser.add_argument("--workers", type=int, help="pass --workers N (default: the script's own)")
    args = parser.parse_args(argv)
    print(f"scripts from {args.root}; bucket {HWM:g} units, outflow {OUTFLOW:g}/s, "
          f"{UP_FRONT:g} reserved per request in flight")
    print("limit = the fastest schedule the bucket admits: sum of L/n, n = ceil((600 - level)/50) - 1,\n"
          "        level += c - 10*dt per request (see the docstring)\n")
    print(f"{'latency':>8} {'N':>6} {'cost':>5} {'requests':>9} {'throttled':>10} {'failed':>7} "
          f"{'seconds':>8} {'limit':>7} {'ratio':>6}", flush=True)
    worst = 0.0
    for latency_ms, n, cost in itertools.product(args.latency_ms, args.n, args.cost):
        cell = run_cell(args.root, n, latency_ms / 1000, cost, args.workers)
        limit = limit_seconds(cell["requests"] - cell["throttled"], latency_ms / 1000, cost)
        ratio = cell["seconds"] / limit
        worst = max(worst, ratio)
        print(f"{latency_ms:>6g}ms {n:>6} {cost:>5g} {cell['requests']:>9} {cell['throttled']:>10} "
              f"{cell['failed']:>7} {cell['seconds']:>8.1f} {limit:>7.1f} {ratio:>5.2f}x", flush=True)
    print(f"\nworst ratio to the limit: {worst:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

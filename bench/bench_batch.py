"""Benchmark: N students set inactive, one process per student vs one --csv run.

    python bench/bench_batch.py [--n 500] [--enrolled 3000] [--latency-ms 20 50]

Starts two identical stand-in Canvases with a per-request latency and a
Canvas-like rate-limit bucket, each holding a course with thousands of
enrollments. On one it runs `set_user_state.py COURSE SIS inactive` once per
student, as people do today; on the other one `set_user_state.py --csv`.
Prints requests, writes and wall time for each and their ratio, and checks
that both Canvases ended in the same state.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from standin import StandinCanvas  # noqa: E402

TOKEN = "bench-token"


def build(enrolled: int, latency, cost):
    canvas = StandinCanvas().start()
    store = canvas.store
    store.tokens[TOKEN] = "admin"
    course = store.add_course("Big course", "BIG-2027", sections=("BIG-LAB",))
    for n in range(enrolled):
        store.enroll(store.add_user(f"S{n:05d}", f"Student {n:05d}"), course)
    canvas.latency = latency
    canvas.bucket = (600.0, 10.0, cost)  # Canvas's high-water mark and outflow; cost per request
    return canvas


def final_state(canvas):
    store = canvas.store
    return sorted((store.users[e.user_id].sis_user_id, e.type, e.course_section_id, e.workflow_state)
                  for e in store.enrollments.values())


def env_for(canvas):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANVAS_")}
    return {**env, "CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN}


def loop(canvas, ids, tmp):
    """One single run per student, as people do today (in tmp, where each writes its log)."""
    env, script = env_for(canvas), str(ROOT / "set_user_state.py")
    for n, sis in enumerate(ids, start=1):
        proc = subprocess.run([sys.executable, script, "sis_course_id:BIG-2027", sis, "inactive"],
                              env=env, cwd=tmp, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"loop failed at {sis}: {proc.stderr}")
        if n % 50 == 0:
            print(f"  loop: {n}/{len(ids)}", file=sys.stderr)


def batch(canvas, ids, tmp, workers):
    csv = Path(tmp, "change.csv")
    csv.write_text("course_id,sis_user_id,state\n" +
                   "".join(f"sis_course_id:BIG-2027,{sis},inactive\n" for sis in ids))
    args = [sys.executable, str(ROOT / "set_user_state.py"), "--csv", str(csv),
            "--log", str(Path(tmp, "audit.jsonl"))] + (["--workers", str(workers)] if workers else [])
    proc = subprocess.run(args, env=env_for(canvas), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"batch failed: {proc.stderr[-2000:]}")


def measure(name, canvas, work):
    start, before, refused = time.monotonic(), len(canvas.requests), canvas.throttled
    work()
    seconds = time.monotonic() - start
    calls = canvas.requests[before:]
    writes = sum(c["method"] != "GET" for c in calls)
    print(f"{name:<28} {len(calls):>9} {writes:>7} {canvas.throttled - refused:>10} {seconds:>9.1f}")
    return len(calls), seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="students to set inactive")
    parser.add_argument("--enrolled", type=int, default=3000, help="enrollments in the course")
    parser.add_argument("--latency-ms", type=float, nargs=2, default=(20, 50))
    parser.add_argument("--workers", type=int, help="--workers for the batch (default: the script's)")
    parser.add_argument("--cost", type=float, default=0.5,
                        help="rate-limit cost per request (Canvas: CPU+DB seconds; bucket 600, 10/s)")
    parser.add_argument("--skip-loop", action="store_true",
                        help="only the batch (to study --workers and --cost)")
    args = parser.parse_args(argv)
    latency = (args.latency_ms[0] / 1000, args.latency_ms[1] / 1000)
    ids = [f"S{n:05d}" for n in range(0, args.enrolled, max(1, args.enrolled // args.n))][:args.n]
    looped, batched = [build(args.enrolled, latency, args.cost) for _ in range(2)]
    try:
        print(f"N={len(ids)} students set inactive in a course of {args.enrolled} enrollments; "
              f"latency {args.latency_ms[0]:g}-{args.latency_ms[1]:g} ms per request; "
              f"batch with --workers {args.workers or 'default'}\n")
        print(f"{'way':<28} {'requests':>9} {'writes':>7} {'throttled':>10} {'seconds':>9}")
        with tempfile.TemporaryDirectory() as tmp:
            if not args.skip_loop:
                loop_calls, loop_s = measure("loop of single invocations", looped, lambda: loop(looped, ids, tmp))
            batch_calls, batch_s = measure("one --csv run", batched, lambda: batch(batched, ids, tmp, args.workers))
            _rerun_calls, _rerun_s = measure("--csv again (all done)", batched,
                                           lambda: batch(batched, ids, tmp, args.workers))
        if args.skip_loop:
            return 0
        same = final_state(looped) == final_state(batched)
        print(f"\nbatch is {loop_s / batch_s:.1f}x faster with {loop_calls / batch_calls:.1f}x "
              f"fewer requests; final Canvas states {'identical' if same else 'DIFFER'}")
        return 0 if same else 1
    finally:
        looped.stop()
        batched.stop()


if __name__ == "__main__":
    raise SystemExit(main())

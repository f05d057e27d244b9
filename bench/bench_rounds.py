"""Benchmark: carrying a round of N people to the next one with --from, requests per person.

    python bench/bench_rounds.py [--n 3000] [--latency-ms 5 15] [--cost 0.05]

Starts a stand-in Canvas with a per-request latency and Canvas's rate-limit
bucket, holding an old course round of N students, each in the lecture section
and in one of two labs (several sections per person; one in ten inactive), and
an empty new round that has the lecture and one of the labs by name. Runs, as
the round flow does: enroll_user.py --from with --dry-run, then for real, then
set_user_state.py --from after an SIS import made everyone active. Prints
requests (reads and writes), requests per enrollment and wall time beside the
aim: one write per enrollment plus tens of bulk reads.
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
OLD, NEW = "sis_course_id:ROUND-2026", "sis_course_id:ROUND-2027"


def build(n: int, latency, cost) -> StandinCanvas:
    canvas = StandinCanvas().start()
    store = canvas.store
    store.tokens[TOKEN] = "admin"
    old = store.add_course("Round 2026", "ROUND-2026")
    lecture = store.add_section(old, "OLD-LEC", "Lecture")
    labs = [store.add_section(old, "OLD-LAB-A", "Lab A"), store.add_section(old, "OLD-LAB-B", "Lab B")]
    new = store.add_course("Round 2027", "ROUND-2027")
    store.add_section(new, "NEW-LEC", "Lecture")
    store.add_section(new, "NEW-LAB-A", "Lab A")
    for i in range(n):
        user = store.add_user(f"S{i:05d}", f"Student {i:05d}")
        for section in (lecture, labs[i % 2]):
            store.enroll(user, old, state="inactive" if i % 10 == 3 else "active", section=section)
    canvas.latency = latency
    canvas.bucket = (600.0, 10.0, cost)  # Canvas's high-water mark and outflow; cost per request
    return canvas


def script(canvas, name, *args, tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANVAS_")}
    proc = subprocess.run([sys.executable, str(ROOT / name), *args, "--log", str(Path(tmp, "audit.jsonl"))],
                          env={**env, "CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN},
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{name} failed: {proc.stderr[-2000:]}")


def measure(name, canvas, people, work):
    start, before, refused = time.monotonic(), len(canvas.requests), canvas.throttled
    work()
    seconds = time.monotonic() - start
    calls = canvas.requests[before:]
    writes = sum(c["method"] != "GET" for c in calls)
    print(f"{name:<34} {len(calls) - writes:>6} {writes:>7} {len(calls) / (2 * people):>9.3f} "
          f"{canvas.throttled - refused:>10} {seconds:>8.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="students in the old round")
    parser.add_argument("--latency-ms", type=float, nargs=2, default=(5, 15))
    parser.add_argument("--cost", type=float, default=0.05,
                        help="rate-limit cost per request (Canvas: CPU+DB seconds; bucket 600, 10/s)")
    args = parser.parse_args(argv)
    canvas = build(args.n, (args.latency_ms[0] / 1000, args.latency_ms[1] / 1000), args.cost)
    inactive = sum(i % 10 == 3 for i in range(args.n))
    try:
        print(f"N={args.n} people in the old round ({inactive} inactive); latency "
              f"{args.latency_ms[0]:g}-{args.latency_ms[1]:g} ms per request, 2 sections a person; aim: 1 "
              f"write per enrollment that changes plus tens of reads (about {4 * args.n // 100 + 8})\n")
        print(f"{'step':<34} {'reads':>6} {'writes':>7} {'per enrol.':>9} {'throttled':>10} {'seconds':>8}")
        with tempfile.TemporaryDirectory() as tmp:
            measure("enroll --from --dry-run", canvas, args.n,
                    lambda: script(canvas, "enroll_user.py", NEW, "--from", OLD, "--dry-run", tmp=tmp))
            measure("enroll --from", canvas, args.n,
                    lambda: script(canvas, "enroll_user.py", NEW, "--from", OLD, tmp=tmp))
            new = next(c for c in canvas.store.courses.values() if c.sis_course_id == "ROUND-2027")
            canvas.store.advance(3600)  # an SIS import makes everyone active, an hour later
            canvas.store.sis_import([(e, "active") for e in canvas.store.enrollments.values()
                                     if e.course_id == new.id])
            canvas.store.advance(3600)
            measure(f"set_user_state --from ({2 * inactive} change)", canvas, args.n,
                    lambda: script(canvas, "set_user_state.py", NEW, "--from", OLD, tmp=tmp))
        states = [e.workflow_state for e in canvas.store.enrollments.values() if e.course_id == new.id]
        ok = len(states) == 2 * args.n and states.count("inactive") == 2 * inactive
        print(f"\nnew round: {len(states)} enrollments, {states.count('inactive')} inactive: "
              f"{'as in the old round' if ok else 'NOT as in the old round'}")
        return 0 if ok else 1
    finally:
        canvas.stop()


if __name__ == "__main__":
    raise SystemExit(main())

"""Requests per case: the round trips each common change costs, beside the budget it aims at.

    python bench/bench_requests.py [--batch 300]

Runs each case once as a subprocess against a stand-in Canvas and counts the
requests it received (lookups and writes). The budget is the project's
promise: two lookups and one write for the common single change, plus the
course and its sections once per run, which name them in the lines; a new
enrollment adds one read of the new rows per 100 (a POST's answer has no user
to name); a custom role adds the account's roles, once per run.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import canvas_common as cc  # noqa: E402
from standin import StandinCanvas  # noqa: E402

TOKEN = "bench-token"


def run(canvas, script, *args, cwd):
    """(lookups, writes) of one run of script; run in cwd, where a single run writes its log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANVAS_")}
    env.update(CANVAS_URL=canvas.url, CANVAS_TOKEN=TOKEN)
    before = len(canvas.requests)
    proc = subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{script} {' '.join(map(str, args))} failed: {proc.stderr}")
    calls = canvas.requests[before:]
    return sum(c["method"] == "GET" for c in calls), sum(c["method"] != "GET" for c in calls)


def cases(canvas, batch: int, tmp: str):
    store = canvas.store
    course = store.add_course("Bench", "BENCH", sections=("BENCH-LAB",))
    auditor = store.add_role("Auditor", "StudentEnrollment")
    c = course.id
    store.enroll(store.add_user("A1"), course)
    store.enroll(store.add_user("I1"), course, state="inactive")
    store.add_user("N1")
    store.add_user("N2")
    store.enroll(store.add_user("R1"), course, state="completed")
    store.enroll(store.add_user("U1"), course, role=auditor)
    yield "deactivate an active user", (4, 1), run(canvas, "set_user_state.py", c, "A1", "inactive", cwd=tmp)
    yield "reactivate an inactive user", (4, 1), run(canvas, "set_user_state.py", c, "I1", "active", cwd=tmp)
    yield "enroll a new user", (5, 1), run(canvas, "enroll_user.py", c, "N1", "student", cwd=tmp)
    yield "enroll someone already active", (4, 0), run(canvas, "enroll_user.py", c, "A1", "student", cwd=tmp)
    # the sections, asked anyway, say whether the row is in the default section
    yield "reopen a concluded enrollment", (4, 1), run(canvas, "enroll_user.py", c, "R1", "student", cwd=tmp)
    yield "enroll with a custom role", (6, 1), run(canvas, "enroll_user.py", c, "N2", "auditor", cwd=tmp)
    yield "deactivate, custom --role", (5, 1), run(canvas, "set_user_state.py", c, "U1", "inactive",
                                                   "--role", "Auditor", cwd=tmp)
    ids = [f"B{n:04d}" for n in range(batch)]
    for sis in ids:
        store.add_user(sis)
    csv = Path(tmp, "enroll.csv")
    csv.write_text("course_id,sis_user_id,role\n" + "".join(f"{c},{s},Auditor\n" for s in ids))
    # per lookup chunk (at most 100 SIS IDs, ~1500 characters of query): active rows, then
    # inactive and ended rows together; the course, its sections and its account's roles once;
    # after the writes, one read of the new rows per chunk, for the names
    chunks = len(list(cc._lookup_queries(ids, ("active",))))
    budget = (3 * chunks + 3, batch)
    yield f"--csv: {batch} new users, custom role", budget, run(
        canvas, "enroll_user.py", "--csv", csv, "--log", Path(tmp, "audit.jsonl"), cwd=tmp)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=300, help="users in the CSV case")
    args = parser.parse_args(argv)
    canvas = StandinCanvas().start()
    canvas.store.tokens[TOKEN] = "admin"
    canvas.default_per_page = 10
    worst = 0
    try:
        print(f"{'case':<40} {'lookups':>8} {'writes':>7}   {'budget':>13}")
        with tempfile.TemporaryDirectory() as tmp:
            for name, (gets, writes), (got_gets, got_writes) in cases(canvas, args.batch, tmp):
                ok = got_gets <= gets and got_writes <= writes
                worst |= not ok
                print(f"{name:<40} {got_gets:>8} {got_writes:>7}   {gets:>4} + {writes:<4} "
                      f"{'ok' if ok else 'OVER'}")
    finally:
        canvas.stop()
    return 1 if worst else 0


if __name__ == "__main__":
    raise SystemExit(main())

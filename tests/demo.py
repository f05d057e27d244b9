"""Show both scripts working against the bundled stand-in Canvas; no account needed.

    python tests/demo.py

Starts the stand-in on 127.0.0.1 with its demo data (tests/standin.py says
what it holds), writes a throwaway config.json for it, and runs the real
scripts as a person would, printing each command and its output: one user,
a batch and its undo, then a round carried from the previous course
(PHYS2-2026) with --from, its step 4 and an undo, as README.md and
docs/rounds.md write them. Exits non-zero if any step does not end as
expected (its exit code, and for the round a few facts in the stand-in).
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from standin import StandinCanvas, seed_demo

ROOT = Path(__file__).resolve().parent.parent
COURSE = "sis_course_id:PHYS2-2027"
OLD = "sis_course_id:PHYS2-2026"  # the previous round
NEW = COURSE
CARRIED = ("S2001", "S2002", "S2003", "S2005", "T3001")  # students and the TA of PHYS2-2026
STEPS = [
    # (script, arguments, expected exit code, what it shows)
    ("enroll_user.py", [COURSE, "S1001", "student"], 0, "enroll a student by SIS ID"),
    ("enroll_user.py", [COURSE, "S1001", "student"], 0,
     "enroll again: already enrolled, nothing changes"),
    ("set_user_state.py", [COURSE, "S1001", "inactive"], 0,
     "the student interrupts their studies: inactive keeps grades, removes access"),
    ("set_user_state.py", [COURSE, "S1001", "inactive"], 0, "running it again is safe"),
    ("enroll_user.py", [COURSE, "S1001", "student"], 0,
     "enrolling an inactive student again: no second enrollment, no silent reactivation"),
    ("set_user_state.py", [COURSE, "S1001", "active", "--json"], 0, "they come back"),
    ("set_user_state.py", [COURSE, "S9003", "inactive", "--dry-run"], 0,
     "--dry-run looks up and says what would change"),
    ("set_user_state.py", [COURSE, "s1001", "inactive"], 1,
     "SIS IDs are exact: a wrong one is one clear line and exit 1"),
    ("enroll_user.py", [COURSE, "S1001", "professor"], 1,
     "an unknown role is refused, listing the course roles Canvas has (custom ones too)"),
    ("enroll_user.py", [COURSE, "S1005", "auditor"], 0, "a custom role by its name in Canvas"),
    ("enroll_user.py", ["--csv", "new-round.csv"], 0,
     "a batch: the rest of the round from a CSV (summary on stderr, audit log written)"),
    ("set_user_state.py", ["--csv", "interrupted.csv", "--json"], 0,
     "two of them interrupt their studies"),
    ("set_user_state.py", ["--undo", "enrollments.audit.jsonl"], 0,
     "that was a mistake: --undo puts back what the last job changed"),
]
ROLES = ["--role", "student", "--role", "ta"]
# The round, as README.md's quick start and docs/rounds.md write it (tests/test_docs.py checks)
ROUND = [
    ("enroll_user.py", [NEW, "--from", OLD, *ROLES, "--state", "active", "--dry-run", "--export", "plan.csv"], 0,
     "next round, 1. the plan from the previous course: who goes to which section, kept as a CSV"),
    ("enroll_user.py", [NEW, "--from", OLD, *ROLES, "--state", "active"], 0,
     "2. the new round: everyone enrolled, active"),
    ("set_user_state.py", [NEW, "--from", OLD, *ROLES, "--dry-run"], 0,
     "4. (after carrying grades) whoever is inactive in the old round: what would change"),
    ("set_user_state.py", [NEW, "--from", OLD, *ROLES], 0, "4. ... set inactive in the new one"),
    ("set_user_state.py", ["--undo", "enrollments.audit.jsonl"], 0, "put back the last step"),
]
FILES = {
    "new-round.csv": "course_id,sis_user_id,role\n" + "".join(
        f"{COURSE},S{n},student\n" for n in range(9010, 9030)) + "".join(
        f"{COURSE},S{n},student\n" for n in range(1002, 1006)),
    "interrupted.csv": f"course_id,sis_user_id,state\n{COURSE},S1002,inactive\n{COURSE},S1003,inactive\n",
}


def main() -> int:
    canvas = StandinCanvas().start()
    try:
        seed_demo(canvas, token="demo-token")
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp, "config.json")
            config.write_text(json.dumps({"canvas": {"host": canvas.url, "access_token": "demo-token"}}))
            config.chmod(0o600)
            for name, text in FILES.items():
                Path(tmp, name).write_text(text)
            print(f"Stand-in Canvas at {canvas.url}; config.json in {tmp}\n")
            failures = sum(not step(tmp, *s) for s in STEPS)
            failures += sum(not (step(tmp, *s) and holds(canvas.store, tmp, n))
                            for n, s in enumerate(ROUND))
        print(f"{len(canvas.requests)} requests to the stand-in; "
              f"{'all steps as expected' if not failures else f'{failures} step(s) NOT as expected'}")
        return 1 if failures else 0
    finally:
        canvas.stop()


def step(cwd, script, args, expected, why) -> bool:
    print(f"# {why}")
    print("$ " + command(script, args))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANVAS_")}
    proc = subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    sys.stdout.write(tail(proc.stdout) + "".join(f"[stderr] {line}\n" for line in without_usage(proc.stderr)))
    print(f"[exit {proc.returncode}]\n")
    return proc.returncode == expected


def without_usage(text) -> list[str]:
    """stderr without argparse's usage lines (the error line says it all); a summary's
    indented notes stay."""
    lines, in_usage = [], False
    for line in text.splitlines():
        in_usage = line.startswith("usage:") or (in_usage and line.startswith(" "))
        if not in_usage:
            lines.append(line)
    return lines


def holds(store, cwd, n) -> bool:
    """A few facts of round step n that stay true whatever the wording (exit codes are checked apart)."""
    new = next(c for c in store.courses.values() if c.sis_course_id == "PHYS2-2027")
    states = {sis: [s for s in store.states_of(sis, new) if s != "deleted"] for sis in (*CARRIED, "S2004")}
    facts = [
        [Path(cwd, "plan.csv").is_file(), not any(states[sis] for sis in CARRIED)],  # a plan, no change
        [all(states[sis] and set(states[sis]) == {"active"} for sis in CARRIED), not states["S2004"]],
        ["inactive" not in states["S2003"]],
        ["inactive" in states["S2003"], "inactive" not in states["S2001"]],
        ["inactive" not in states["S2003"], all(states[sis] for sis in CARRIED)],
    ][n]
    if not all(facts):
        print(f"[round step {n + 1}: the stand-in does not show what it should: {states}]\n")
    return all(facts)


def command(script, args) -> str:
    """A step as the README writes it."""
    return " ".join(["python", script, *args])


def tail(text, lines=6):
    """A batch prints a line per row; show its last few."""
    rows = text.splitlines(keepends=True)
    return "".join(rows) if len(rows) <= lines else f"[... {len(rows) - lines} more lines]\n" + "".join(rows[-lines:])


if __name__ == "__main__":
    raise SystemExit(main())

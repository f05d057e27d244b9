"""Every stop line counts the changes Canvas made: a second Ctrl-C or SIGTERM stops the wait
for writes in flight, counts those answered, and calls the rest unknown (canvas_jobs/runner.py
finish_pending). Real signals to a real process against a slowed stand-in."""

import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, audit_writes, changes_counted, write_config


def inactive(canvas, course):
    return sum(e.workflow_state == "inactive" for e in canvas.store.enrollments.values()
               if e.course_id == course.id)


@pytest.mark.parametrize("first,second,code,word", [
    (signal.SIGINT, signal.SIGINT, 130, "interrupted"),
    (signal.SIGTERM, signal.SIGTERM, 143, "terminated"),
    (signal.SIGINT, signal.SIGTERM, 130, "interrupted"),
])
def test_a_second_signal_still_counts_every_change(canvas, course, tmp_path, first, second, code, word):
    people = [canvas.store.add_user(f"K{n:03d}") for n in range(300)]
    for user in people:
        canvas.store.enroll(user, course)
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,state\n" + "".join(f"{course.id},{u.sis_user_id},inactive\n"
                                                             for u in people))
    log = tmp_path / "audit.jsonl"
    args = [sys.executable, str(ROOT / "set_user_state.py"), "--csv", str(csv), "--log", str(log),
            "--workers", "8", "--config", write_config(tmp_path / "c.json", canvas.url)]
    canvas.latency = (0.3, 0.6)  # writes stay in flight long enough for the second signal
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while len(canvas.writes()) < 30 and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(first)
        time.sleep(0.1)  # the run waits for its writes in flight (up to 0.6 s each) when the second comes
        proc.send_signal(second)
        out, err = proc.communicate(timeout=60)  # a hang guard only
    finally:
        proc.kill()
    assert proc.returncode == code and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and "run the same command again" in lines[0], err
    changed = changes_counted(lines[0])
    found = re.search(r"(\d+) unknown", lines[0])
    unknown = int(found[1]) if found else 0
    made = inactive(canvas, course)  # the process has ended: nothing is in flight any more
    assert changed == len(out.splitlines())  # each change counted was printed
    assert changed <= made <= changed + unknown, (changed, unknown, made)
    assert len(canvas.writes()) == made
    assert {w["enrollment_id"] for w in audit_writes(log)} <= {e.id for e in canvas.store.enrollments.values()
                                                              if e.workflow_state == "inactive"}
    canvas.latency = (0, 0)
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0 and inactive(canvas, course) == 300, rerun.stderr

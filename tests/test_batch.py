"""--csv batches, the audit log and --undo, against the stand-in Canvas."""

import io
import json
import signal
import subprocess
import sys
import time

import pytest

import enroll_user
import set_user_state
from conftest import ROOT, TOKEN, audit_records, audit_writes, write_config, write_csv
from standin import Fault, proxy_error, throttled


@pytest.fixture
def people(canvas, course):
    return [canvas.store.add_user(f"P{n:03d}") for n in range(300)]


def test_enroll_batch_of_hundreds_with_faults(canvas, course, people, run, tmp_path):
    canvas.fault(throttled(429, method="POST", times=5))
    canvas.fault(throttled(403, method="GET", times=2))
    canvas.fault(proxy_error(503, method="GET", times=2))
    canvas.fault(Fault("after", method="POST", path="enrollments", status=502, times=3))
    csv = write_csv(tmp_path / "in.csv", "course_id,sis_user_id,role",
                    [(course.id, u.sis_user_id, "student") for u in people])
    log = tmp_path / "audit.jsonl"
    r = run(enroll_user, "--csv", csv, "--log", log, "--workers", "6")
    assert r.code == 0, r.err
    assert "summary: created 300, unchanged 0, failed 0" in r.err
    assert all(canvas.store.states_of(u.sis_user_id) == ["active"] for u in people)
    posts = len(canvas.calls("POST"))
    assert posts <= 300 + 5  # only throttled POSTs were sent again
    assert len(canvas.calls("GET")) <= 40
    assert len(audit_writes(log)) == 300 and TOKEN not in log.read_text()
    before = len(canvas.requests)
    r = run(enroll_user, "--csv", csv, "--log", log)
    assert r.code == 0 and "unchanged 300" in r.err
    # the lookups, and the course and its sections for the names
    assert canvas.writes()[posts:] == [] and len(canvas.requests) - before <= 12


def test_state_batch_mixed_good_and_bad_rows(canvas, course, people, run, tmp_path):
    for u in people[:100]:
        canvas.store.enroll(u, course)
    rows = [(u.sis_user_id, course.id, "inactive") for u in people[:100]]
    rows[10] = ("P010", course.id, "paused")          # bad word
    rows[20] = ("nobody", course.id, "inactive")      # unknown SIS ID
    rows[30] = ("P030", 99999, "inactive")            # unknown course
    rows[40] = ("P150", course.id, "inactive")        # not enrolled
    csv = write_csv(tmp_path / "in.csv", "sis_user_id,course_id,state,comment", rows)
    r = run(set_user_state, "--csv", csv, "--json")
    assert r.code == 1
    results = r.json()
    assert len(results) == 100 and {o["row"] for o in results} == set(range(2, 102))
    failed = {o["row"]: o["error"] for o in results if o["action"] == "failed"}
    assert sorted(failed) == [12, 22, 32, 42]
    assert "unknown state 'paused'" in failed[12] and "no user with SIS ID 'nobody'" in failed[22]
    assert "course 99999 not found" in failed[32] and "not enrolled" in failed[42]
    assert "failed 4" in r.err and "line 22: nobody:" in r.err
    assert canvas.store.states_of("P010") == ["active"] and canvas.store.states_of("P011") == ["inactive"]


def test_the_same_change_twice_in_a_file_is_written_once(canvas, course, people, run, tmp_path):
    canvas.store.enroll(people[0], course)
    rows = [(course.id, "P000", "inactive")] * 3 + [(course.id, "P001", "student")] * 0
    r = run(set_user_state, "--csv", write_csv(tmp_path / "s.csv", "course_id,sis_user_id,state", rows))
    assert r.code == 0 and "deactivated 1, unchanged 2" in r.err and len(canvas.writes()) == 1
    rows = [(course.id, "P002", "student"), (course.id, "P002", "Student")]
    r = run(enroll_user, "--csv", write_csv(tmp_path / "e.csv", "course_id,sis_user_id,role", rows), "--json")
    assert r.code == 0
    assert sorted((o["row"], o["action"]) for o in r.json()) == [(2, "created"), (3, "unchanged")]
    assert len(canvas.store.enrollments_of("P002")) == 1 and len(canvas.calls("POST")) == 1


def test_bom_blank_lines_order_and_stdin(canvas, course, people, run, tmp_path, monkeypatch):
    canvas.store.enroll(people[0], course)
    data = f"\ufeffstate,Course_ID,sis_user_id\n\ninactive,{course.id},P000\n\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data.encode())))
    r = run(set_user_state, "--csv", "-")
    assert r.code == 0, r.err
    assert canvas.store.states_of("P000") == ["inactive"]


@pytest.mark.parametrize("content,words", [
    (b"course_id,sis_user_id\n1,S1\n", "line 1: missing column(s) role"),
    (b"course_id,sis_user_id,role\n1,S1,student\n1,S2\n", "line 3: only 2 field(s)"),
    (b"course_id,sis_user_id,role\n1,S1,student\n1,\xff\xfe,student\n", "line 3: not UTF-8"),
    (b'course_id,sis_user_id,role\n1,"S1,student\n', "not valid CSV"),
    (b"", "empty file"),
])
def test_bad_files_are_refused_before_any_change(canvas, course, run, tmp_path, content, words):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    r = run(enroll_user, "--csv", path)
    assert r.code == 2 and words in r.err and canvas.requests == []


def test_missing_file_and_mixed_usage(canvas, run, tmp_path):
    r = run(enroll_user, "--csv", tmp_path / "none.csv")
    assert r.code == 2 and "cannot read CSV file" in r.err
    r = run(enroll_user, "1", "S1", "student", "--csv", tmp_path / "none.csv")
    assert r.code == 2 and "or --csv FILE" in r.err
    r = run(set_user_state, "--csv", tmp_path / "x.csv", "--workers", "0")
    assert r.code == 2 and canvas.requests == []
    r = run(enroll_user, "--csv", tmp_path / "x.csv", "--section", "1")
    assert r.code == 2 and "as CSV columns" in r.err
    r = run(set_user_state, "--csv", tmp_path / "x.csv", "--role", "ta")
    assert r.code == 2 and "as CSV columns" in r.err


def test_single_user_run_logs_when_asked(canvas, course, people, run, tmp_path):
    canvas.store.enroll(people[0], course)
    log = tmp_path / "one.jsonl"
    r = run(set_user_state, course.id, "P000", "inactive", "--log", log)
    assert r.code == 0 and r.err == ""
    r = run(set_user_state, course.id, "P000", "inactive", "--log", log)  # nothing changed
    assert [e["event"] for e in audit_records(log)] == ["start", "intent", "result", "end"]
    [write] = audit_writes(log)
    assert write["before"] == "active" and write["after"] == "inactive"
    r = run(set_user_state, "--undo", log)
    assert r.code == 0 and canvas.store.states_of("P000") == ["active"]


def test_dry_run_batch_writes_nothing_and_logs_nothing(canvas, course, people, run, tmp_path):
    csv = write_csv(tmp_path / "in.csv", "course_id,sis_user_id,role",
                    [(course.id, u.sis_user_id, "ta") for u in people[:20]])
    r = run(enroll_user, "--csv", csv, "--dry-run", "--log", tmp_path / "log")
    assert r.code == 0 and "created 20" in r.err and "dry run" in r.err
    assert canvas.writes() == [] and not (tmp_path / "log").exists()


def test_undo_puts_back_the_last_run(canvas, course, people, run, tmp_path):
    store = canvas.store
    for u in people[:10]:
        store.enroll(u, course)
    for u in people[10:15]:
        store.enroll(u, course, state="inactive")
    log = tmp_path / "audit.jsonl"
    run(enroll_user, "--csv", write_csv(tmp_path / "e.csv", "course_id,sis_user_id,role",
                                        [(course.id, "P020", "student")]), "--log", log)
    rows = [(course.id, u.sis_user_id, "inactive") for u in people[:10]] + \
           [(course.id, u.sis_user_id, "active") for u in people[10:15]]
    r = run(set_user_state, "--csv", write_csv(tmp_path / "s.csv", "course_id,sis_user_id,state", rows),
            "--log", log)
    assert r.code == 0 and "deactivated 10, reactivated 5" in r.err
    runs = [json.loads(line)["run"] for line in log.read_text().splitlines() if '"start"' in line]
    r = run(set_user_state, "--undo", log, "--dry-run", "--json")
    assert r.code == 0 and len(r.json()) == 15 and canvas.store.states_of("P000") == ["inactive"]
    r = run(set_user_state, "--undo", log)
    assert r.code == 0, r.err
    assert all(store.states_of(u.sis_user_id) == ["active"] for u in people[:10])
    assert all(store.states_of(u.sis_user_id) == ["inactive"] for u in people[10:15])
    r = run(set_user_state, "--undo", log, "--run", runs[0])  # the enroll run
    assert r.code == 0 and store.states_of("P020") == ["deleted"]
    assert canvas.writes()[-1]["query"] == {"task": "delete"}


def test_undo_leaves_what_changed_since(canvas, course, people, run, tmp_path):
    store = canvas.store
    a, b = store.enroll(people[0], course), store.enroll(people[1], course)
    log = tmp_path / "audit.jsonl"
    run(set_user_state, "--csv", write_csv(tmp_path / "s.csv", "course_id,sis_user_id,state",
                                           [(course.id, "P000", "inactive"), (course.id, "P001", "inactive")]),
        "--log", log)
    b.workflow_state = "completed"  # someone concluded it meanwhile
    r = run(set_user_state, "--undo", log)
    assert r.code == 1 and "changed since" in r.err
    assert a.workflow_state == "active" and b.workflow_state == "completed"


def test_undo_of_a_bad_log(canvas, run, tmp_path):
    (tmp_path / "x.jsonl").write_text("not json\n")
    r = run(set_user_state, "--undo", tmp_path / "x.jsonl")
    assert r.code == 2 and "not an audit log" in r.err
    r = run(set_user_state, "--undo", tmp_path / "missing.jsonl")
    assert r.code == 2 and "cannot read audit log" in r.err


def _start_batch(canvas, tmp_path, n=200):
    course = canvas.store.add_course("Big", "BIG")
    for i in range(n):
        canvas.store.add_user(f"B{i:04d}")
    csv = write_csv(tmp_path / "big.csv", "course_id,sis_user_id,role",
                    [("sis_course_id:BIG", f"B{i:04d}", "student") for i in range(n)])
    config = write_config(tmp_path / "c.json", canvas.url)
    canvas.latency = (0.02, 0.03)
    args = [sys.executable, str(ROOT / "enroll_user.py"), "--csv", csv, "--config", config,
            "--log", str(tmp_path / "audit.jsonl"), "--workers", "2"]
    return course, args


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "terminated")])
def test_interrupted_batch_stops_cleanly_and_rerun_finishes(canvas, tmp_path, sig, code, word):
    course, args = _start_batch(canvas, tmp_path)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while len(canvas.calls("POST")) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert err.count("\n") == 1 and word in err and "run the same command again" in err
    assert "Traceback" not in err
    made = {e.id for e in canvas.store.enrollments.values() if e.course_id == course.id}
    logged = {w["enrollment_id"] for w in audit_writes(tmp_path / "audit.jsonl")}
    assert logged == made and 0 < len(made) < 200
    canvas.latency = (0, 0)
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0 and f"created {200 - len(made)}," in rerun.stderr
    assert all(len(canvas.store.enrollments_of(f"B{i:04d}")) == 1 for i in range(200))


def test_progress_line_only_on_a_terminal(canvas, tmp_path):
    import os
    import pty
    _course, args = _start_batch(canvas, tmp_path, n=30)
    canvas.latency = (0, 0)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=follower, text=True)
    out, _ = proc.communicate(timeout=60)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data.decode())
    os.close(leader)
    err = "".join(chunks)
    assert proc.returncode == 0 and "\rrow 30/30: created 30" in err and "summary: created 30" in err
    assert "\r" not in out


def test_killed_batch_leaves_only_whole_log_lines(canvas, tmp_path):
    course, args = _start_batch(canvas, tmp_path)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while len(canvas.calls("POST")) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.wait(timeout=10)
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is whole JSON
    made = {e.id for e in canvas.store.enrollments.values() if e.course_id == course.id}
    assert {e["enrollment_id"] for e in entries if e["event"] == "change"} <= made

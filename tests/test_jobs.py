"""Jobs and the write-ahead log: kill -9 at any point, resume, undo whole jobs."""

import signal
import subprocess
import sys
import time

import pytest

import enroll_user
import set_user_state
from conftest import ROOT, audit_records, write_config, write_csv
from standin import Fault


def batch(canvas, tmp_path, script, n=200, enrolled=True):
    """A course of n users and the command that sets them inactive (or enrolls them)."""
    course = canvas.store.add_course("Big", "BIG")
    for i in range(n):
        user = canvas.store.add_user(f"B{i:04d}")
        if enrolled:
            canvas.store.enroll(user, course)
    column, value = ("state", "inactive") if script == "set_user_state.py" else ("role", "student")
    csv = write_csv(tmp_path / "big.csv", f"course_id,sis_user_id,{column}",
                    [("sis_course_id:BIG", f"B{i:04d}", value) for i in range(n)])
    config = write_config(tmp_path / "c.json", canvas.url)
    args = [sys.executable, str(ROOT / script), "--csv", csv, "--config", config,
            "--log", str(tmp_path / "audit.jsonl")]
    return course, args


def wait_for_writes(canvas, k, timeout=30):
    deadline = time.monotonic() + timeout
    while len(canvas.writes()) < k and time.monotonic() < deadline:
        time.sleep(0.002)


@pytest.mark.parametrize("script,module", [("set_user_state.py", set_user_state),
                                           ("enroll_user.py", enroll_user)])
@pytest.mark.parametrize("k", [1, 9, 60])
def test_kill_9_after_k_writes_then_undo_restores_everything(canvas, tmp_path, run, script, module, k):
    enrolling = script == "enroll_user.py"
    course, args = batch(canvas, tmp_path, script, enrolled=not enrolling)
    canvas.latency = (0.02, 0.04)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_writes(canvas, k)
    proc.kill()
    proc.wait(timeout=10)
    time.sleep(0.3)  # requests already sent are still answered by Canvas
    changed = [e for e in canvas.store.enrollments.values()
               if (e.course_id == course.id and e.workflow_state != "active") or enrolling]
    assert len(changed) >= k and canvas.store.enrollments
    canvas.latency = (0, 0)
    r = run(module, "--undo", tmp_path / "audit.jsonl")
    assert r.code == 0, r.err
    states = {e.workflow_state for e in canvas.store.enrollments.values() if e.course_id == course.id}
    assert states == ({"deleted"} if enrolling else {"active"}), r.err


def test_interrupt_rerun_then_undo_restores_the_whole_job(canvas, tmp_path, run):
    _course, args = batch(canvas, tmp_path, "set_user_state.py", n=300)
    canvas.latency = (0.02, 0.03)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_writes(canvas, 40)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "run the same command again" in err
    first = sum(e.workflow_state == "inactive" for e in canvas.store.enrollments.values())
    assert 40 <= first < 300
    canvas.latency = (0, 0)
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0 and f"deactivated {300 - first}," in rerun.stderr
    starts = [e for e in audit_records(tmp_path / "audit.jsonl") if e["event"] == "start"]
    assert len(starts) == 2 and starts[0]["job"] == starts[1]["job"]
    assert starts[1]["continues"] == starts[0]["run"]
    r = run(set_user_state, "--undo", tmp_path / "audit.jsonl")
    assert r.code == 0 and "reactivated 300" in r.err, r.err
    assert {e.workflow_state for e in canvas.store.enrollments.values()} == {"active"}


def test_a_finished_job_is_not_continued_and_other_commands_are_other_jobs(canvas, course, run, tmp_path):
    for i in range(4):
        canvas.store.enroll(canvas.store.add_user(f"U{i}"), course)
    log = tmp_path / "audit.jsonl"
    off = write_csv(tmp_path / "off.csv", "course_id,sis_user_id,state", [(course.id, "U0", "inactive")])
    on = write_csv(tmp_path / "on.csv", "course_id,sis_user_id,state", [(course.id, "U0", "active")])
    for path in (off, on, off):
        assert run(set_user_state, "--csv", path, "--log", log).code == 0
    starts = [e for e in audit_records(log) if e["event"] == "start"]
    assert len({s["job"] for s in starts}) == 3 and not any("continues" in s for s in starts)


def test_main_logs_its_own_arguments(canvas, course, run, tmp_path, config):
    canvas.store.enroll(canvas.store.add_user("U1"), course)
    log = tmp_path / "audit.jsonl"
    csv = write_csv(tmp_path / "in.csv", "course_id,sis_user_id,state", [(course.id, "U1", "inactive")])
    run(set_user_state, "--csv", csv, "--log", log)
    [start] = [e for e in audit_records(log) if e["event"] == "start"]
    assert start["command"] == f"set_user_state.py --csv {csv} --log {log} --config {config}"


def test_a_log_with_a_cut_last_line_is_read_and_appended_after(canvas, course, run, tmp_path):
    for i in range(3):
        canvas.store.enroll(canvas.store.add_user(f"U{i}"), course)
    log = tmp_path / "audit.jsonl"
    csv = write_csv(tmp_path / "in.csv", "course_id,sis_user_id,state",
                    [(course.id, f"U{i}", "inactive") for i in range(3)])
    assert run(set_user_state, "--csv", csv, "--log", log).code == 0
    with open(log, "a") as f:
        f.write('{"time": "2027-01-10T09:12:01+0000", "run": "x", "event": "inte')  # cut by a crash
    r = run(set_user_state, "--undo", log)
    assert r.code == 0 and "cut short" in r.err and "reactivated 3" in r.err
    assert canvas.store.states_of("U0") == ["active"]
    lines = log.read_text().splitlines()  # the cut line moved aside, never appended after
    assert all(line.endswith("}") for line in lines) and not any(line.endswith('"inte') for line in lines)
    assert (tmp_path / "audit.jsonl.damaged").read_text().startswith('{"time": "2027-01-10T09:12:01')


def test_a_line_cut_in_the_middle_is_named_and_skipped(canvas, run, tmp_path):
    log = tmp_path / "audit.jsonl"
    log.write_text('{"run": "a", "event": "start"}\n{"run": "a", "ev\n{"run": "a", "event": "end"}\n')
    r = run(set_user_state, "--undo", log)
    assert "line 2 damaged" in r.err and "not an audit log" not in r.err


def test_enroll_user_undoes_its_own_job(canvas, course, run, tmp_path):
    for i in range(5):
        canvas.store.add_user(f"N{i}")
    log = tmp_path / "audit.jsonl"
    csv = write_csv(tmp_path / "new.csv", "course_id,sis_user_id,role",
                    [(course.id, f"N{i}", "student") for i in range(5)])
    assert run(enroll_user, "--csv", csv, "--log", log).code == 0
    r = run(enroll_user, "--undo", log, "--json")
    assert r.code == 0 and {o["action"] for o in r.json()} == {"deleted"}
    assert all(canvas.store.states_of(f"N{i}") == ["deleted"] for i in range(5))


def test_undo_by_run_id_takes_one_run_of_a_job(canvas, course, run, tmp_path):
    for i in range(2):
        canvas.store.enroll(canvas.store.add_user(f"U{i}"), course)
    log = tmp_path / "audit.jsonl"
    run(set_user_state, course.id, "U0", "inactive", "--log", log)
    run(set_user_state, course.id, "U1", "inactive", "--log", log)
    runs = [e["run"] for e in audit_records(log) if e["event"] == "start"]
    r = run(set_user_state, "--undo", log, "--run", runs[0])
    assert r.code == 0 and canvas.store.states_of("U0") == ["active"]
    assert canvas.store.states_of("U1") == ["inactive"]
    r = run(set_user_state, "--undo", log, "--run", "nope")
    assert r.code == 2 and "no job or run 'nope'" in r.err


def test_undo_passes_over_a_last_job_that_changed_nothing(canvas, course, run, tmp_path):
    """A command that failed (a refusal, a mistyped SIS ID) is logged but changed nothing:
    --undo puts back the last job that changed something, and names it."""
    canvas.store.enroll(canvas.store.add_user("U0"), course)
    log = tmp_path / "audit.jsonl"
    run(set_user_state, course.id, "U0", "inactive", "--log", log)
    first_job = audit_records(log)[0]["job"]
    canvas.fault(Fault("status", method="PUT", status=403, times=9,
                       body={"errors": [{"message": "user not authorized to perform that action"}]}))
    assert run(set_user_state, course.id, "U0", "active", "--log", log).code == 1  # logged, nothing made
    listed = run(set_user_state, "--jobs", log).out.splitlines()
    assert len(listed) == 2 and listed[0].startswith(first_job) and "  0 changes  " in listed[1]
    canvas.faults.clear()
    r = run(set_user_state, "--undo", log)
    assert r.code == 0 and r.err.startswith(f"set_user_state.py: putting back job {first_job} "), r.err
    assert canvas.store.states_of("U0") == ["active"]


def test_undo_of_a_log_whose_jobs_changed_nothing_says_so(canvas, course, run, tmp_path):
    canvas.store.enroll(canvas.store.add_user("U0"), course)
    log = tmp_path / "audit.jsonl"
    canvas.fault(Fault("status", method="DELETE", status=403, times=9,
                       body={"errors": [{"message": "user not authorized to perform that action"}]}))
    assert run(set_user_state, course.id, "U0", "inactive", "--log", log).code == 1
    r = run(set_user_state, "--undo", log)
    assert r.code == 2 and "no job in" in r.err and "changed anything" in r.err and "--jobs" in r.err

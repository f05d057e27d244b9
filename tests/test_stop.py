"""When the whole run fails the run stops: a revoked token, Canvas down, throttling that
never lets up, lists that never end (canvas_jobs/guard.py, canvas_common.get_all)."""

import signal
import socket
import subprocess
import sys
import time

import pytest

import enroll_user
import set_user_state
from conftest import ROOT, TOKEN, audit_records, audit_writes, run_script, write_config, write_csv
from standin import Fault, proxy_error, throttled

EXIT_STOPPED = 75


@pytest.fixture
def batch(canvas, course, tmp_path):
    """300 active students and a file that sets them all inactive."""
    people = [canvas.store.add_user(f"P{n:03d}") for n in range(300)]
    for user in people:
        canvas.store.enroll(user, course)
    csv = write_csv(tmp_path / "in.csv", "course_id,sis_user_id,state",
                    [(course.id, u.sis_user_id, "inactive") for u in people])
    return csv, tmp_path / "audit.jsonl"


def after_writes(canvas, n, action):
    """Let n writes through, then act (revoke the token, take Canvas down); returns a mark
    holding the number of requests Canvas had seen at that moment."""
    mark = []

    def then():
        mark.append(len(canvas.requests))
        action()
    canvas.fault(Fault("delay", method="DELETE|PUT|POST", skip=n, times=1, then=then))
    return mark


def states(canvas, course):
    return [e.workflow_state for e in canvas.store.enrollments.values() if e.course_id == course.id]


def stop_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one message, not one per row
    return lines[0]


def test_revoked_token_stops_at_once_rerun_finishes_and_undo_restores(canvas, course, batch, run):
    csv, log = batch
    mark = after_writes(canvas, 100, lambda: canvas.store.tokens.__setitem__(TOKEN, "revoked"))
    r = run(set_user_state, "--csv", csv, "--log", log, "--workers", "8")
    assert r.code == EXIT_STOPPED
    line = stop_line(r.err)
    assert "stopped: Canvas rejected the access token (Revoked access token.)" in line
    assert "not done" in line and "run the same command again" in line and "failed 0" in line
    assert len(canvas.requests) - mark[0] <= 16  # those in flight, then nothing more
    done = states(canvas, course).count("inactive")
    assert 100 <= done < 300
    canvas.store.tokens[TOKEN] = "admin"  # a new token, the same command
    r = run(set_user_state, "--csv", csv, "--log", log)
    assert r.code == 0, r.err
    assert set(states(canvas, course)) == {"inactive"}
    starts = [e for e in audit_records(log) if e["event"] == "start"]
    assert len(starts) == 2 and starts[0]["job"] == starts[1]["job"]  # the same job, continued
    assert len(audit_writes(log)) == 300
    r = run(set_user_state, "--undo", log)
    assert r.code == 0 and "reactivated 300" in r.err, r.err
    assert set(states(canvas, course)) == {"active"}


@pytest.mark.parametrize("fault", [
    lambda: proxy_error(503, times=10 ** 9),
    lambda: Fault("status", status=500, body={"errors": [{"message": "An error occurred."}],
                                              "error_report_id": 7}, times=10 ** 9),
])
def test_canvas_down_mid_batch_stops_after_a_few_failures(canvas, course, batch, run, fault):
    csv, log = batch
    mark = after_writes(canvas, 100, lambda: canvas.fault(fault()))
    r = run(set_user_state, "--csv", csv, "--log", log, "--workers", "8")
    assert r.code == EXIT_STOPPED
    line = stop_line(r.err)
    # 10 requests, or 5 writes, in a row failed: whichever comes first
    assert "stopped: Canvas is unavailable (" in line and " in a row failed" in line
    assert "failed 0" in line and "not done" in line  # the rows not tried are not failed
    assert len(canvas.requests) - mark[0] <= 40  # bounded, not thousands
    canvas.faults.clear()  # Canvas is back
    r = run(set_user_state, "--csv", csv, "--log", log)
    assert r.code == 0, r.err
    assert set(states(canvas, course)) == {"inactive"}
    r = run(set_user_state, "--undo", log)
    assert r.code == 0 and "reactivated 300" in r.err, r.err
    assert set(states(canvas, course)) == {"active"}


def test_a_short_outage_is_ridden_out(canvas, course, batch, run):
    csv, log = batch
    canvas.fault(proxy_error(503, method="GET", times=4))
    r = run(set_user_state, "--csv", csv, "--log", log)
    assert r.code == 0 and "deactivated 300" in r.err, r.err


def test_refused_connections_stop_an_enroll_batch(canvas, course, run, tmp_path, config):
    people = [canvas.store.add_user(f"Q{n:03d}") for n in range(50)]
    csv = write_csv(tmp_path / "e.csv", "course_id,sis_user_id,role",
                    [(course.id, u.sis_user_id, "student") for u in people])
    canvas.fault(Fault("delay", method="POST", skip=10, times=1, then=lambda: canvas.fault(
        Fault("reset", times=10 ** 9))))
    r = run(enroll_user, "--csv", csv, "--workers", "4")
    assert r.code == EXIT_STOPPED and "Canvas is unavailable" in stop_line(r.err)
    canvas.faults.clear()
    r = run(enroll_user, "--csv", csv)
    assert r.code == 0 and len([e for e in canvas.store.enrollments.values()]) == 50, r.err


def test_one_user_keeps_its_own_error_and_exit_code(canvas, course, run):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    canvas.store.tokens[TOKEN] = "revoked"
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 1 and "Revoked access token" in r.err


@pytest.mark.parametrize("attempt", range(3))
def test_throttling_at_cost_6_fails_no_row(canvas, course, run, tmp_path, attempt):
    # request_throttle.rb: hwm 600, up-front 50; a custom outflow (its custom_settings)
    # keeps the test short; each request costs 6, and the bucket starts nearly full
    # (another program of the same token just ran)
    people = [canvas.store.add_user(f"T{n:03d}") for n in range(60)]
    for user in people:
        canvas.store.enroll(user, course)
    canvas.bucket = (600.0, 60.0, 6.0)
    canvas._level, canvas._level_at = 580.0, time.monotonic()
    canvas.latency = (0.01, 0.03)
    csv = write_csv(tmp_path / "t.csv", "course_id,sis_user_id,state",
                    [(course.id, u.sis_user_id, "inactive") for u in people])
    r = run(set_user_state, "--csv", csv, "--retries", "0")  # not even one retry needed
    assert r.code == 0 and "deactivated 60, unchanged 0, failed 0" in r.err, r.err
    assert canvas.throttled > 0  # it was throttled, and no row paid for it
    assert set(states(canvas, course)) == {"inactive"}


@pytest.mark.parametrize("kind", ["drop_page", "bad_bookmark"])
@pytest.mark.parametrize("skip,words", [
    (1, "the next page with the same rows as the page before"),  # page 2 is page 1 again
    (2, "next-page link leads back to a page already read"),  # page 3 is page 1, linking to 2
])
def test_a_list_that_does_not_move_on_stops_the_lookup(canvas, course, run, tmp_path, kind, skip, words):
    canvas.default_per_page = canvas.max_per_page = 2
    people = [canvas.store.add_user(f"R{n:03d}") for n in range(7)]
    for user in people:
        canvas.store.enroll(user, course)
    canvas.fault(Fault(kind, method="GET", path="enrollments", skip=skip, times=10 ** 9))
    csv = write_csv(tmp_path / "p.csv", "course_id,sis_user_id,state",
                    [(course.id, u.sis_user_id, "inactive") for u in people])
    r = run(set_user_state, "--csv", csv, "--json")
    assert r.code == 1 and words in r.err and "nothing was changed" in r.err
    assert {o["action"] for o in r.json()} == {"failed"}
    assert canvas.writes() == [] and len(canvas.requests) < 10


@pytest.mark.parametrize("rows,lines", [
    ([("S101", "inactive"), ("S102", "inactive"), ("S101", "active")], "lines 2 and 4"),
    ([("S101", "inactive"), ("S101", "INACTIVE"), ("S101", "active")], "lines 2 and 4"),
])
def test_contradictory_states_refuse_the_file(canvas, course, run, tmp_path, rows, lines):
    for sis in ("S101", "S102"):
        canvas.store.enroll(canvas.store.add_user(sis), course)
    csv = write_csv(tmp_path / "c.csv", "course_id,sis_user_id,state", [(course.id, *r) for r in rows])
    r = run(set_user_state, "--csv", csv)
    assert r.code == 2 and lines in r.err and "contradict" in r.err and "'S101'" in r.err
    assert canvas.requests == []


def test_rows_that_do_not_contradict_run(canvas, course, run, tmp_path):
    user = canvas.store.add_user("S101")
    canvas.store.enroll(user, course)
    canvas.store.enroll(user, course, "TaEnrollment")
    rows = [("S101", "inactive", "ta"), ("S101", "active", "student"), ("S101", "active", "student")]
    csv = write_csv(tmp_path / "c.csv", "course_id,sis_user_id,state,role", [(course.id, *r) for r in rows])
    r = run(set_user_state, "--csv", csv, "--json")
    assert r.code == 0, r.err
    assert sorted(canvas.store.states_of("S101")) == ["active", "inactive"]
    # every reported line is true at the end
    for o in r.json():
        assert o["after"] == next(e.workflow_state for e in canvas.store.enrollments.values()
                                  if e.id == o["enrollment_id"])


def test_enrolled_twice_with_different_states_is_refused(canvas, course, run, tmp_path):
    canvas.store.add_user("S101")
    csv = write_csv(tmp_path / "e.csv", "course_id,sis_user_id,role,state",
                    [(course.id, "S101", "student", "active"), (course.id, "S101", "Student", "inactive")])
    r = run(enroll_user, "--csv", csv)
    assert r.code == 2 and "lines 2 and 3 contradict" in r.err and canvas.requests == []


@pytest.mark.parametrize("cell", ["1.23457E+11", "4.2E+15", "1E+12"])
def test_excel_scientific_notation_refuses_the_file(canvas, course, run, tmp_path, cell):
    csv = write_csv(tmp_path / "x.csv", "course_id,sis_user_id,state",
                    [(course.id, "S1", "inactive"), (course.id, cell, "inactive")])
    r = run(set_user_state, "--csv", csv)
    assert r.code == 2 and "line 3" in r.err and "scientific notation" in r.err and "Text" in r.err
    assert canvas.requests == []


def test_an_unknown_all_digit_sis_id_mentions_leading_zeros(canvas, course, run, tmp_path):
    canvas.store.enroll(canvas.store.add_user("000140"), course)
    csv = write_csv(tmp_path / "z.csv", "course_id,sis_user_id,state", [(course.id, "140", "inactive")])
    r = run(set_user_state, "--csv", csv)
    assert r.code == 1 and "no user with SIS ID '140'" in r.err and "leading zeros" in r.err
    r = run(set_user_state, course.id, "S99", "inactive")
    assert r.code == 1 and "leading zeros" not in r.err


def test_max_changes_stops_before_any_change_and_dry_run_gives_the_count(canvas, course, batch, run):
    csv, log = batch
    r = run(set_user_state, "--csv", csv, "--dry-run")
    assert r.code == 0 and "300 changes: --max-changes 300 allows them" in r.err
    r = run(set_user_state, "--csv", csv, "--log", log, "--max-changes", "50")
    assert r.code == 3 and canvas.writes() == []
    line = stop_line(r.err)
    assert "300 changes planned so far, more than --max-changes 50 allows (none made)" in line
    assert "higher --max-changes" in line
    r = run(set_user_state, "--csv", csv, "--log", log, "--max-changes", "300")
    assert r.code == 0 and "deactivated 300" in r.err
    assert set(states(canvas, course)) == {"inactive"}


def test_max_changes_counts_across_blocks(canvas, course, run, tmp_path):
    people = [canvas.store.add_user(f"B{n:04d}") for n in range(1100)]
    csv = write_csv(tmp_path / "b.csv", "course_id,sis_user_id,role",
                    [(course.id, u.sis_user_id, "student") for u in people])
    r = run(enroll_user, "--csv", csv, "--max-changes", "1050")
    assert r.code == 3 and "1100 changes planned so far" in r.err and "(1000 made before this point)" in r.err
    assert len(canvas.calls("POST")) == 1000


@pytest.mark.parametrize("typed,near", [("--dryrun", "--dry-run"), ("--max_changes=5", "--max-changes"),
                                        ("--worker", "--workers"), ("--DRY-RUN", "--dry-run")])
def test_an_unknown_option_is_named_with_the_nearest_one(canvas, course, run, typed, near):
    r = run(set_user_state, course.id, "S1", "inactive", typed)
    assert r.code == 2 and f"unknown option {typed.split('=')[0]}; did you mean {near}?" in r.err
    assert "SIS ID" not in r.err and canvas.requests == []


def test_a_dashed_sis_id_still_gets_the_double_dash_hint(canvas, course, run):
    r = run(set_user_state, course.id, "-S1001", "inactive")
    assert r.code == 2 and "goes after --" in r.err and "unknown option" not in r.err


def test_a_course_url_of_the_configured_canvas_is_accepted(canvas, course, run, tmp_path):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    canvas.store.enroll(canvas.store.add_user("S2"), course)
    r = run(set_user_state, f"{canvas.url}/courses/{course.id}/users", "S1", "inactive", "--json")
    assert r.code == 0, r.err
    assert r.json()[0]["course_id"] == str(course.id) and canvas.store.states_of("S1") == ["inactive"]
    csv = write_csv(tmp_path / "u.csv", "course_id,sis_user_id,state",
                    [(f"{canvas.url}/courses/{course.id}", "S2", "inactive")])
    r = run(set_user_state, "--csv", csv)
    assert r.code == 0 and canvas.store.states_of("S2") == ["inactive"], r.err


@pytest.mark.parametrize("host", ["https://canvas.example.edu", "http://127.0.0.2:1"])
def test_a_course_url_of_another_host_is_a_usage_error(canvas, course, run, tmp_path, host):
    r = run(set_user_state, f"{host}/courses/{course.id}/users", "S1", "inactive")
    assert r.code == 2 and "not on the configured Canvas" in r.err and canvas.requests == []
    csv = write_csv(tmp_path / "u.csv", "course_id,sis_user_id,state",
                    [(course.id, "S1", "inactive"), (f"{host}/courses/{course.id}", "S2", "inactive")])
    r = run(set_user_state, "--csv", csv)
    assert r.code == 2 and "line 3" in r.err and "not on the configured Canvas" in r.err
    assert canvas.requests == []


def test_throttling_that_never_lets_up_stops_the_run(canvas, course, batch, run, monkeypatch):
    from canvas_jobs.guard import Guard
    monkeypatch.setattr(Guard, "THROTTLED_FOR", 3.0)  # minutes in real runs; seconds here
    csv, log = batch
    mark = after_writes(canvas, 20, lambda: canvas.fault(throttled(429, times=10 ** 9)))
    r = run(set_user_state, "--csv", csv, "--log", log)
    assert r.code == EXIT_STOPPED
    line = stop_line(r.err)
    assert "stopped: Canvas kept rate-limiting this token" in line and "failed 0" in line
    assert len(canvas.requests) - mark[0] < 200  # waited between tries, never hammered
    canvas.faults.clear()
    r = run(set_user_state, "--csv", csv, "--log", log)
    assert r.code == 0 and set(states(canvas, course)) == {"inactive"}, r.err


def test_a_stop_as_a_process_is_one_line_and_exit_75(canvas, course, batch):
    csv, log = batch
    canvas.store.tokens[TOKEN] = "expired"
    r = run_script("set_user_state.py", "--csv", csv, "--log", log,
                   env={"CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN})
    assert r.code == EXIT_STOPPED and r.out == ""
    line = stop_line(r.err)
    assert "Expired access token" in line and "after 0 of 300 rows" in line and "300 not done" in line
    assert len(canvas.requests) == 1 and "Traceback" not in r.err


def test_ctrl_c_while_throttled_stops_at_once(canvas, course, batch, config):
    csv, log = batch
    canvas.fault(Fault("delay", method="DELETE", skip=20, times=1, then=lambda: canvas.fault(
        Fault("status", status=429, body="429 Too Many Requests (Rate Limit Exceeded)\n",
              headers={"Content-Type": "text/plain", "X-Rate-Limit-Remaining": "0.0"}, times=10 ** 9))))
    proc = subprocess.Popen([sys.executable, str(ROOT / "set_user_state.py"), "--csv", csv, "--log", log,
                             "--config", config], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while canvas.throttled == 0 and len([r for r in canvas.requests if r["method"] == "DELETE"]) < 25:
        time.sleep(0.05)
    time.sleep(1.0)
    at_signal = len(canvas.requests)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)  # a hang guard only
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    # throttled requests gave up: at most those already on the wire (one per worker, 16) after the signal
    assert len(canvas.requests) - at_signal <= 16


def test_a_batch_against_a_canvas_that_refuses_connections_is_one_stop(canvas, run, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    path = write_config(tmp_path / "dead.json", f"http://127.0.0.1:{port}")
    csv = write_csv(tmp_path / "d.csv", "course_id,sis_user_id,state", [(1, f"S{n}", "inactive") for n in range(30)])
    r = run(set_user_state, "--csv", csv, "--config", path, "--retries", "1", use_config=False)
    assert r.code == EXIT_STOPPED
    line = stop_line(r.err)
    assert "stopped: Canvas is unavailable (the last 2 requests failed" in line and "connection was refused" in line
    assert "failed 0" in line and "30 not done" in line


def test_the_same_command_after_an_undo_is_a_new_job_so_a_later_undo_spares_hand_changes(
        canvas, course, batch, run):
    """Second trial: stopped, undone, one enrollment set inactive by hand, the same command
    run again, then --undo: the hand change stays (the undone job is not continued)."""
    csv, log = batch
    after_writes(canvas, 20, lambda: canvas.store.tokens.__setitem__(TOKEN, "revoked"))
    assert run(set_user_state, "--csv", csv, "--log", log).code == EXIT_STOPPED
    canvas.store.tokens[TOKEN] = "admin"
    assert run(set_user_state, "--undo", log).code == 0
    assert set(states(canvas, course)) == {"active"}
    assert run(set_user_state, course.id, "P003", "inactive").code == 0  # by hand, no log
    rerun = run(set_user_state, "--csv", csv, "--log", log)
    assert rerun.code == 0 and "unchanged 1" in rerun.err
    starts = [r for r in audit_records(log) if r["event"] == "start"]
    assert starts[-1]["job"] != starts[0]["job"] and "continues" not in starts[-1]
    assert run(set_user_state, "--undo", log).code == 0
    by_sis = {canvas.store.users[e.user_id].sis_user_id: e.workflow_state
              for e in canvas.store.enrollments.values() if e.course_id == course.id}
    assert by_sis.pop("P003") == "inactive" and set(by_sis.values()) == {"active"}


def test_writes_refused_by_a_revoked_token_are_not_done_not_unknown(canvas, course, batch, run):
    """Second trial: a 401 is a refusal: those writes were not made, and the log closes them."""
    csv, log = batch
    after_writes(canvas, 50, lambda: canvas.store.tokens.__setitem__(TOKEN, "revoked"))
    r = run(set_user_state, "--csv", csv, "--log", log, "--workers", "8")
    assert r.code == EXIT_STOPPED and "unknown" not in stop_line(r.err)
    records = audit_records(log)
    intents = {(e["run"], e["seq"]) for e in records if e["event"] == "intent"}
    results = {(e.get("of_run") or e["run"], e["seq"]) for e in records if e["event"] == "result"}
    assert intents == results  # nothing left for a rerun to settle
    made = sum(1 for e in records if e["event"] == "result" and e["action"] == "deactivated")
    assert states(canvas, course).count("inactive") == made

"""Whole-run stops while rows are read or written (a revoked token, an unreachable course, a
write-only outage), contradictory and repeated rows, Excel's marks, course URLs and
--max-changes, each against the stand-in."""

import pytest

import enroll_user
import set_user_state
from conftest import TOKEN
from standin import Fault, proxy_error, server_error
from test_rounds import NEW, OLD, old_round
from test_stop import EXIT_STOPPED, states, stop_line, write_csv


def revoke(canvas):
    canvas.store.tokens[TOKEN] = "revoked"


# --- 1. RunStopped while the rows are read (--from) is one line and exit 75 ----------


@pytest.mark.parametrize("module", [enroll_user, set_user_state])
@pytest.mark.parametrize("skip", [0, 3])  # before the roster read, or during it
def test_from_with_a_revoked_token_is_one_line_and_75(canvas, run, module, skip):
    old_round(canvas)
    canvas.fault(Fault("delay", method="GET", skip=skip, times=1, then=lambda: revoke(canvas)))
    r = run(module, NEW, "--from", OLD)
    assert r.code == EXIT_STOPPED, r.err
    line = stop_line(r.err)
    assert "stopped: Canvas rejected the access token" in line and "Traceback" not in r.err
    assert "run the same command again" in line and canvas.writes() == []


@pytest.mark.parametrize("fault", [lambda: proxy_error(503, times=10 ** 9), lambda: Fault("reset", times=10 ** 9)])
def test_from_with_the_old_course_unreachable_is_75_as_for_csv(canvas, run, fault):
    old_round(canvas)
    canvas.fault(fault())
    r = run(enroll_user, NEW, "--from", OLD, "--retries", "1")
    assert r.code == EXIT_STOPPED, r.err
    line = stop_line(r.err)
    assert "stopped: Canvas is unavailable" in line and "before any change" in line
    canvas.faults.clear()
    r = run(enroll_user, NEW, "--from", OLD)
    assert r.code == 0, r.err


# --- 2. a write-only outage stops after a few failed writes, reads or no reads ----------


def requests_after(canvas, method, skip):
    """Requests Canvas saw from the first faulted write on."""
    writes = [i for i, r in enumerate(canvas.requests) if r["method"] == method]
    return len(canvas.requests) - writes[skip]


@pytest.mark.parametrize("fault", [lambda: server_error(times=10 ** 6, method="DELETE", skip=150),
                                   lambda: proxy_error(503, times=10 ** 6, method="DELETE", skip=150)])
def test_undo_in_a_write_only_outage_stops_and_undo_again_finishes(canvas, course, run, tmp_path, fault):
    people = [canvas.store.add_user(f"U{n:03d}") for n in range(300)]
    csv = write_csv(tmp_path / "e.csv", "course_id,sis_user_id,role", [(course.id, u.sis_user_id, "student")
                                                                       for u in people])
    log = tmp_path / "audit.jsonl"
    assert run(enroll_user, "--csv", csv, "--log", log).code == 0
    canvas.fault(fault())
    r = run(enroll_user, "--undo", log)
    assert r.code == EXIT_STOPPED, r.err
    named, _, rest = r.err.partition("\n")
    assert named.startswith("enroll_user.py: putting back job ") and "(300 changes)" in named
    line = stop_line(rest)
    assert "stopped: Canvas is unavailable (5 writes in a row failed" in line and "failed 0" in line
    assert "unknown: the rerun or --undo settles them by looking at Canvas" in line
    assert requests_after(canvas, "DELETE", 150) <= 40  # measured 14-16; was ~1,050
    canvas.faults.clear()
    r = run(enroll_user, "--undo", log)
    assert r.code == 0, r.err
    assert states(canvas, course).count("active") == 0


@pytest.mark.parametrize("fault", [lambda: server_error(times=10 ** 6, method="DELETE", skip=100),
                                   lambda: proxy_error(503, times=10 ** 6, method="DELETE", skip=100)])
def test_a_set_state_batch_in_a_write_only_outage_stops(canvas, course, run, tmp_path, fault):
    people = [canvas.store.add_user(f"P{n:03d}") for n in range(300)]
    for user in people:
        canvas.store.enroll(user, course)
    csv = write_csv(tmp_path / "in.csv", "course_id,sis_user_id,state",
                    [(course.id, u.sis_user_id, "inactive") for u in people])
    log = tmp_path / "audit.jsonl"
    canvas.fault(fault())
    r = run(set_user_state, "--csv", csv, "--log", log, "--workers", "8")
    assert r.code == EXIT_STOPPED, r.err
    assert "5 writes in a row failed" in stop_line(r.err)
    assert requests_after(canvas, "DELETE", 100) <= 40  # 8 workers in flight; measured 15-24
    canvas.faults.clear()
    r = run(set_user_state, "--csv", csv, "--log", log)
    assert r.code == 0, r.err
    assert set(states(canvas, course)) == {"inactive"}


# --- 3. one enrollment asked twice: contradictions refused, duplicates counted once -----


def test_one_enrollment_under_two_course_spellings_is_refused_on_both_lines(canvas, run, tmp_path):
    course = canvas.store.add_course("C3", "C3")
    canvas.store.enroll(canvas.store.add_user("S0001"), course)
    csv = write_csv(tmp_path / "c.csv", "course_id,sis_user_id,state",
                    [("sis_course_id:C3", "S0001", "inactive"), (course.id, "S0001", "active")])
    r = run(set_user_state, "--csv", csv)
    assert r.code == 1, r.err
    assert "line 2: User S0001 (S0001): contradicts line 3 (active), this line asks for inactive: enrollment" in r.err
    assert "line 3: User S0001 (S0001): contradicts line 2 (inactive), this line asks for active: enrollment" in r.err
    assert "already active" not in r.out and canvas.writes() == []
    assert canvas.store.states_of("S0001") == ["active"]


def test_rows_more_than_a_block_apart_run_in_file_order(canvas, run, tmp_path):
    """The runner weighs a block (1000 rows) before writing; rows further apart run in
    order, each line true when reported, the enrollment ending as the later row asks."""
    course = canvas.store.add_course("C3", "C3")
    canvas.store.enroll(canvas.store.add_user("S0001"), course)
    filler = [canvas.store.add_user(f"F{n:04d}") for n in range(1000)]
    for user in filler:
        canvas.store.enroll(user, course)
    csv = write_csv(tmp_path / "far.csv", "course_id,sis_user_id,state",
                    [("sis_course_id:C3", "S0001", "inactive")] + [(course.id, u.sis_user_id, "active") for u in filler]
                    + [(course.id, "S0001", "active")])
    r = run(set_user_state, "--csv", csv)
    assert r.code == 0, r.err
    assert "deactivated: active -> inactive" in r.out and "reactivated: inactive -> active" in r.out
    assert canvas.store.states_of("S0001") == ["active"]


def test_a_repeated_row_is_one_change_same_as_the_first(canvas, course, run, tmp_path):
    canvas.store.enroll(canvas.store.add_user("S101"), course)
    csv = write_csv(tmp_path / "d.csv", "course_id,sis_user_id,state",
                    [(course.id, "S101", "inactive"), (course.id, "S101", "inactive")])
    r = run(set_user_state, "--csv", csv, "--dry-run")
    assert r.code == 0 and "1 change: --max-changes 1 allows them" in r.err, r.err
    r = run(set_user_state, "--csv", csv, "--max-changes", "1")
    assert r.code == 0, r.err
    first, second = sorted(r.out.strip().splitlines(), key=lambda text: "same as" in text)
    assert "deactivated: active -> inactive" in first
    assert second.endswith("inactive: same as line 2") and "nothing to do" not in r.out
    assert len(canvas.writes()) == 1 and canvas.store.states_of("S101") == ["inactive"]


# --- 5. Excel's marks, European and small-e ------------------------------------------------


@pytest.mark.parametrize("cell", ["1,23457E+11", "1.23457e+11"])
def test_excel_marks_with_a_decimal_comma_or_a_small_e_refuse_the_file(canvas, course, run, tmp_path, cell):
    path = tmp_path / "x.csv"
    path.write_text(f"course_id;sis_user_id;state\n{course.id};S1;inactive\n{course.id};{cell};inactive\n")
    r = run(set_user_state, "--csv", str(path))
    assert r.code == 2 and "line 3" in r.err and "scientific notation" in r.err
    assert canvas.requests == []


def test_sis_ids_that_only_look_numeric_still_run(canvas, course, run, tmp_path):
    for sis in ("12E4", "00123", "000140"):
        canvas.store.enroll(canvas.store.add_user(sis), course)
    path = tmp_path / "ok.csv"
    path.write_text("course_id;sis_user_id;state\n" + "".join(f"{course.id};{s};inactive\n"
                                                             for s in ("12E4", "00123", "000140")))
    r = run(set_user_state, "--csv", str(path))
    assert r.code == 0 and "deactivated 3" in r.err, r.err


# --- 6. course URLs ---------------------------------------------------------------------


def test_a_course_url_in_other_scheme_or_capitals_is_the_same_canvas(canvas, course, run):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    other = canvas.url.replace("http://", "HTTPS://")
    r = run(set_user_state, f"{other}/courses/{course.id}/users", "S1", "inactive")
    assert r.code == 0 and canvas.store.states_of("S1") == ["inactive"], r.err


def test_a_course_url_with_user_info_names_the_real_host(canvas, course, run):
    netloc = canvas.url.split("://")[1]
    r = run(set_user_state, f"http://{netloc}@evil.com/courses/{course.id}", "S1", "inactive")
    assert r.code == 2 and "is on evil.com, not on the configured Canvas" in r.err, r.err
    assert canvas.requests == []


# --- 4 and 7. the stop line: no dry-run count when stopped; negative option values ---------


def test_a_stopped_dry_run_gives_no_change_count(canvas, course, run, tmp_path):
    people = [canvas.store.add_user(f"R{n:02d}") for n in range(30)]
    for user in people:
        canvas.store.enroll(user, course)
    csv = write_csv(tmp_path / "r.csv", "course_id,sis_user_id,state",
                    [(course.id, u.sis_user_id, "inactive") for u in people])
    revoke(canvas)
    r = run(set_user_state, "--csv", csv, "--dry-run")
    assert r.code == EXIT_STOPPED
    line = stop_line(r.err)
    assert "(dry run: nothing changed)" in line and "allows them" not in line


def test_a_negative_max_changes_is_no_sis_id(canvas, course, run, tmp_path):
    r = run(set_user_state, "--csv", "x.csv", "--max-changes", "-1")
    assert r.code == 2 and "expected a whole number, not '-1'" in r.err and "SIS ID" not in r.err

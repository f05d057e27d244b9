"""Answers that are not Canvas's (a proxy's block page, a sign-in page, a body that is not
JSON) leave a write's outcome unknown, never failed; a few in a row stop the run naming what
answered, the rerun finishes the same job and --undo restores it whole
(canvas_errors.foreign_answer, canvas_jobs/guard.py)."""

import re

import pytest

import set_user_state
from conftest import TOKEN, audit_records, changes_counted, run_script, write_config
from proxy import FrontProxy, block_page, sign_in_page
from standin import Fault

EXIT_STOPPED = 75


@pytest.fixture
def front(canvas):
    proxy = FrontProxy(canvas.url).start()
    yield proxy
    proxy.stop()


def students(canvas, course, tmp_path, n):
    people = [canvas.store.add_user(f"F{i:03d}") for i in range(n)]
    for user in people:
        canvas.store.enroll(user, course)
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,state\n" +
                   "".join(f"{course.id},{u.sis_user_id},inactive\n" for u in people))
    return str(csv), str(tmp_path / "audit.jsonl")


def states(canvas, course):
    return [e.workflow_state for e in canvas.store.enrollments.values() if e.course_id == course.id]


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def counted(line):
    """(changed, unknown) as a stop line counts them."""
    changed = changes_counted(line)
    unknown = re.search(r"(\d+) unknown", line)
    return changed, int(unknown[1]) if unknown else 0


def jobs(log):
    return {r["job"] for r in audit_records(log) if r["event"] == "start" and r["operation"] != "undo"}


def test_a_proxy_that_passes_writes_on_and_answers_with_its_block_page(canvas, course, front, run, tmp_path):
    csv, log = students(canvas, course, tmp_path, 300)
    front.answer = lambda method, path, writes: (True, *block_page()) if method != "GET" else None
    config = write_config(tmp_path / "via-proxy.json", front.url)
    r = run(set_user_state, "--csv", csv, "--log", log, "--config", config, use_config=False)
    assert r.code == EXIT_STOPPED
    line = one_line(r.err)
    assert "stopped: not Canvas's answers (3 " in line and "in a row); the last: " in line
    assert "a proxy's page from webfilter.example.edu" in line and "run the same command again" in line
    assert "failed 0" in line
    made = states(canvas, course).count("inactive")
    assert 3 <= made < 300 and len(canvas.writes()) == front.writes  # every write reached Canvas
    results = [e for e in audit_records(log) if e["event"] == "result"]
    assert not [e for e in results if e["action"] == "failed"]  # applied writes are never "failed"
    front.answer = lambda method, path, writes: None  # the proxy fixed
    r = run(set_user_state, "--csv", csv, "--log", log, "--config", config, use_config=False)
    assert r.code == 0 and set(states(canvas, course)) == {"inactive"}, r.err
    assert len(jobs(log)) == 1  # the rerun continued the same job
    r = run(set_user_state, "--undo", log, "--config", config, use_config=False)
    assert r.code == 0 and states(canvas, course) == ["active"] * 300, r.err


def test_a_sign_in_page_from_write_100_of_600_onward(canvas, course, front, tmp_path):
    csv, log = students(canvas, course, tmp_path, 600)
    front.answer = lambda method, path, writes: (False, *sign_in_page()) if writes >= 100 else None
    env = {"CANVAS_URL": front.url, "CANVAS_TOKEN": TOKEN}
    r = run_script("set_user_state.py", "--csv", csv, "--log", log, env=env)
    assert r.code == EXIT_STOPPED
    line = one_line(r.err)
    assert "stopped: not Canvas's answers" in line and "a sign-in page (Sign in - Example University)" in line
    assert "failed 0" in line
    assert states(canvas, course).count("inactive") == 100 and len(canvas.writes()) == 100
    changed, unknown = counted(line)
    assert changed == len(r.out.splitlines()) and changed <= 100 <= changed + unknown
    assert front.own < 40  # stopped after the writes in flight (at most 16) and their looks, not 500 rows
    front.answer = lambda method, path, writes: None
    r = run_script("set_user_state.py", "--csv", csv, "--log", log, env=env)
    assert r.code == 0 and set(states(canvas, course)) == {"inactive"}, r.err
    assert len(jobs(log)) == 1
    r = run_script("set_user_state.py", "--undo", log, env=env)
    assert r.code == 0 and states(canvas, course) == ["active"] * 600, r.err


@pytest.mark.parametrize("fault,what", [
    (Fault("after", method="DELETE", status=200, body="<html><head><title>Gateway</title></head></html>"),
     "a page that is not Canvas's (HTML, Gateway)"),
    (Fault("after", method="DELETE", status=200, body="OK"), "an answer that is not JSON"),
    (Fault("truncated", method="DELETE"), "broke"),
])
def test_one_foreign_answer_to_a_write_is_settled_by_looking(canvas, course, run, tmp_path, fault, what):
    """The write was made, its answer was not Canvas's: the look afterwards finds it done."""
    csv, log = students(canvas, course, tmp_path, 5)
    canvas.fault(fault)
    r = run(set_user_state, "--csv", csv, "--log", log)
    assert r.code == 0 and "summary: deactivated 5, unchanged 0, failed 0" in r.err, r.err
    assert len(canvas.writes()) == 5  # not written again: the look found it made
    assert set(states(canvas, course)) == {"inactive"}


def test_a_single_write_answered_by_a_sign_in_page_is_left_for_the_rerun(canvas, course, run, tmp_path):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    body = sign_in_page()[2]
    canvas.fault(Fault("after", method="DELETE", status=200, body=body, times=1,
                       then=lambda: canvas.fault(Fault("status", status=200, body=body, times=99))))
    log = str(tmp_path / "audit.jsonl")
    r = run(set_user_state, course.id, "S1", "inactive", "--log", log, "--retries", "0")
    assert r.code == 1 and one_line(r.err) and "a sign-in page" in r.err
    assert "whether Canvas made the change is unknown" in r.err
    assert not [e for e in audit_records(log) if e["event"] == "result"]  # open: settled later
    canvas.faults.clear()
    r = run(set_user_state, "--undo", log)
    assert r.code == 0 and states(canvas, course) == ["active"], r.err

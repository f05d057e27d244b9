"""A write that keeps failing while Canvas answers the requests around it is that row's
failure, wherever the row stands in the file; only several in a row while nothing else works
stop the run as an outage (canvas_jobs/guard.py)."""

import pytest

import set_user_state
from standin import server_error


@pytest.fixture
def rows(canvas, course, tmp_path):
    enrollments = [canvas.store.enroll(canvas.store.add_user(f"R{n:02d}"), course) for n in range(20)]
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,state\n" + "".join(f"{course.id},R{n:02d},inactive\n" for n in range(20)))
    return enrollments, str(csv)


@pytest.mark.parametrize("position", [0, 9, 19])
def test_one_write_failing_with_500_is_that_rows_failure(canvas, course, run, rows, position):
    enrollments, csv = rows
    bad = enrollments[position]
    canvas.fault(server_error(method="DELETE", path=f"/enrollments/{bad.id}$", times=99))
    r = run(set_user_state, "--csv", csv)
    assert r.code == 1, r.err
    assert "summary: deactivated 19, unchanged 0, failed 1" in r.err and "stopped" not in r.err
    assert f"line {position + 2}: User R{position:02d} (R{position:02d}): Canvas failed with HTTP 500" in r.err
    assert canvas.store.states_of(f"R{position:02d}") == ["active"]
    assert len(canvas.calls("DELETE", f"/enrollments/{bad.id}$")) == 3  # looked before each try


def test_every_write_failing_while_reads_work_is_an_outage(canvas, course, run, rows):
    _enrollments, csv = rows
    canvas.fault(server_error(method="DELETE", times=10 ** 6))
    r = run(set_user_state, "--csv", csv)
    assert r.code == 75 and r.err.count("\n") == 1
    assert "stopped: Canvas is unavailable (5 writes in a row failed" in r.err and "failed 0" in r.err

"""The fault matrix: hostile input and hostile servers. Nothing leaks, nothing
reaches the wrong person, nothing ends in a traceback."""

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import enroll_user
import set_user_state
from conftest import ROOT, TOKEN, write_config
from standin import Fault

# Any text a SIS ID could hold, biased towards the characters that break URLs.
PIECES = st.sampled_from([*" /\\?#&%+.:;=\"'\t\n@~!$*()[]{}|<>^`,",
                         "..", "%2F", "é", "😀", "sis_user_id:", "hex:", "\x00"])
SIS_IDS = st.lists(st.one_of(PIECES, st.characters(exclude_categories=["Cs"])),
                   min_size=1, max_size=8).map("".join)


def decoys(sis):
    """IDs that a sloppy lookup would confuse with sis."""
    return {d for d in (sis.upper(), sis.lower(), sis.strip(), sis + " ", " " + sis, sis[:-1] or "x",
                        sis + "0", "sis_user_id:" + sis) if d != sis and d}


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sis=SIS_IDS)
def test_any_sis_id_reaches_exactly_its_user(server, tmp_path, capsys, sis):
    assume(sis != "--")  # argparse (3.11) drops a literal "--" argument; see the CSV test below
    server.reset()
    store = server.store
    store.tokens[TOKEN] = "admin"
    course = store.add_course("C", "C1")
    others = [store.enroll(store.add_user(d), course) for d in decoys(sis)]
    target = store.enroll(store.add_user(sis), course)
    config = write_config(tmp_path / "c.json", server.url)
    # "--" ends the options, as for any command: a SIS ID may start with "-"
    code = set_user_state.main(["--config", config, "--", str(course.id), sis, "inactive"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert target.workflow_state == "inactive"
    assert all(o.workflow_state == "active" for o in others)
    store.add_user(sis + "\u00a7")
    code = enroll_user.main(["--config", config, "--", str(course.id), sis, "ta"])
    assert code == 0 and [e.type for e in store.enrollments_of(sis)] == ["StudentEnrollment", "TaEnrollment"]
    assert all(len(store.enrollments_of(d)) == 1 for d in decoys(sis))
    assert TOKEN not in out + err
    for call in server.requests:  # every request stayed on the course's own paths
        assert call["path"].startswith((f"/api/v1/courses/{course.id}/enrollments", "/api/v1/users/",
                                        f"/api/v1/courses/{course.id}/sections")) \
            or call["path"] == f"/api/v1/courses/{course.id}"  # the course and its sections: names


def test_sis_id_that_is_only_dashes_works_in_a_csv(canvas, course, run, tmp_path):
    canvas.store.enroll(canvas.store.add_user("--"), course)
    canvas.store.enroll(canvas.store.add_user("-"), course)
    path = tmp_path / "dash.csv"
    path.write_text(f"course_id,sis_user_id,state\n{course.id},--,inactive\n")
    r = run(set_user_state, "--csv", path)
    assert r.code == 0 and canvas.store.states_of("--") == ["inactive"]
    assert canvas.store.states_of("-") == ["active"]


@pytest.mark.parametrize("status,body,words", [
    (400, {"message": "Invalid role"}, "Canvas refused the request: Invalid role"),
    (400, {"errors": {"user_id": [{"attribute": "user_id", "type": "invalid", "message": "is invalid"}]}},
     "user_id: is invalid"),
    (404, {"errors": [{"message": "The specified resource does not exist."}]}, "no user with SIS ID"),
    (200, {"id": 1}, "not an enrollment"),
    (200, "<html>sign in</html>", "whether Canvas made the change is unknown"),
    (418, "", "unexpected answer from Canvas: HTTP 418"),
    (400, {"errors": [{"message": {"nested": ["odd"]}}]}, "nested"),
    (400, ["not", "an", "object"], "Canvas refused the request: HTTP 400"),
    (500, {"errors": "a string", "error_report_id": {"x": 1}}, "error report"),
    (422, "x" * 5000, "Canvas refused the request: xxx"),
])
def test_write_answers(canvas, course, run, status, body, words):
    canvas.store.add_user("S1")
    canvas.fault(Fault("status", method="POST", status=status, body=body, times=9))
    r = run(enroll_user, course.id, "S1", "student")
    assert r.code == 1 and words in r.err and r.err.count("\n") == 1 and "Traceback" not in r.err


def test_hung_write_is_bounded_and_never_doubled(canvas, course, run):
    canvas.store.add_user("S1")
    canvas.fault(Fault("delay", method="POST", seconds=1.5))
    r = run(enroll_user, course.id, "S1", "student", "--timeout", "0.5")
    assert r.code == 0 and len(canvas.store.enrollments_of("S1")) == 1


def test_long_csv_streams_in_flat_memory(canvas, tmp_path):
    """200,000 rows for an unknown course: every row fails, memory stays flat."""
    path = tmp_path / "long.csv"
    with open(path, "w") as f:
        f.write("course_id,sis_user_id,role\n")
        for n in range(200_000):
            f.write(f"424242,S{n:06d},student\n")
    config = write_config(tmp_path / "c.json", canvas.url)
    proc = subprocess.run(
        [sys.executable, "-c",
         "import resource, sys, enroll_user\n"
         "code = enroll_user.main(sys.argv[1:])\n"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
         "raise SystemExit(code)",
         "--csv", str(path), "--config", config, "--log", str(tmp_path / "audit.jsonl")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)  # cwd: import enroll_user; the log stays out
    assert proc.returncode == 1
    peak_kib = int(proc.stderr.splitlines()[-1])
    assert "failed 200000" in proc.stderr and "and 199950 more" in proc.stderr
    assert peak_kib < 120_000, peak_kib  # the file alone is 5 MB; 200k results would be far more
    assert len(canvas.requests) <= 200 * 2  # one failed lookup per block of 1000 rows

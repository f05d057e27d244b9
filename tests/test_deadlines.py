"""--timeout bounds the whole answer, not each socket read: an answer trickling in a byte
at a time ends like a silent Canvas (canvas_http._read_whole). The subprocess timeouts
here only guard against a hang; nothing asserts seconds."""

import set_user_state
from conftest import TOKEN, run_script
from standin import Fault


def test_a_read_that_trickles_ends_with_the_timeout_line(canvas, course):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    canvas.fault(Fault("trickle", method="GET", seconds=0.5, times=9))
    r = run_script("set_user_state.py", course.id, "S1", "inactive", "--timeout", "2", "--retries", "0",
                   env={"CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN}, timeout=60)
    assert r.code == 1 and r.err.count("\n") == 1 and "Traceback" not in r.err
    assert "gave no answer in 1 try" in r.err and "each allowed 2 s" in r.err and "--timeout" in r.err
    assert len(canvas.requests) == 1 and canvas.store.states_of("S1") == ["active"]


def test_writes_that_trickle_are_settled_by_looking(canvas, course, run, tmp_path):
    """The write was made and its answer never came whole: the look afterwards finds it made."""
    for n in range(3):
        canvas.store.enroll(canvas.store.add_user(f"S{n}"), course)
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,state\n" + "".join(f"{course.id},S{n},inactive\n" for n in range(3)))
    canvas.fault(Fault("trickle", method="DELETE", seconds=0.5, times=3))
    r = run(set_user_state, "--csv", csv, "--timeout", "2", "--log", tmp_path / "audit.jsonl")
    assert r.code == 0 and "summary: deactivated 3, unchanged 0, failed 0" in r.err, r.err
    assert len(canvas.writes()) == 3 and canvas.store.states_of("S0") == ["inactive"]

"""A batch's output made for review: changes and failures one line each, in file order with
the line, whatever order Canvas answers in; unchanged rows counted; changes split by kind."""

import set_user_state
from conftest import audit_records
from standin import Fault


def test_changes_come_in_file_order_with_names_though_canvas_answers_out_of_order(canvas, course, run,
                                                                                 tmp_path):
    store = canvas.store
    names = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Ken Thompson"]
    rows = []
    for n, name in enumerate(names):
        e = store.enroll(store.add_user(f"P{n}", name), course, state="inactive" if n == 3 else "active")
        rows.append(e)
    store.enroll(store.add_user("Q0", "Quiet One"), course, state="inactive")
    # the first row's write is answered last: the others finish before it
    canvas.fault(Fault("delay", method="DELETE", path=rf".*/enrollments/{rows[0].id}$", seconds=1.0))
    csv = tmp_path / "s.csv"
    lines = [f"{course.id},P{n},{'active' if n == 3 else 'inactive'}" for n in range(len(names))]
    csv.write_text("course_id,sis_user_id,state\n" + "\n".join([*lines[:2], f"{course.id},Q0,inactive",
                                                                 *lines[2:], f"{course.id},NOBODY,inactive"]) + "\n")
    log = tmp_path / "audit.jsonl"
    r = run(set_user_state, "--csv", csv, "--log", log)
    assert r.code == 1, r.err
    results = [rec["seq"] for rec in audit_records(log) if rec["event"] == "result"]
    intents = {rec["seq"]: rec["sis_user_id"] for rec in audit_records(log) if rec["event"] == "intent"}
    assert intents[results[-1]] == "P0"  # Canvas did answer out of order
    out = r.out.splitlines()
    assert [line.split(":")[0] for line in out] == ["line 2", "line 3", "line 5", "line 6", "line 7", "line 8",
                                                    "line 9"]  # line 4 (Q0, already inactive): counted
    assert out[0].startswith("line 2: Ada Lovelace (P0) in course") and out[0].endswith("active -> inactive")
    assert out[3].startswith("line 6: Edsger Dijkstra (P3)") and out[3].endswith("reactivated: inactive -> active")
    assert out[6].startswith("line 9: NOBODY in course") and "failed: Canvas has no user" in out[6]
    assert "Quiet One" not in r.out
    assert "summary: deactivated 5, reactivated 1, unchanged 1 (1 not listed: -v lists them), failed 1" in r.err
    assert "line 9: NOBODY: Canvas has no user" in r.err


def test_verbose_and_json_list_unchanged_rows(canvas, course, run, tmp_path):
    store = canvas.store
    store.enroll(store.add_user("Q0", "Quiet One"), course, state="inactive")
    csv = tmp_path / "s.csv"
    csv.write_text(f"course_id,sis_user_id,state\n{course.id},Q0,inactive\n")
    r = run(set_user_state, "--csv", csv, "-v")
    assert r.code == 0 and "line 2: Quiet One (Q0) in course" in r.out and "is already inactive" in r.out
    assert "not listed" not in r.err
    r = run(set_user_state, "--csv", csv, "--json")
    [obj] = r.json()
    assert obj["action"] == "unchanged" and obj["user_name"] == "Quiet One" and obj["row"] == 2

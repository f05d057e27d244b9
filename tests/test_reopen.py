"""A POST reuses a concluded or deleted row (Course#enroll_user): planned, printed and
logged as a reopening, and undone by putting the row back as it was, never deleting a
concluded enrollment."""

import enroll_user
from conftest import TOKEN, audit_records, audit_writes, run_script
from standin import Fault


def ended_lookups(canvas):
    return [c for c in canvas.calls("GET", "enrollments$") if "deleted" in c["query"].get("state[]", [])]


def test_concluded_enrollment_is_reopened_and_undo_concludes_it_again(canvas, course, run, tmp_path):
    e = canvas.store.enroll(canvas.store.add_user("S1"), course, state="completed")
    r = run(enroll_user, course.id, "S1", "student", "--section", course.default_section_id, "--dry-run", "--json")
    [obj] = r.json()
    assert r.code == 0 and (obj["action"], obj["enrollment_id"], obj["before"], obj["after"]) == \
        ("reopened", e.id, "completed", "active")
    assert canvas.writes() == []
    log = tmp_path / "audit.jsonl"
    r = run(enroll_user, course.id, "S1", "student", "--log", log)
    assert r.code == 0 and f"reopened completed enrollment {e.id}" in r.out and "completed -> active" in r.out
    assert canvas.store.states_of("S1") == ["active"] and len(canvas.store.enrollments) == 1
    [write] = audit_writes(log)
    assert (write["action"], write["before"], write["enrollment_id"]) == ("reopened", "completed", e.id)
    r = run(enroll_user, "--undo", log)
    assert r.code == 0, r.err
    assert canvas.store.states_of("S1") == ["completed"]  # concluded again, not deleted
    assert canvas.writes()[-1]["query"] == {"task": "conclude"}


def test_deleted_enrollment_is_reopened_and_undo_deletes_it(canvas, course, run, tmp_path):
    e = canvas.store.enroll(canvas.store.add_user("S1"), course, state="deleted")
    log = tmp_path / "audit.jsonl"
    r = run(enroll_user, course.id, "S1", "student", "--log", log, "--json")
    assert r.code == 0 and r.json()[0]["action"] == "reopened" and r.json()[0]["before"] == "deleted"
    r = run(enroll_user, "--undo", log)
    assert r.code == 0 and canvas.store.enrollments[e.id].workflow_state == "deleted"
    assert canvas.writes()[-1]["query"] == {"task": "delete"}


def test_a_row_in_another_section_is_not_reopened(canvas, course, run):
    lab = next(s for s in canvas.store.sections.values() if s.sis_section_id == "PHYS2-LAB")
    canvas.store.enroll(canvas.store.add_user("S1"), course, state="completed", section=lab)
    r = run(enroll_user, course.id, "S1", "student", "--json")
    assert r.code == 0 and r.json()[0]["action"] == "created"
    assert canvas.store.states_of("S1") == ["completed", "active"]


def test_batch_looks_up_ended_rows_with_the_inactive_ones_and_undo_puts_each_back(canvas, course, run, tmp_path):
    store = canvas.store
    done = [store.enroll(store.add_user(f"C{n}"), course, state="completed") for n in range(5)]
    gone = [store.enroll(store.add_user(f"D{n}"), course, state="deleted") for n in range(5)]
    for n in range(5):
        store.add_user(f"N{n}")
    store.enroll(store.add_user("A0"), course)  # already active: no POST
    ids = [f"{p}{n}" for p in "CDN" for n in range(5)] + ["A0"]
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,role\n" + "".join(f"{course.id},{i},student\n" for i in ids))
    log = tmp_path / "audit.jsonl"
    r = run(enroll_user, "--csv", csv, "--log", log)
    assert r.code == 0 and "created 5, reopened 10, unchanged 1 (1 not listed: -v lists them), failed 0" in r.err
    # one lookup of the 16 for the active states, one for inactive and ended; after the writes,
    # one read of the 5 new enrollments, whose POST answers carry no user, to name them
    assert len(canvas.calls("GET", "enrollments$")) == 3 and len(ended_lookups(canvas)) == 1
    assert all(f"User N{n} (N{n})" in r.out for n in range(5))
    assert all(e.workflow_state == "active" for e in done + gone)
    r = run(enroll_user, "--undo", log)
    assert r.code == 0, r.err
    assert [e.workflow_state for e in done] == ["completed"] * 5
    assert [e.workflow_state for e in gone] == ["deleted"] * 5
    assert all(store.states_of(f"N{n}") == ["deleted"] for n in range(5))
    assert store.states_of("A0") == ["active"]


def test_a_lost_answer_on_a_reopening_is_settled_as_a_reopening(canvas, course, run, tmp_path):
    e = canvas.store.enroll(canvas.store.add_user("S1"), course, state="completed")
    canvas.fault(Fault("after", method="POST", status=502))
    log = tmp_path / "audit.jsonl"
    r = run(enroll_user, course.id, "S1", "student", "--log", log)
    assert r.code == 0 and "reopened" in r.out and len(canvas.writes()) == 1
    results = [x for x in audit_records(log) if x["event"] == "result"]
    assert results[-1]["action"] == "reopened" and results[-1]["before"] == "completed"
    run(enroll_user, "--undo", log)
    assert canvas.store.enrollments[e.id].workflow_state == "completed"


def test_a_row_reopened_in_fact_is_logged_so_though_planned_as_new(canvas, course, run, tmp_path):
    """Without --section Canvas reuses the default section's row; when ended rows sit in
    two sections the plan cannot tell which, so Canvas's answer decides what is logged."""
    lab = next(s for s in canvas.store.sections.values() if s.sis_section_id == "PHYS2-LAB")
    user = canvas.store.add_user("S1")
    canvas.store.enroll(user, course, state="completed", section=lab)
    mine = canvas.store.enroll(user, course, state="deleted")
    log = tmp_path / "audit.jsonl"
    r = run(enroll_user, course.id, "S1", "student", "--dry-run")
    assert "would enroll" in r.out and "give --section to be sure" in r.out
    r = run(enroll_user, course.id, "S1", "student", "--log", log, "--json")
    assert r.json()[0]["action"] == "reopened" and r.json()[0]["enrollment_id"] == mine.id
    run(enroll_user, "--undo", log)
    assert canvas.store.states_of("S1") == ["completed", "deleted"]


def test_in_a_course_of_one_section_the_reopening_is_certain(canvas, run):
    store = canvas.store
    course = store.add_course("Solo")  # only its default section
    store.enroll(store.add_user("S1"), course, state="completed")
    r = run(enroll_user, course.id, "S1", "student", "--dry-run")
    assert "would reopen completed" in r.out and "default section" not in r.out
    r = run(enroll_user, course.id, "S1", "student")
    assert r.code == 0 and "reopened" in r.out and canvas.store.states_of("S1") == ["active"]


def test_in_a_course_of_several_sections_the_plan_says_what_it_cannot_know(canvas, course, run):
    canvas.store.enroll(canvas.store.add_user("S1"), course, state="completed")
    r = run(enroll_user, course.id, "S1", "student", "--dry-run")
    assert "would enroll" in r.out and "instead if it is in the course's default section" in r.out
    r = run(enroll_user, course.id, "S1", "student", "--section", course.default_section_id, "--dry-run")
    assert "would reopen completed" in r.out and "default section" not in r.out


def test_custom_role_reopening_and_undo_as_processes(canvas, course, tmp_path):
    """As an admin runs it: a concluded Grader enrollment reopened by name, then undone."""
    grader = canvas.store.add_role("Grader", "TaEnrollment")
    e = canvas.store.enroll(canvas.store.add_user("S1"), course, role=grader, state="completed",
                            sis_import_id=12)
    env = {"CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN}
    log = tmp_path / "audit.jsonl"
    r = run_script("enroll_user.py", course.id, "S1", "GRADER", "--section", course.default_section_id,
                   "--log", log, env=env)
    assert (r.code, r.err) == (0, "") and f"reopened completed enrollment {e.id} (Grader" in r.out
    assert "next SIS import may put" in r.out
    assert canvas.writes()[0]["form"]["enrollment[role_id]"] == str(grader.id)
    r = run_script("enroll_user.py", "--undo", log, env=env)
    assert r.code == 0 and canvas.store.enrollments[e.id].workflow_state == "completed"

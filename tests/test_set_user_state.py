"""set_user_state.py against the stand-in Canvas: rules, economy, output, final state."""

import pytest

import set_user_state
from standin import Fault


def test_deactivates_active_user_in_two_lookups_and_one_write(canvas, course, run):
    user = canvas.store.add_user("S1")
    e = canvas.store.enroll(user, course)
    r = run(set_user_state, "sis_course_id:PHYS2", "S1", "inactive")
    assert (r.code, r.err) == (0, "")
    assert f"enrollment {e.id}" in r.out and "active -> inactive" in r.out
    assert canvas.store.states_of("S1") == ["inactive"]
    assert len(canvas.calls("GET", "/enrollments")) == 2 and len(canvas.writes()) == 1
    assert len(canvas.calls("GET")) == 4  # + the course and its sections, which the line names
    write = canvas.writes()[0]
    assert write["method"] == "DELETE" and write["query"] == {"task": "deactivate"}
    assert write["path"].endswith(f"/enrollments/{e.id}")


def test_lookups_ask_active_and_inactive_states_separately(canvas, course, run):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    run(set_user_state, course.id, "S1", "inactive")
    first, second = canvas.calls("GET", "/enrollments")
    assert first["query"]["state[]"] == ["active", "invited", "creation_pending"]
    assert second["query"]["state[]"] == ["inactive"]
    assert first["query"]["sis_user_id[]"] == ["S1"]


def test_reactivates_inactive_user_with_put(canvas, course, run):
    e = canvas.store.enroll(canvas.store.add_user("S1"), course, state="inactive")
    r = run(set_user_state, course.id, "S1", "active", "--json")
    assert r.code == 0 and r.err == ""
    [obj] = r.json()
    assert obj == {"course_id": str(course.id), "sis_user_id": "S1", "action": "reactivated",
                   "enrollment_id": e.id, "role": "StudentEnrollment",
                   "section_id": course.default_section_id, "before": "inactive",
                   "after": "active", "dry_run": False, "user_name": "User S1",
                   "course_name": course.name, "section_name": course.name}
    assert canvas.store.states_of("S1") == ["active"]
    [write] = canvas.writes()
    assert write["method"] == "PUT" and write["path"].endswith(f"/{e.id}/reactivate")
    assert len(canvas.requests) == 5  # two lookups, the course and its sections (names), the write


@pytest.mark.parametrize("state,target", [("inactive", "inactive"), ("active", "active"),
                                          ("invited", "active")])
def test_already_in_wanted_state_changes_nothing(canvas, course, run, state, target):
    canvas.store.enroll(canvas.store.add_user("S1"), course, state=state)
    r = run(set_user_state, course.id, "S1", target)
    assert r.code == 0 and "nothing to do" in r.out and r.err == ""
    assert canvas.writes() == [] and canvas.store.states_of("S1") == [state]


def test_invited_enrollment_can_be_deactivated(canvas, course, run):
    canvas.store.enroll(canvas.store.add_user("S1"), course, state="invited")
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 0 and "invited -> inactive" in r.out
    assert canvas.store.states_of("S1") == ["inactive"]


def test_every_enrollment_of_the_user_is_changed(canvas, course, run):
    store = canvas.store
    user = store.add_user("S1")
    lab = next(s for s in store.sections.values() if s.sis_section_id == "PHYS2-LAB")
    store.enroll(user, course)
    store.enroll(user, course, section=lab)
    store.enroll(user, course, type="TaEnrollment", state="inactive")
    r = run(set_user_state, course.id, "S1", "inactive", "--json")
    assert r.code == 0
    assert sorted(o["action"] for o in r.json()) == ["deactivated", "deactivated", "unchanged"]
    assert store.states_of("S1") == ["inactive"] * 3


def test_role_and_section_narrow_the_change(canvas, course, run):
    store = canvas.store
    user = store.add_user("S1")
    lab = next(s for s in store.sections.values() if s.sis_section_id == "PHYS2-LAB")
    store.enroll(user, course)
    store.enroll(user, course, section=lab)
    store.enroll(user, course, type="TaEnrollment")
    r = run(set_user_state, course.id, "S1", "inactive", "--role", "student",
            "--section", "sis_section_id:PHYS2-LAB")
    assert r.code == 0
    assert store.states_of("S1") == ["active", "inactive", "active"]
    r = run(set_user_state, course.id, "S1", "inactive", "--role", "TaEnrollment")
    assert store.states_of("S1") == ["active", "inactive", "inactive"]
    r = run(set_user_state, course.id, "S1", "inactive", "--role", "observer")
    assert r.code == 1 and "matching --role/--section" in r.err and r.out == ""


def test_dry_run_changes_nothing(canvas, course, run):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    r = run(set_user_state, course.id, "S1", "inactive", "--dry-run", "--json")
    assert r.code == 0 and r.json()[0]["dry_run"] is True
    assert r.json()[0]["action"] == "deactivated" and r.json()[0]["after"] == "inactive"
    assert canvas.writes() == [] and canvas.store.states_of("S1") == ["active"]


def test_concluded_enrollment_is_explained(canvas, course, run):
    canvas.store.enroll(canvas.store.add_user("S1"), course, state="completed")
    r = run(set_user_state, course.id, "S1", "active")
    assert r.code == 1 and "completed" in r.err and "enroll" in r.err
    assert canvas.writes() == [] and r.err.count("\n") == 1


def test_unknown_user_and_not_enrolled_user_are_told_apart(canvas, course, run):
    canvas.store.add_user("S2")
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 1 and "no user with SIS ID 'S1'" in r.err
    r = run(set_user_state, course.id, "S2", "inactive")
    assert r.code == 1 and "S2 is not enrolled" in r.err


def test_sis_ids_are_case_sensitive_and_rows_are_checked(canvas, course, run):
    canvas.store.enroll(canvas.store.add_user("abc1"), course)
    canvas.store.enroll(canvas.store.add_user("ABC1"), course)
    r = run(set_user_state, course.id, "ABC1", "inactive")
    assert r.code == 0
    assert canvas.store.states_of("abc1") == ["active"]
    assert canvas.store.states_of("ABC1") == ["inactive"]


def test_loose_server_matches_never_reach_another_user(canvas, course, run, tmp_path):
    """A server whose SIS search is loose (case-insensitive substring) still
    cannot make the scripts touch anyone but the exact SIS ID."""
    canvas.loose_search = True
    store = canvas.store
    others = [store.enroll(store.add_user(s), course) for s in ("ABC", "abc1", "xabc")]
    store.enroll(store.add_user("abc"), course)
    r = run(set_user_state, course.id, "abc", "inactive", "--json")
    assert r.code == 0 and [o["sis_user_id"] for o in r.json()] == ["abc"]
    assert store.states_of("abc") == ["inactive"] and all(o.workflow_state == "active" for o in others)
    r = run(set_user_state, "--csv", write_csv(tmp_path, course, ["abc", "ABC"]), "--json")
    assert r.code == 0 and sorted(o["sis_user_id"] for o in r.json()) == ["ABC", "abc"]
    assert [o.workflow_state for o in others] == ["inactive", "active", "active"]


def write_csv(tmp_path, course, ids):
    path = tmp_path / "in.csv"
    path.write_text("course_id,sis_user_id,state\n" + "".join(f"{course.id},{i},inactive\n" for i in ids))
    return path


def test_unknown_course_is_one_line(canvas, run):
    r = run(set_user_state, "sis_course_id:NOPE", "S1", "inactive")
    assert r.code == 1
    assert r.err == "set_user_state.py: error: course sis_course_id:NOPE not found: check the course id\n"


def test_unknown_state_is_usage_error_before_any_request(canvas, run):
    r = run(set_user_state, "1", "S1", "paused")
    assert r.code == 2 and "invalid choice" in r.err and canvas.requests == []
    assert r.err.count("\n") == 1


def test_lost_answer_on_deactivate_is_checked_not_repeated(canvas, course, run):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    canvas.fault(Fault("after", method="DELETE", status=502))
    r = run(set_user_state, course.id, "S1", "inactive", "--retries", "1")
    assert r.code == 0 and "active -> inactive" in r.out
    assert len(canvas.writes()) == 1 and canvas.store.states_of("S1") == ["inactive"]


def test_failed_write_reports_json_and_exit_1(canvas, course, run):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    canvas.store.tokens["tok-SECRET-7d1e0c9b"] = "admin"
    canvas.fault(Fault("status", method="DELETE", status=403,
                       body={"status": "unauthorized",
                             "errors": [{"message": "user not authorized to perform that action"}]}))
    r = run(set_user_state, course.id, "S1", "inactive", "--json")
    assert r.code == 1 and "not authorized" in r.err
    [obj] = r.json()
    assert obj["action"] == "failed" and obj["before"] == obj["after"] == "active"
    assert canvas.store.states_of("S1") == ["active"]

"""enroll_user.py against the stand-in Canvas: never a second enrollment by accident."""

import pytest

import enroll_user
from standin import Fault


def test_enrolls_new_user_active_in_two_lookups_and_one_post(canvas, course, run):
    """Active, then inactive with the concluded and deleted rows the POST would reopen:
    still two lookups, the states of the second apart from the active ones."""
    canvas.store.add_user("S1")
    r = run(enroll_user, "sis_course_id:PHYS2", "S1", "student")
    assert (r.code, r.err) == (0, "")
    assert r.out.startswith("enrolled User S1 (S1) in course sis_course_id:PHYS2")
    assert canvas.store.states_of("S1") == ["active"]
    # + the course and its sections, which the line names, and after the POST (whose answer
    # has no user) one read of the new row for the person's name
    assert len(canvas.calls("GET", "/enrollments")) == 3 and len(canvas.writes()) == 1
    assert len(canvas.calls("GET")) == 5
    assert [c["query"]["state[]"] for c in canvas.calls("GET", "/enrollments")][:2] == \
        [["active", "invited", "creation_pending"], ["inactive", "completed", "rejected", "deleted"]]
    form = canvas.writes()[0]["form"]
    assert form == {"enrollment[user_id]": "sis_user_id:S1", "enrollment[type]": "StudentEnrollment",
                    "enrollment[enrollment_state]": "active", "enrollment[notify]": "false"}


@pytest.mark.parametrize("word,type_name", [("TEACHER", "TeacherEnrollment"), ("ta", "TaEnrollment"),
                                            ("ObserverEnrollment", "ObserverEnrollment"),
                                            ("Designer", "DesignerEnrollment")])
def test_roles_in_any_case_and_type_names(canvas, course, run, word, type_name):
    canvas.store.add_user("S1")
    r = run(enroll_user, course.id, "S1", word, "--json")
    assert r.code == 0 and r.json()[0]["role"] == type_name
    assert canvas.store.enrollments_of("S1")[0].type == type_name


def test_empty_or_malformed_role_is_usage_error_before_any_request(canvas, run):
    for word, text in (("  ", "the role is empty"), ("role_id:x", "role_id: takes the role's number")):
        r = run(enroll_user, "1", "S1", word)
        assert r.code == 2 and text in r.err and canvas.requests == []
        assert r.err.count("\n") == 1 and r.err.startswith("enroll_user.py: error: argument ROLE")


def test_already_active_changes_nothing(canvas, course, run):
    e = canvas.store.enroll(canvas.store.add_user("S1"), course)
    r = run(enroll_user, course.id, "S1", "student", "--json")
    assert r.code == 0 and r.err == ""
    [obj] = r.json()
    assert obj["action"] == "unchanged" and obj["enrollment_id"] == e.id
    assert canvas.writes() == []


def test_inactive_user_is_not_silently_reactivated_nor_doubled(canvas, course, run):
    """The trap: POSTing again would make a second enrollment or reactivate."""
    lab = canvas.store.add_section(course, "LAB-B")
    canvas.store.enroll(canvas.store.add_user("S1"), course, state="inactive", section=lab)
    r = run(enroll_user, course.id, "S1", "student")
    assert r.code == 0 and "already inactive" in r.out
    assert f"python set_user_state.py {course.id} S1 active" in r.out
    assert canvas.writes() == [] and canvas.store.states_of("S1") == ["inactive"]


def test_other_role_or_other_section_gets_a_new_enrollment(canvas, course, run):
    store = canvas.store
    user = store.add_user("S1")
    store.enroll(user, course)
    r = run(enroll_user, course.id, "S1", "ta")
    assert r.code == 0 and [e.type for e in store.enrollments_of("S1")] == \
        ["StudentEnrollment", "TaEnrollment"]
    r = run(enroll_user, course.id, "S1", "student", "--section", "sis_section_id:PHYS2-LAB")
    assert r.code == 0 and len(store.enrollments_of("S1")) == 3
    form = canvas.writes()[-1]["form"]
    assert form["enrollment[course_section_id]"] == "sis_section_id:PHYS2-LAB"


def test_state_and_notify_options(canvas, course, run):
    canvas.store.add_user("S1")
    r = run(enroll_user, course.id, "S1", "student", "--state", "invited", "--notify")
    assert r.code == 0 and canvas.store.states_of("S1") == ["invited"]
    assert canvas.writes()[0]["form"]["enrollment[notify]"] == "true"


def test_unknown_sis_id_says_so(canvas, course, run):
    r = run(enroll_user, course.id, "nobody", "student")
    assert r.code == 1 and r.err.count("\n") == 1
    assert "no user with SIS ID 'nobody'" in r.err and r.out == ""


def test_unknown_section_is_named(canvas, course, run):
    canvas.store.add_user("S1")
    r = run(enroll_user, course.id, "S1", "student", "--section", "sis_section_id:NOPE")
    assert r.code == 1 and "section sis_section_id:NOPE not found" in r.err
    assert f'its sections: "Physics 2" (id {course.default_section_id})' in r.err, r.err


def test_concluded_course_shows_canvas_message(canvas, course, run):
    canvas.store.add_user("S1")
    course.workflow_state = "completed"
    r = run(enroll_user, course.id, "S1", "student")
    assert r.code == 1 and "concluded course" in r.err


def test_dry_run_looks_up_but_does_not_post(canvas, course, run):
    canvas.store.add_user("S1")
    r = run(enroll_user, course.id, "S1", "student", "--dry-run", "--json")
    assert r.code == 0 and r.json()[0]["action"] == "created" and r.json()[0]["dry_run"]
    assert canvas.writes() == [] and canvas.store.states_of("S1") == []
    r = run(enroll_user, course.id, "ghost", "student", "--dry-run")
    assert r.code == 1 and "no user with SIS ID 'ghost'" in r.err


def test_lost_answer_on_post_never_doubles(canvas, course, run):
    canvas.store.add_user("S1")
    canvas.fault(Fault("after", method="POST", status=504))
    r = run(enroll_user, course.id, "S1", "student")
    assert r.code == 0 and "enrolled User S1 (S1)" in r.out
    assert len(canvas.store.enrollments_of("S1")) == 1 and len(canvas.writes()) == 1


def test_reset_after_post_never_doubles(canvas, course, run):
    canvas.store.add_user("S1")
    canvas.fault(Fault("reset", method="POST"))
    r = run(enroll_user, course.id, "S1", "student")
    assert r.code == 0 and len(canvas.store.enrollments_of("S1")) == 1


def test_post_that_failed_before_applying_is_posted_again(canvas, course, run):
    canvas.store.add_user("S1")
    canvas.fault(Fault("status", method="POST", status=503, body="<html>busy</html>"))
    r = run(enroll_user, course.id, "S1", "student")
    assert r.code == 0 and len(canvas.writes()) == 2
    assert canvas.store.states_of("S1") == ["active"]


def test_teacher_token_without_sis_rights_is_told(canvas, course, run, tmp_path):
    from conftest import TOKEN
    canvas.store.tokens[TOKEN] = "nosis"
    canvas.store.add_user("S1")
    r = run(enroll_user, course.id, "S1", "student")
    assert r.code == 1 and "filter by SIS fields" in r.err and canvas.writes() == []

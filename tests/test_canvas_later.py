"""Mixed states, dry runs that agree with the real run (course dates, open sections,
scoped developer keys), and what Canvas will do later (SIS imports, end dates,
cross-listed sections)."""

from datetime import datetime, timedelta, timezone

import pytest

import canvas_common as cc
import enroll_user
import set_user_state
from conftest import TOKEN

PAST = datetime.now(timezone.utc) - timedelta(days=30)
FUTURE = datetime.now(timezone.utc) + timedelta(days=30)


@pytest.fixture
def lab(canvas, course):
    return next(s for s in canvas.store.sections.values() if s.sis_section_id == "PHYS2-LAB")


# --- 3. mixed states ---------------------------------------------------------------


def test_active_leaves_a_left_over_inactive_enrollment_alone(canvas, course, lab, run):
    store = canvas.store
    user = store.add_user("S110")
    old = store.enroll(user, course, state="inactive")  # left behind by a section move
    store.enroll(user, course, section=lab)
    r = run(set_user_state, course.id, "S110", "active")
    assert r.code == 0 and canvas.writes() == []
    assert f"enrollment {old.id}" in r.out and "left inactive" in r.out
    assert f"active --section {course.default_section_id}" in r.out
    r = run(set_user_state, course.id, "S110", "active", "--section", course.default_section_id)
    assert r.code == 0 and store.states_of("S110") == ["active", "active"]


def test_inactive_still_deactivates_every_active_one_and_batches_agree(canvas, course, lab, run, tmp_path):
    store = canvas.store
    for n in range(3):
        user = store.add_user(f"S{n}")
        store.enroll(user, course, state="inactive")
        store.enroll(user, course, section=lab)
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,state\n" + "".join(f"{course.id},S{n},active\n" for n in range(3)))
    r = run(set_user_state, "--csv", csv)
    assert r.code == 0 and "no changes, unchanged 6" in r.err and canvas.writes() == []
    r = run(set_user_state, course.id, "S0", "inactive")
    assert r.code == 0 and store.states_of("S0") == ["inactive", "inactive"]


# --- 4. dry runs that agree --------------------------------------------------------


@pytest.mark.parametrize("how", ["term", "course"])
def test_course_concluded_by_dates_is_refused_by_dry_run_and_real_run(canvas, course, run, how):
    if how == "term":
        course.term_end_at = PAST
    else:
        course.end_at, course.restrict_enrollments_to_course_dates = PAST, True
    canvas.store.add_user("S1")
    dry = run(enroll_user, course.id, "S1", "student", "--dry-run")
    real = run(enroll_user, course.id, "S1", "student")
    assert dry.code == real.code == 1
    assert "concluded by its end date" in dry.err and "concluded course" in real.err
    assert "its end date or its term's has passed" in real.err
    assert canvas.store.states_of("S1") == []


def test_course_end_date_without_restriction_does_not_conclude(canvas, course, run):
    course.end_at = PAST  # without restrict_enrollments_to_course_dates only the term's end counts
    canvas.store.add_user("S1")
    dry = run(enroll_user, course.id, "S1", "student", "--dry-run")
    real = run(enroll_user, course.id, "S1", "student")
    assert dry.code == real.code == 0 and canvas.store.states_of("S1") == ["active"]


def test_user_already_in_a_concluded_course_may_join_an_open_section(canvas, course, lab, run):
    course.term_end_at = PAST
    lab.end_at, lab.restrict_enrollments_to_section_dates = FUTURE, True  # extended access
    canvas.store.enroll(canvas.store.add_user("S1"), course, state="completed")
    canvas.store.add_user("S2")  # not in the course: refused even there
    dry = run(enroll_user, course.id, "S1", "student", "--section", "sis_section_id:PHYS2-LAB", "--dry-run")
    assert dry.code == 0 and "would enroll" in dry.out
    real = run(enroll_user, course.id, "S1", "student", "--section", "sis_section_id:PHYS2-LAB")
    assert real.code == 0 and canvas.store.states_of("S1") == ["completed", "active"]
    for args in ((), ("--dry-run",)):
        r = run(enroll_user, course.id, "S2", "student", "--section", "sis_section_id:PHYS2-LAB", *args)
        assert r.code == 1 and "concluded" in r.err
    r = run(enroll_user, course.id, "S1", "ta", "--dry-run")  # no open section given
    assert r.code == 1 and "concluded" in r.err


ENROLLMENT_SCOPES = ["url:GET|/api/v1/courses/:course_id/enrollments",
                     "url:POST|/api/v1/courses/:course_id/enrollments"]


def test_scoped_key_dry_run_says_what_it_could_not_check_and_still_plans(canvas, course, run):
    canvas.store.scopes[TOKEN] = ENROLLMENT_SCOPES
    canvas.store.add_user("S1")
    dry = run(enroll_user, course.id, "S1", "student", "--section", "sis_section_id:PHYS2-LAB", "--dry-run")
    assert dry.code == 0 and "would enroll S1" in dry.out and "not checked" in dry.out
    assert "url:GET|/api/v1/courses/:id" in dry.out and "url:GET|/api/v1/users/:id" in dry.out
    real = run(enroll_user, course.id, "S1", "student", "--section", "sis_section_id:PHYS2-LAB")
    assert real.code == 0 and canvas.store.states_of("S1") == ["active"]


def test_missing_scope_names_the_endpoint_and_asks_for_the_scope(canvas, course, run):
    canvas.store.scopes[TOKEN] = ["url:GET|/api/v1/courses/:course_id/enrollments"]
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 1 and r.err.count("\n") == 1
    assert "url:DELETE|/api/v1/courses/:course_id/enrollments/:id" in r.err
    assert "add that scope to the developer key" in r.err and "new token in Canvas" not in r.err
    assert not issubclass(cc.CanvasScopeMissing, cc.CanvasAuthError)


# --- 5. what Canvas will do later ----------------------------------------------------


def test_sis_made_enrollment_changed_by_hand_warns_in_text_json_and_log(canvas, course, run, tmp_path):
    store = canvas.store
    store.enroll(store.add_user("S1"), course, sis_import_id=77)
    store.enroll(store.add_user("S2"), course, sis_import_id=77)
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 0 and "warning: made by an SIS import (sis_import_id 77)" in r.out
    assert "next SIS import may put" in r.out
    log = tmp_path / "audit.jsonl"
    r = run(set_user_state, course.id, "S2", "inactive", "--json", "--log", log)
    assert "next SIS import" in r.json()[0]["warning"] and "sis_import_id 77" in log.read_text()


def test_already_active_past_its_end_date_says_when_it_ended(canvas, course, run):
    canvas.store.enroll(canvas.store.add_user("S1"), course, end_at="2026-01-31T23:59:00Z")
    for module, word in ((set_user_state, "active"), (enroll_user, "student")):
        r = run(module, course.id, "S1", word)
        assert r.code == 0 and "already active" in r.out and "ended on 2026-01-31" in r.out
        assert "reactivating cannot help" in r.out
    assert canvas.writes() == []


def test_cross_listed_section_names_the_course_it_now_belongs_to(canvas, course, lab, run):
    store = canvas.store
    other = store.add_course("Physics 2 (combined)", "PHYS2-ALL")
    store.enroll(store.add_user("S1"), course, section=lab)
    store.enroll(store.add_user("S2"), course)
    store.crosslist(lab, other)
    r = run(set_user_state, course.id, "S1", "inactive", "--section", "sis_section_id:PHYS2-LAB")
    assert r.code == 1 and f"cross-listed into course {other.id}" in r.err and "no user" not in r.err
    for args in ((), ("--dry-run",)):
        r = run(enroll_user, course.id, "S2", "ta", "--section", "sis_section_id:PHYS2-LAB", *args)
        assert r.code == 1 and f"section sis_section_id:PHYS2-LAB ({lab.name}) was cross-listed into " \
            f"course {other.id}" in r.err

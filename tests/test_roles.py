"""Custom course roles: resolved by name (or role_id:N) through the course's account,
sent as enrollment[role_id], refused with the roles that exist, never a second
student-type enrollment."""

import enroll_user
import set_user_state
from conftest import TOKEN


def role_lookups(canvas):
    return canvas.calls("GET", "/roles$")


def test_custom_role_by_name_in_any_case_is_sent_as_role_id(canvas, course, run):
    store = canvas.store
    grader = store.add_role("Grader", "TaEnrollment")
    store.add_user("S1")
    r = run(enroll_user, course.id, "S1", "grader", "--json")
    assert r.code == 0, r.err
    [obj] = r.json()
    assert (obj["action"], obj["role"], obj["role_id"]) == ("created", "Grader", grader.id)
    form = canvas.writes()[0]["form"]
    assert form["enrollment[role_id]"] == str(grader.id) and "enrollment[type]" not in form
    [e] = store.enrollments_of("S1")
    assert (e.type, e.role, e.role_id) == ("TaEnrollment", "Grader", grader.id)
    assert len(role_lookups(canvas)) == 1 and role_lookups(canvas)[0]["query"]["show_inherited"] == "1"
    r = run(enroll_user, course.id, "S1", "Grader")  # held: nothing to do
    assert r.code == 0 and "already active" in r.out and len(canvas.writes()) == 1


def test_roles_are_inherited_from_parent_accounts_and_role_id_works(canvas, run):
    store = canvas.store
    faculty = store.add_account("Faculty of Science")
    course = store.add_course("Chemistry", "CHEM")
    course.account_id = store.add_account("Chemistry dept", parent=faculty).id
    examiner = store.add_role("Examiner", "TeacherEnrollment", account=faculty)
    store.add_user("T1")
    r = run(enroll_user, course.id, "T1", f"role_id:{examiner.id}")
    assert r.code == 0, r.err
    assert store.enrollments_of("T1")[0].role == "Examiner"
    assert role_lookups(canvas)[0]["path"] == f"/api/v1/accounts/{course.account_id}/roles"


def test_unknown_inactive_and_ambiguous_roles_are_refused_with_the_roles_listed(canvas, course, run):
    store = canvas.store
    store.add_role("Auditor", "StudentEnrollment")
    store.add_role("Old mentor", "ObserverEnrollment", state="inactive")
    store.add_role("Reader", "TaEnrollment")
    store.add_role("reader", "DesignerEnrollment")
    store.add_user("S1")
    r = run(enroll_user, course.id, "S1", "Grader")
    assert r.code == 1 and "no course role 'Grader'" in r.err and "Auditor (student)" in r.err
    assert "inactive: Old mentor" in r.err and r.err.count("\n") == 1
    r = run(enroll_user, course.id, "S1", "old MENTOR")
    assert r.code == 1 and "'Old mentor' is inactive" in r.err
    r = run(enroll_user, course.id, "S1", "READER")
    assert r.code == 1 and "ambiguous" in r.err
    r = run(enroll_user, course.id, "S1", "reader")  # exact wins
    assert r.code == 0 and store.enrollments_of("S1")[0].type == "DesignerEnrollment"
    assert len(canvas.writes()) == 1


def test_bad_role_fails_its_row_alone_and_roles_are_listed_once_per_run(canvas, course, run, tmp_path):
    store = canvas.store
    store.add_role("Auditor", "StudentEnrollment")
    for n in range(6):
        store.add_user(f"S{n}")
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,role\n" + "".join(
        f"{course.id},S{n},{'Auditor' if n % 2 else 'Nope'}\n" for n in range(6)))
    r = run(enroll_user, "--csv", csv, "--json")
    assert r.code == 1 and "created 3, unchanged 0, failed 3" in r.err
    assert all(o["action"] == "failed" for o in r.json() if o["sis_user_id"] in ("S0", "S2", "S4"))
    assert len(role_lookups(canvas)) == 1 and len(canvas.calls("GET", rf"/courses/{course.id}$")) == 1
    assert [store.enrollments_of(f"S{n}") != [] for n in range(6)] == [False, True] * 3


def test_token_that_may_not_list_roles(canvas, course, run):
    store = canvas.store
    store.tokens[TOKEN] = "noroles"
    grader = store.add_role("Grader", "TaEnrollment")
    store.add_user("S1")
    r = run(enroll_user, course.id, "S1", "Grader")
    assert r.code == 1 and "give it as role_id:N" in r.err and canvas.writes() == []
    r = run(enroll_user, course.id, "S1", f"role_id:{grader.id}")
    assert r.code == 0 and store.enrollments_of("S1")[0].role == "Grader"


def test_a_student_under_a_custom_student_role_is_not_enrolled_twice(canvas, course, run):
    store = canvas.store
    auditor = store.add_role("Auditor", "StudentEnrollment")
    store.enroll(store.add_user("S1"), course, role=auditor)
    r = run(enroll_user, course.id, "S1", "student")
    assert r.code == 0 and "that is Auditor (student-type custom role)" in r.out
    assert "second student-type enrollment" in r.out and canvas.writes() == []
    store.enroll(store.add_user("S2"), course)
    r = run(enroll_user, course.id, "S2", "Auditor")  # and the other way round
    assert r.code == 0 and "that is StudentEnrollment: Auditor" in r.out and canvas.writes() == []


def test_staff_may_hold_teacher_and_a_teacher_based_role(canvas, course, run):
    store = canvas.store
    store.add_role("Examiner", "TeacherEnrollment")
    store.enroll(store.add_user("T1"), course, type="TeacherEnrollment")
    r = run(enroll_user, course.id, "T1", "Examiner")
    assert r.code == 0 and sorted(e.role for e in store.enrollments_of("T1")) == ["Examiner", "TeacherEnrollment"]


def test_set_user_state_takes_custom_roles_and_explains_student(canvas, course, run):
    store = canvas.store
    auditor = store.add_role("Auditor", "StudentEnrollment")
    store.enroll(store.add_user("S1"), course, role=auditor)
    r = run(set_user_state, course.id, "S1", "inactive", "--role", "student")
    assert r.code == 1 and "only the custom role Auditor" in r.err and f"--role role_id:{auditor.id}" in r.err
    r = run(set_user_state, course.id, "S1", "inactive", "--role", "auditor")
    assert r.code == 0 and store.states_of("S1") == ["inactive"]


def test_set_user_state_csv_role_column_takes_custom_roles(canvas, course, run, tmp_path):
    store = canvas.store
    auditor = store.add_role("Auditor", "StudentEnrollment")
    for n in range(3):
        store.enroll(store.add_user(f"S{n}"), course, role=auditor, state="inactive")
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,state,role\n" + "".join(
        f"{course.id},S{n},active,{'Auditor' if n else 'Grader'}\n" for n in range(3)))
    r = run(set_user_state, "--csv", csv)
    assert r.code == 1 and "reactivated 2" in r.err and "no course role 'Grader'" in r.err
    assert [store.states_of(f"S{n}") for n in range(3)] == [["inactive"], ["active"], ["active"]]


def test_undo_deletes_a_custom_role_enrollment_the_batch_made(canvas, course, run, tmp_path):
    store = canvas.store
    grader = store.add_role("Grader", "TaEnrollment")
    for n in range(3):
        store.add_user(f"S{n}")
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,role\n" + "".join(f"{course.id},S{n},Grader\n" for n in range(3)))
    log = tmp_path / "audit.jsonl"
    r = run(enroll_user, "--csv", csv, "--log", log)
    assert r.code == 0 and all(store.enrollments_of(f"S{n}")[0].role_id == grader.id for n in range(3))
    r = run(enroll_user, "--undo", log)
    assert r.code == 0 and all(store.states_of(f"S{n}") == ["deleted"] for n in range(3))

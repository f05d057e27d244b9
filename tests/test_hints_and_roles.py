"""Hints that must reach the enrollment they name when followed (a pasted command),
inactive roles as filters, dry runs of a reopening, --json carrying what the text says,
undo of invited and SIS-made enrollments, undo of an undo, role names typed on macOS,
and an audit log left only by a run that wrote."""

import shlex
import unicodedata

import pytest

import enroll_user
import set_user_state
from conftest import TOKEN, audit_records


@pytest.fixture
def lab(canvas, course):
    return next(s for s in canvas.store.sections.values() if s.sis_section_id == "PHYS2-LAB")


def follow(run, text, marker):
    """Run the set_user_state command a hint gives after marker, exactly as the admin would
    paste it: its own --config included (the hint names the config file this run was given)."""
    command = text.split(marker, 1)[1].split(";")[0].splitlines()[0]
    words = shlex.split(command)
    assert words[:2] == ["python", "set_user_state.py"], command
    assert "--config" in words, command
    return run(set_user_state, *words[2:], use_config=False)


@pytest.mark.parametrize("name,base", [("Student", "StudentEnrollment"), ("ta", "TaEnrollment")])
def test_a_custom_role_named_like_a_built_in_word_is_hinted_by_its_id(canvas, course, run, name, base):
    store = canvas.store
    custom = store.add_role(name, base)
    store.enroll(store.add_user("S1"), course, role=custom)
    word = "student" if base == "StudentEnrollment" else "ta"
    r = run(set_user_state, course.id, "S1", "inactive", "--role", word)
    assert r.code == 1 and f"use --role role_id:{custom.id}" in r.err
    r = run(set_user_state, course.id, "S1", "inactive", "--role", f"role_id:{custom.id}")
    assert r.code == 0 and store.states_of("S1") == ["inactive"]


def test_mixed_state_hint_selects_the_other_role_in_the_same_section(canvas, course, lab, run):
    store = canvas.store
    grader = store.add_role("Grader", "TaEnrollment")
    user = store.add_user("MX")
    store.enroll(user, course, section=lab)
    left = store.enroll(user, course, section=lab, role=grader, state="inactive")
    r = run(set_user_state, course.id, "MX", "active")
    assert r.code == 0 and canvas.writes() == [] and "left inactive" in r.out
    again = follow(run, r.out, "to reactivate this one too: ")
    assert again.code == 0 and "left inactive" not in again.out
    assert store.enrollments[left.id].workflow_state == "active"


def test_an_inactive_role_filters_existing_enrollments_but_is_not_given(canvas, course, run):
    store = canvas.store
    retired = store.add_role("Retired", "TaEnrollment", state="inactive")
    store.enroll(store.add_user("RU"), course, role=retired)
    r = run(set_user_state, course.id, "RU", "inactive", "--role", "Retired")
    assert r.code == 0, r.err
    assert store.states_of("RU") == ["inactive"]
    store.add_user("NEW")
    r = run(enroll_user, course.id, "NEW", "Retired")
    assert r.code == 1 and "'Retired' is inactive" in r.err and store.states_of("NEW") == []


def test_a_reopening_that_depends_on_the_default_section_is_planned_as_a_creation(canvas, course, lab, run):
    store = canvas.store
    old = store.enroll(store.add_user("Q1"), course, state="completed", section=lab)
    dry = run(enroll_user, course.id, "Q1", "student", "--dry-run", "--json")
    [plan] = dry.json()
    assert (plan["action"], plan["enrollment_id"]) == ("created", None)
    assert f"enrollment {old.id} (completed, section {lab.id})" in plan["hint"]
    real = run(enroll_user, course.id, "Q1", "student", "--json")
    [done] = real.json()
    assert (done["action"], done["section_id"]) == ("created", course.default_section_id)
    assert "hint" not in done  # the outcome is known: no condition left
    assert store.states_of("Q1") == ["completed", "active"]


def test_real_run_text_drops_the_planning_condition(canvas, course, lab, run):
    store = canvas.store
    store.enroll(store.add_user("Q2"), course, state="completed")  # in the default section
    r = run(enroll_user, course.id, "Q2", "student")
    assert r.code == 0 and "reopened completed" in r.out and "default section" not in r.out


def test_the_end_date_warning_reaches_json(canvas, course, run):
    canvas.store.enroll(canvas.store.add_user("END1"), course, end_at="2026-01-31T23:59:00Z")
    r = run(set_user_state, course.id, "END1", "active", "--json")
    [obj] = r.json()
    assert r.code == 0 and obj["action"] == "unchanged" and "ended on 2026-01-31" in obj["hint"]


def test_undo_of_a_deactivated_invitation_says_it_becomes_active_and_warns_of_sis(canvas, course, run, tmp_path):
    store = canvas.store
    store.enroll(store.add_user("INV"), course, state="invited", sis_import_id=31)
    log = tmp_path / "audit.jsonl"
    assert run(set_user_state, course.id, "INV", "inactive", "--log", log).code == 0
    r = run(set_user_state, "--undo", log, "--dry-run", "--json")
    assert "makes it active" in r.json()[0]["hint"] and "sis_import_id 31" in r.json()[0]["warning"]
    r = run(set_user_state, "--undo", log)
    assert r.code == 0 and store.states_of("INV") == ["active"]
    assert "it was invited before the job; Canvas's reactivate makes it active" in r.out
    assert "warning: made by an SIS import (sis_import_id 31)" in r.out


def test_a_dry_run_that_cannot_read_the_section_names_it_as_given(canvas, course, run):
    canvas.store.scopes[TOKEN] = ["url:GET|/api/v1/courses/:course_id/enrollments",
                                  "url:POST|/api/v1/courses/:course_id/enrollments"]
    canvas.store.add_user("S1")
    r = run(enroll_user, course.id, "S1", "student", "--section", "sis_section_id:PHYS2-LAB", "--dry-run")
    assert r.code == 0 and "in section sis_section_id:PHYS2-LAB" in r.out and "None" not in r.out


def test_role_names_typed_decomposed_are_matched(canvas, course, run):
    store = canvas.store
    tutor = store.add_role("Tutör Assistant", "TaEnrollment")
    store.add_user("S1")
    typed = unicodedata.normalize("NFD", "TUTÖR assistant")  # as a macOS terminal may send it
    assert typed != unicodedata.normalize("NFC", typed)
    r = run(enroll_user, course.id, "S1", typed)
    assert r.code == 0, r.err
    assert store.enrollments_of("S1")[0].role_id == tutor.id


def test_undo_of_an_undo_is_refused_unless_named(canvas, course, run, tmp_path):
    store = canvas.store
    for n in range(2):
        store.enroll(store.add_user(f"U{n}"), course)
    log = tmp_path / "audit.jsonl"
    csv = tmp_path / "off.csv"
    csv.write_text("course_id,sis_user_id,state\n" + "".join(f"{course.id},U{n},inactive\n" for n in range(2)))
    assert run(set_user_state, "--csv", csv, "--log", log).code == 0
    assert run(set_user_state, "--undo", log).code == 0
    undo_job = [e for e in audit_records(log) if e["event"] == "start"][-1]["job"]
    writes = len(canvas.writes())
    r = run(set_user_state, "--undo", log)
    assert r.code == 1 and r.err.count("\n") == 1 and f"({undo_job}) is an undo of job" in r.err
    assert f"--run {undo_job}" in r.err and f"list its jobs with: python set_user_state.py --jobs {log}" in r.err
    assert len(canvas.writes()) == writes and store.states_of("U0") == ["active"]
    r = run(set_user_state, "--undo", log, "--run", undo_job)  # asked for by id: a redo
    assert r.code == 0 and store.states_of("U0") == store.states_of("U1") == ["inactive"]


def test_undo_of_an_undo_of_creations_is_one_line(canvas, course, run, tmp_path):
    canvas.store.add_user("N0")
    log = tmp_path / "audit.jsonl"
    assert run(enroll_user, course.id, "N0", "student", "--log", log).code == 0
    assert run(enroll_user, "--undo", log).code == 0
    undo_job = [e for e in audit_records(log) if e["event"] == "start"][-1]["job"]
    for extra in ((), ("--run", undo_job)):
        r = run(enroll_user, "--undo", log, *extra)
        assert r.code == 1 and r.err.count("\n") == 1 and "cannot undo 'deleted'" not in r.err
    assert canvas.store.states_of("N0") == ["deleted"]


def test_enrolling_someone_with_an_inactive_custom_student_role_gives_the_command(canvas, course, run):
    store = canvas.store
    auditor = store.add_role("Auditor", "StudentEnrollment")
    e = store.enroll(store.add_user("N1"), course, role=auditor, state="inactive")
    r = run(enroll_user, course.id, "N1", "student")
    assert r.code == 0 and canvas.writes() == [] and "already inactive" in r.out
    again = follow(run, r.out, "to reactivate it: ")
    assert again.code == 0 and store.enrollments[e.id].workflow_state == "active"


def test_enrolling_someone_with_an_inactive_role_gives_a_command_for_that_role(canvas, course, lab, run):
    store = canvas.store
    user = store.add_user("N2")
    store.enroll(user, course, section=lab)
    e = store.enroll(user, course, type="TaEnrollment", state="inactive")
    r = run(enroll_user, course.id, "N2", "ta")
    assert r.code == 0 and "already inactive" in r.out
    again = follow(run, r.out, "to reactivate: ")
    assert again.code == 0 and store.enrollments[e.id].workflow_state == "active"


def test_a_token_that_may_not_list_roles_is_told_what_a_filter_does(canvas, course, run):
    canvas.store.tokens[TOKEN] = "noroles"
    grader = canvas.store.add_role("Grader", "TaEnrollment")
    canvas.store.enroll(canvas.store.add_user("S1"), course, role=grader)
    r = run(set_user_state, course.id, "S1", "inactive", "--role", "Grader")
    assert r.code == 1 and "give it as role_id:N" in r.err and "when enrolling" not in r.err
    r = run(set_user_state, course.id, "S1", "inactive", "--role", f"role_id:{grader.id}")
    assert r.code == 0 and canvas.store.states_of("S1") == ["inactive"]


def test_a_run_that_changes_nothing_leaves_no_log_file(canvas, course, run, tmp_path):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    log = tmp_path / "audit.jsonl"
    r = run(set_user_state, course.id, "S1", "active", "--log", log)
    assert r.code == 0 and not log.exists()
    r = run(set_user_state, course.id, "S1", "inactive", "--log", log)
    assert r.code == 0 and [e["event"] for e in audit_records(log)] == ["start", "intent", "result", "end"]
    r = run(set_user_state, course.id, "S1", "inactive", "--log", tmp_path / "missing" / "audit.jsonl")
    assert r.code == 2 and "cannot write the audit log" in r.err and r.err.count("\n") == 1


def test_an_inactive_student_row_beside_an_active_auditor_in_its_section_stays_inactive(canvas, course, lab, run):
    """Second trial: the hint must not lead to two active student-type enrollments in one section."""
    store = canvas.store
    user = store.add_user("S9005")
    student = store.enroll(user, course, state="inactive", section=lab)
    store.enroll(user, course, role=store.add_role("Auditor", "StudentEnrollment"), section=lab)
    for args in ([], ["--section", str(lab.id), "--role", "student"]):
        r = run(set_user_state, course.id, "S9005", "active", *args)
        assert r.code == 0, r.err
        assert "second student-type enrollment" in r.out and "as Auditor" in r.out
        assert "to reactivate this one too" not in r.out
    assert student.workflow_state == "inactive" and canvas.writes() == []


def test_a_left_over_in_the_same_section_is_not_called_a_section_move(canvas, course, lab, run):
    store = canvas.store
    user = store.add_user("S9006")
    store.enroll(user, course, section=lab)
    store.enroll(user, course, type="TaEnrollment", state="inactive", section=lab)
    r = run(set_user_state, course.id, "S9006", "active")
    assert r.code == 0 and "active in another enrollment in the same section" in r.out
    assert "section move" not in r.out


def test_an_option_of_the_other_script_is_named_as_an_unknown_option(canvas, run):
    r = run(set_user_state, "sis_course_id:NEW", "--from", "sis_course_id:OLD", "--state", "active")
    assert r.code == 2 and "unknown option --state" in r.err and "goes after --" not in r.err
    assert canvas.requests == []


def test_an_abbreviated_option_is_not_guessed(canvas, run, tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,state\n1,S1,inactive\n")
    r = run(set_user_state, "--csv", csv, "--max-change", "5")
    assert r.code == 2 and "unknown option --max-change; did you mean --max-changes?" in r.err
    assert canvas.requests == []


def test_a_hint_for_a_sis_id_that_starts_with_a_dash_works_as_pasted(canvas, course, lab, run, config):
    """Third trial: the options go before --, the SIS ID after it."""
    store = canvas.store
    user = store.add_user("-S08")
    store.enroll(user, course, type="TaEnrollment", section=lab)
    left = store.enroll(user, course, state="inactive", section=lab)
    r = run(set_user_state, "--config", config, "--", course.id, "-S08", "active", use_config=False)
    assert r.code == 0 and "-- " in r.out
    again = follow(run, r.out, "to reactivate this one too: ")
    assert again.code == 0, again.err
    assert left.workflow_state == "active"


def test_a_batch_never_plans_two_student_type_roles_in_one_section(canvas, course, run, tmp_path):
    """Third trial: rows for Auditor and student of one person, neither in Canvas yet."""
    store = canvas.store
    store.add_role("Auditor", "StudentEnrollment")
    store.add_user("S1041")
    csv = tmp_path / "in.csv"
    csv.write_text(f"course_id,sis_user_id,role\n{course.id},S1041,Auditor\n{course.id},S1041,student\n")
    r = run(enroll_user, "--csv", csv, "--dry-run")
    assert r.code == 0 and "line 2 enrolls them as Auditor in the course's default section too" in r.out
    r = run(enroll_user, "--csv", csv)
    assert r.code == 0, r.err
    assert [e.role for e in store.enrollments_of("S1041", course)] == ["Auditor"]


def test_undo_sees_a_row_already_put_back_to_concluded_as_unchanged(canvas, course, run, tmp_path):
    """Third trial: a reopened concluded row that a later undo concluded again is in its
    before-state: undoing the first job again reports it unchanged, not changed since."""
    store = canvas.store
    row = store.enroll(store.add_user("S1052"), course, state="completed")
    log = tmp_path / "audit.jsonl"
    assert run(enroll_user, course.id, "S1052", "student", "--log", log).code == 0
    assert row.workflow_state == "active"
    first = next(r for r in audit_records(log) if r["event"] == "start")["job"]
    assert run(enroll_user, "--undo", log).code == 0 and row.workflow_state == "completed"
    r = run(enroll_user, "--undo", log, "--run", first)
    assert r.code == 0, r.err
    assert "changed since" not in r.err and row.workflow_state == "completed"


def test_a_row_without_a_section_and_one_naming_the_default_are_one_section(canvas, course, run, tmp_path):
    """Fourth trial: the API does not name the default section, so a row without a section
    may be any: no second student-type POST beside it for the same person."""
    store = canvas.store
    store.add_role("Auditor", "StudentEnrollment")
    store.add_user("P4")
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,role,section\n"
                   f"{course.id},P4,Auditor,{course.default_section_id}\n{course.id},P4,student,\n")
    r = run(enroll_user, "--csv", csv)
    assert r.code == 0, r.err
    assert [e.role for e in store.enrollments_of("P4", course)] == ["Auditor"]
    assert "P4 in course" in r.out and "not enrolled as StudentEnrollment; nothing to do; line 2" in r.out


def test_two_inactive_student_type_rows_in_one_section_are_not_both_reactivated(canvas, course, run, tmp_path):
    store = canvas.store
    user = store.add_user("W1")
    auditor = store.enroll(user, course, state="inactive", role=store.add_role("Auditor", "StudentEnrollment"))
    student = store.enroll(user, course, state="inactive")
    r = run(set_user_state, course.id, "W1", "active")
    assert r.code == 0 and "pick one with --role" in r.out and canvas.writes() == []
    csv = tmp_path / "in.csv"
    csv.write_text(f"course_id,sis_user_id,state,role\n{course.id},W1,active,Auditor\n{course.id},W1,active,student\n")
    r = run(set_user_state, "--csv", csv)
    assert r.code == 0, r.err
    assert (auditor.workflow_state, student.workflow_state) == ("active", "inactive")
    assert "line 2 reactivates them as Auditor" in r.out


def test_no_reactivate_hint_that_set_user_state_would_refuse(canvas, course, lab, run):
    """Fifth trial: active as student, inactive as Auditor in one section: enrolling as Auditor
    offers no command that the one-student-role rule then refuses."""
    store = canvas.store
    user = store.add_user("H1")
    store.enroll(user, course, section=lab)
    store.enroll(user, course, role=store.add_role("Auditor", "StudentEnrollment"), state="inactive", section=lab)
    r = run(enroll_user, course.id, "H1", "auditor", "--section", lab.id)
    assert r.code == 0 and "to reactivate" not in r.out and "it stays inactive" in r.out
    assert "deactivate that one first" in r.out and canvas.writes() == []


def test_two_inactive_student_roles_beside_an_active_elsewhere_are_a_choice(canvas, course, lab, run):
    """Fifth trial: no two 'to reactivate this one too' hints that cannot both work."""
    store = canvas.store
    other = store.add_section(course, "LAB-B", "Lab B")
    auditor = store.add_role("Auditor", "StudentEnrollment")
    user = store.add_user("M5")
    store.enroll(user, course, role=auditor, section=lab)
    store.enroll(user, course, state="inactive", section=other)
    store.enroll(user, course, role=auditor, state="inactive", section=other)
    r = run(set_user_state, course.id, "M5", "active")
    assert r.code == 0 and "to reactivate this one too" not in r.out
    assert r.out.count("pick one with --role") == 2 and canvas.writes() == []

"""What the admin reads names the people and places changed: the person by name and SIS ID,
the course and section by name beside their ids; in text, --json, the audit log and --export."""

import csv
import json

import enroll_user
import set_user_state
from conftest import audit_records


def test_two_sis_ids_that_differ_in_case_are_told_apart_by_name(canvas, course, run):
    store = canvas.store
    store.enroll(store.add_user("S1001", "Ada Lovelace"), course, type="TeacherEnrollment")
    store.enroll(store.add_user("s1001", "Sam Lowercase"), course, type="TeacherEnrollment")
    r = run(enroll_user, course.id, "S1001", "student", "--dry-run")
    assert r.code == 0 and "would enroll Ada Lovelace (S1001) in course" in r.out, r.out
    assert "Sam Lowercase" not in r.out


def test_a_single_enrollment_names_person_course_and_section(canvas, course, run):
    store = canvas.store
    lab = store.add_section(course, "PHYS2-LAB-B", "Lab B")
    store.add_user("S1", "Ada Lovelace")
    dry = run(enroll_user, course.id, "S1", "student", "--section", lab.id, "--dry-run")
    assert dry.code == 0, dry.err
    assert (f'would enroll Ada Lovelace (S1) in course {course.id} "Physics 2" as StudentEnrollment '
            f'(active) in section {lab.id} "Lab B"') in dry.out
    r = run(enroll_user, course.id, "S1", "student", "--section", "Lab B", "--json")
    [obj] = r.json()
    assert r.code == 0 and obj["section_id"] == lab.id and obj["section_name"] == "Lab B"
    # a new enrollment's answer carries no user object: one read of the new rows names them
    assert obj["user_name"] == "Ada Lovelace" and obj["sis_user_id"] == "S1"
    assert r.out.count("Ada Lovelace") == 1


def test_a_single_deactivation_names_the_person_and_the_section(canvas, course, run, tmp_path):
    store = canvas.store
    lab = store.add_section(course, "LAB-C", "Lab C")
    e = store.enroll(store.add_user("S2", "Grace Hopper"), course, section=lab)
    log = tmp_path / "audit.jsonl"
    dry = run(set_user_state, course.id, "S2", "inactive", "--dry-run")
    assert (f'Grace Hopper (S2) in course {course.id} "Physics 2": enrollment {e.id} (StudentEnrollment, '
            f'section {lab.id} "Lab C") would be deactivated: active -> inactive') in dry.out
    r = run(set_user_state, course.id, "S2", "inactive", "--section", "lab c", "--log", log)
    assert r.code == 0 and r.out.startswith("Grace Hopper (S2) in course") and '"Lab C"' in r.out, r.out
    assert store.states_of("S2") == ["inactive"]
    [intent] = [rec for rec in audit_records(log) if rec["event"] == "intent"]
    assert intent["user_name"] == "Grace Hopper" and intent["section_name"] == "Lab C"


def test_a_log_without_names_is_still_undone(canvas, course, run, tmp_path):
    store = canvas.store
    store.enroll(store.add_user("S3", "Edsger Dijkstra"), course)
    log = tmp_path / "audit.jsonl"
    assert run(set_user_state, course.id, "S3", "inactive", "--log", log).code == 0
    old = [{k: v for k, v in rec.items() if k not in ("user_name", "course_name", "section_name")}
           for rec in audit_records(log)]
    log.write_text("".join(json.dumps(rec) + "\n" for rec in old))
    r = run(set_user_state, "--undo", log)
    assert r.code == 0 and "Edsger Dijkstra (S3)" in r.out and store.states_of("S3") == ["active"]


def test_the_export_has_a_name_column_that_csv_ignores(canvas, run, tmp_path):
    store = canvas.store
    old = store.add_course("Old", "OLD-1")
    new = store.add_course("New", "NEW-1")
    for n, name in enumerate(["Alan Turing", "Barbara Liskov"]):
        store.enroll(store.add_user(f"E{n}", name), old)
    plan = tmp_path / "plan.csv"
    r = run(enroll_user, new.id, "--from", old.id, "--dry-run", "--export", plan)
    assert r.code == 0, r.err
    with open(plan, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["sis_user_id"]: row["name"] for row in rows} == {"E0": "Alan Turing", "E1": "Barbara Liskov"}
    r = run(enroll_user, "--csv", plan)
    assert r.code == 0 and "created 2" in r.err and store.states_of("E0", new) == ["active"], r.err

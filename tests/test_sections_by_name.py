"""A section given by its name (--section, a CSV's section column): the one section of that
name, else a refusal that lists the course's sections, before any write."""

import pytest

import canvas_ids
import enroll_user
import set_user_state


@pytest.fixture
def labs(canvas, course):
    store = canvas.store
    return store.add_section(course, "LAB-G", "Lab group"), store.add_section(course, None, "2024")


def test_a_section_by_name_enrolls_there(canvas, course, run, labs):
    canvas.store.add_user("S1", "Ada Lovelace")
    r = run(enroll_user, course.id, "S1", "student", "--section", "Lab group")
    assert r.code == 0, r.err
    [e] = canvas.store.enrollments_of("S1")
    assert e.course_section_id == labs[0].id and f'section {labs[0].id} "Lab group"' in r.out


def test_an_unknown_name_lists_the_sections_and_writes_nothing(canvas, course, run, labs):
    canvas.store.add_user("S1")
    r = run(enroll_user, course.id, "S1", "student", "--section", "Lab grop")
    assert r.code == 1 and canvas.writes() == [] and r.out == ""
    assert f"no section named 'Lab grop' in course {course.id}; its sections:" in r.err
    assert f'"Lab group" (id {labs[0].id})' in r.err and f'"2024" (id {labs[1].id})' in r.err
    assert len(r.err.splitlines()) == 1


def test_case_differs_only_when_one_section_matches(canvas, course, run, labs):
    store = canvas.store
    e = store.enroll(store.add_user("S1"), course, section=labs[0])
    r = run(set_user_state, course.id, "S1", "inactive", "--section", "LAB GROUP")
    assert r.code == 0 and store.enrollments[e.id].workflow_state == "inactive", r.err
    store.add_section(course, None, "LAB GROUP")  # now two differ only in case: the exact one wins
    r = run(set_user_state, course.id, "S1", "active", "--section", "Lab group")
    assert r.code == 0 and store.enrollments[e.id].workflow_state == "active", r.err
    r = run(set_user_state, course.id, "S1", "inactive", "--section", "lab group")
    assert r.code == 1 and "has 2 sections named 'lab group'" in r.err and len(canvas.writes()) == 2


def test_two_sections_of_one_name_are_refused(canvas, course, run, labs):
    canvas.store.add_section(course, None, "Lab group")
    canvas.store.add_user("S1")
    r = run(enroll_user, course.id, "S1", "student", "--section", "Lab group")
    assert r.code == 1 and "has 2 sections named 'Lab group'" in r.err and canvas.writes() == []


def test_digits_are_an_id_and_name_prefix_is_a_name(canvas, course, run, labs):
    canvas.store.add_user("S1")
    assert canvas_ids.parse_section("2024") == "2024"  # an id, even though a section is so named
    assert canvas_ids.parse_section("name:2024") == "name:2024"
    r = run(enroll_user, course.id, "S1", "student", "--section", "name:2024")
    assert r.code == 0, r.err
    [e] = canvas.store.enrollments_of("S1")
    assert e.course_section_id == labs[1].id


def test_a_csv_section_column_by_name_fails_only_its_row(canvas, course, run, labs, tmp_path):
    for sis in ("S1", "S2"):
        canvas.store.add_user(sis)
    path = tmp_path / "e.csv"
    path.write_text(f"course_id,sis_user_id,role,section\n{course.id},S1,student,Lab group\n"
                    f"{course.id},S2,student,Nowhere\n")
    r = run(enroll_user, "--csv", path)
    assert r.code == 1 and "created 1" in r.err and "line 3: S2: no section named 'Nowhere'" in r.err
    [e] = canvas.store.enrollments_of("S1")
    assert e.course_section_id == labs[0].id and canvas.store.enrollments_of("S2") == []

"""Any SIS ID reaches exactly its own user, whatever its characters."""

import pytest

import enroll_user
import set_user_state

ODD_IDS = ["a/b", "../1", "x?y=1", "frag#1", "a&b=c", "pct%2F", "plus+1", 'q"uote', "it's",
           "back\\slash", "tab\there", " lead", "trail ", "ünï", "emoji😀", "sis_user_id:S1",
           "hex:sis_user_id:5331", "x", "7", "  ", "line\nbreak", "S1 ", "\x1f", "\u2003x\u2003",
           "\x00", "nbsp\u00a0"]


@pytest.mark.parametrize("sis", ODD_IDS)
def test_odd_sis_ids_reach_only_their_user(canvas, course, run, sis):
    store = canvas.store
    decoy = store.enroll(store.add_user("S1"), course)
    store.enroll(store.add_user(sis), course)
    r = run(set_user_state, course.id, sis, "inactive", "--json")
    assert r.code == 0, r.err
    assert r.json()[0]["sis_user_id"] == sis
    assert store.states_of(sis) == ["inactive"] and decoy.workflow_state == "active"
    store.add_user(sis + "-new")
    r = run(enroll_user, course.id, sis + "-new", "student")
    assert r.code == 0, r.err
    assert store.states_of(sis + "-new") == ["active"] and store.states_of("S1") == ["active"]


@pytest.mark.parametrize("sis", ["", ])
def test_empty_sis_id_is_usage_error(canvas, run, sis):
    r = run(set_user_state, "1", sis, "inactive")
    assert r.code == 2 and canvas.requests == []


@pytest.mark.parametrize("course_arg", ["abc", "12a", "sis_course_id:", "", "-1", "1.5",
                                        "sis_user_id:X", "１２"])  # noqa: RUF001 -- fullwidth digits: isdigit() takes them, Canvas does not
def test_bad_course_arguments_are_usage_errors(canvas, run, course_arg):
    r = run(enroll_user, course_arg, "S1", "student")
    assert r.code == 2 and canvas.requests == []


@pytest.mark.parametrize("sis_course", ["A/B 101", "CS?1#x", "  padded", "ÅÄÖ-1"])
def test_course_sis_ids_are_escaped(canvas, run, sis_course):
    course = canvas.store.add_course("odd", sis_course)
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    r = run(set_user_state, f"sis_course_id:{sis_course}", "S1", "inactive")
    assert r.code == 0, r.err
    assert canvas.store.states_of("S1") == ["inactive"]


@pytest.mark.parametrize("section_sis", ["LAB 1", " padded ", "a/b?c#d", "Å"])
def test_section_sis_ids_reach_their_section(canvas, course, run, section_sis):
    section = canvas.store.add_section(course, section_sis)
    canvas.store.add_section(course, section_sis.strip() + "x")
    canvas.store.add_user("S1")
    r = run(enroll_user, course.id, "S1", "student", "--section", f"sis_section_id:{section_sis}")
    assert r.code == 0, r.err
    assert [e.course_section_id for e in canvas.store.enrollments_of("S1")] == [section.id]
    r = run(set_user_state, course.id, "S1", "inactive", "--section", f"sis_section_id:{section_sis}")
    assert r.code == 0 and canvas.store.states_of("S1") == ["inactive"]

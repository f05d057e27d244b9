"""Canvas as it really answers: Link headers, users with several logins, linked
observers, and dry runs that tell the truth."""

import pytest

import enroll_user
import set_user_state
from conftest import write_csv
from standin import Fault

# --- 1. paging as Canvas builds its Link header --------------------------------------


@pytest.mark.parametrize("sis_course", ["PHYS;2027", "A,B", "X;Y,Z=1&w@v:(1)!$*+'"])
def test_batch_in_a_course_whose_sis_id_has_sub_delimiters(canvas, run, tmp_path, sis_course):
    course = canvas.store.add_course("Odd", sis_course)
    users = [canvas.store.add_user(f"P{n:03d}") for n in range(300)]
    for u in users:
        canvas.store.enroll(u, course)
    canvas.max_per_page = 20  # many pages per lookup
    rows = [(f"sis_course_id:{sis_course}", u.sis_user_id, "inactive") for u in users]
    path = tmp_path / "odd.csv"
    import csv
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("course_id", "sis_user_id", "state"), *rows])
    r = run(set_user_state, "--csv", path)
    assert r.code == 0, r.err
    assert "deactivated 300" in r.err
    assert all(e.workflow_state == "inactive" for e in canvas.store.enrollments.values())
    links = [c["link"] for c in canvas.calls("GET") if c.get("link")]
    assert any(sis_course.split(";")[0] + ";" in link for link in links) or ";" not in sis_course


def test_sis_ids_of_60_characters_in_bulk(canvas, course, run, tmp_path):
    ids = [f"{n:04d}-" + "x" * 50 + "-éü/?" for n in range(250)]
    for sis in ids:
        canvas.store.enroll(canvas.store.add_user(sis), course)
    canvas.max_per_page = 5
    r = run(set_user_state, "--csv", write_csv(tmp_path / "long.csv", "course_id,sis_user_id,state",
                                                [(course.id, s, "inactive") for s in ids]))
    assert r.code == 0 and "deactivated 250" in r.err, r.err
    # every next link our lookups got fits Canvas's 6 KiB header with a 100-character host
    sizes = [len(c["next"]) + 100 for c in canvas.calls("GET") if c.get("next")]
    assert sizes and max(sizes) < 6 * 1024 / 2


def test_a_full_page_without_a_next_link_is_an_error_not_the_end(canvas, course, run):
    user = canvas.store.add_user("S1")
    for _ in range(100):  # exactly one full page
        canvas.store.enroll(user, course, section=canvas.store.add_section(course))
    canvas.fault(Fault("no_links", method="GET", times=1))
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 1 and "next page" in r.err and canvas.writes() == []
    r = run(set_user_state, course.id, "S1", "inactive")  # with its links: the last page
    assert r.code == 0 and canvas.store.states_of("S1") == ["inactive"] * 100


# --- 2. users with several logins ---------------------------------------------------


@pytest.fixture
def merged(canvas, course):
    """A user whose enrollments show S-OLD although S-NEW is theirs too."""
    user = canvas.store.add_user("S-OLD", "Merged Person", other_logins=("S-NEW",))
    return canvas.store.enroll(user, course)


def test_set_state_finds_a_user_by_a_second_sis_id(canvas, course, merged, run):
    r = run(set_user_state, course.id, "S-NEW", "inactive", "--json")
    assert r.code == 0, r.err
    [obj] = r.json()
    assert obj["sis_user_id"] == "S-NEW" and obj["action"] == "deactivated"
    assert merged.workflow_state == "inactive"


def test_enroll_finds_the_existing_enrollment_by_a_second_sis_id(canvas, course, merged, run):
    r = run(enroll_user, course.id, "S-NEW", "student")
    assert r.code == 0 and "nothing to do" in r.out, r.out + r.err
    assert canvas.writes() == [] and len(canvas.store.enrollments) == 1


def test_second_sis_ids_in_a_batch_are_confirmed_in_bulk(canvas, course, merged, run, tmp_path):
    plain = [canvas.store.add_user(f"P{n:03d}") for n in range(150)]
    for u in plain:
        canvas.store.enroll(u, course)
    rows = [(course.id, u.sis_user_id, "inactive") for u in plain] + [(course.id, "S-NEW", "inactive")]
    r = run(set_user_state, "--csv", write_csv(tmp_path / "m.csv", "course_id,sis_user_id,state", rows))
    assert r.code == 0 and "deactivated 151" in r.err, r.err
    assert len(canvas.calls("GET", "/api/v1/users/")) == 1  # one confirmation, for S-NEW only
    r = run(enroll_user, "--csv", write_csv(tmp_path / "e.csv", "course_id,sis_user_id,role",
                                             [(course.id, "S-NEW", "student"), (course.id, "P000", "student")]))
    assert r.code == 0 and "unchanged 2" in r.err and len(canvas.store.enrollments) == 151


def test_common_case_costs_no_confirmation(canvas, course, run, tmp_path):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    r = run(set_user_state, course.id, "S1", "inactive")
    # two lookups, the course and its sections (the line names them), one write
    assert r.code == 0 and len(canvas.requests) == 5


def test_look_alike_rows_are_still_not_taken_for_the_user(canvas, course, run):
    canvas.loose_search = True
    other = canvas.store.enroll(canvas.store.add_user("abc1"), course)
    canvas.store.add_user("abc")  # exists, not enrolled
    r = run(set_user_state, course.id, "abc", "inactive")
    assert r.code == 1 and "abc is not enrolled" in r.err and other.workflow_state == "active"


# --- 3. linked observers and changes that happen on their own -----------------------


@pytest.fixture
def family(canvas, course):
    store = canvas.store
    student = store.add_user("KID")
    parent = store.add_user("PARENT")
    return (store.enroll(student, course),
            store.enroll(parent, course, type="ObserverEnrollment", observing=student))


def test_batch_with_a_linked_observer_reactivates_both_exit_0(canvas, course, family, run, tmp_path):
    kid, parent = family
    rows = [(course.id, "KID", "inactive"), (course.id, "PARENT", "inactive")]
    csv = write_csv(tmp_path / "off.csv", "course_id,sis_user_id,state", rows)
    log = tmp_path / "audit.jsonl"
    assert run(set_user_state, "--csv", csv, "--log", log, "--workers", "1").code == 0
    assert kid.workflow_state == parent.workflow_state == "inactive"
    rows = [(course.id, "KID", "active"), (course.id, "PARENT", "active")]
    r = run(set_user_state, "--csv", write_csv(tmp_path / "on.csv", "course_id,sis_user_id,state", rows),
            "--workers", "1", "--json")
    assert r.code == 0, r.err
    assert sorted(o["action"] for o in r.json()) == ["reactivated", "unchanged"]
    assert kid.workflow_state == parent.workflow_state == "active"


def test_undo_across_a_linked_observer(canvas, course, family, run, tmp_path):
    kid, parent = family
    log = tmp_path / "audit.jsonl"
    rows = [(course.id, "PARENT", "inactive"), (course.id, "KID", "inactive")]
    assert run(set_user_state, "--csv", write_csv(tmp_path / "off.csv", "course_id,sis_user_id,state", rows),
               "--log", log, "--workers", "1").code == 0
    r = run(set_user_state, "--undo", log, "--workers", "1")
    assert r.code == 0, r.err
    assert kid.workflow_state == parent.workflow_state == "active"


def test_single_user_whose_enrollment_was_changed_meanwhile(canvas, course, run):
    e = canvas.store.enroll(canvas.store.add_user("S1"), course, state="inactive")
    # someone else reactivates it between our lookup and our write
    canvas.fault(Fault("status", method="PUT", status=400, body={"error": "enrollment not inactive"},
                       then=lambda: canvas.store.set_state(e, "active")))
    r = run(set_user_state, course.id, "S1", "active")
    assert r.code == 0 and "already" in r.out, r.err
    assert e.workflow_state == "active"


# --- 4. dry runs that tell the truth -------------------------------------------------


def test_dry_run_checks_the_section(canvas, course, run):
    canvas.store.add_user("S1")
    other = canvas.store.add_course("Other", "OTHER", sections=("OTHER-LAB",))
    foreign = next(s for s in canvas.store.sections.values() if s.course_id == other.id and s.sis_section_id)
    for section in ("sis_section_id:NOPE", str(foreign.id), "sis_section_id:OTHER-LAB"):
        r = run(enroll_user, course.id, "S1", "student", "--section", section, "--dry-run")
        assert r.code == 1 and f"section {section} not found in course" in r.err, r.err
    assert canvas.writes() == []


def test_dry_run_checks_a_concluded_course(canvas, course, run):
    canvas.store.add_user("S1")
    course.workflow_state = "completed"
    r = run(enroll_user, course.id, "S1", "student", "--dry-run")
    assert r.code == 1 and "concluded" in r.err


def test_dry_run_names_the_section_it_would_use(canvas, course, run):
    canvas.store.add_user("S1")
    lab = next(s for s in canvas.store.sections.values() if s.sis_section_id == "PHYS2-LAB")
    r = run(enroll_user, course.id, "S1", "student", "--section", "sis_section_id:PHYS2-LAB", "--dry-run",
            "--json")
    assert r.code == 0 and r.json()[0]["section_id"] == lab.id and r.json()[0]["section"] == "sis_section_id:PHYS2-LAB"
    r = run(enroll_user, course.id, "S1", "student", "--dry-run")
    assert r.code == 0 and "default section" in r.out
    r = run(enroll_user, course.id, "S1", "student", "--section", "sis_section_id:PHYS2-LAB", "--dry-run")
    assert f"section {lab.id}" in r.out and "Section PHYS2-LAB" in r.out
    real = run(enroll_user, course.id, "S1", "student", "--section", "sis_section_id:PHYS2-LAB", "--json")
    assert real.code == 0 and real.json()[0]["section_id"] == lab.id

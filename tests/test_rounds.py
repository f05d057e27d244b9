"""--from OLD_COURSE: carrying a round's people, roles, states and sections into the next round."""

import csv
import signal
import subprocess
import sys
import time
import types

import pytest

import enroll_user
import set_user_state
from conftest import ROOT, audit_records, write_config

OLD, NEW = "sis_course_id:PHYS1-2026", "sis_course_id:PHYS1-2027"
STUDENTS = 296


def old_round(canvas):
    """A 300-person round: students in two labs (one also in the new round by name), some
    inactive, invited or concluded, two without a SIS ID, two with a second login; a TA, a
    teacher and a custom-role auditor. The new round has its own default section and Lab A."""
    store = canvas.store
    old = store.add_course("Physics 1, 2026", "PHYS1-2026")
    lab_a, lab_b = store.add_section(old, "OLD-LAB-A", "Lab A"), store.add_section(old, "OLD-LAB-B", "Lab B")
    new = store.add_course("Physics 1, 2027", "PHYS1-2027")
    new_lab_a = store.add_section(new, "NEW-LAB-A", "Lab A")
    people = {}
    for i in range(STUDENTS):
        sis = None if i in (40, 41) else f"S{i:04d}"
        user = store.add_user(sis, f"Student {i:04d}", other_logins=(f"OLD{i:04d}",) if i in (5, 6) else ())
        state = "inactive" if i % 10 == 3 else "completed" if i % 25 == 7 else \
            "invited" if i % 50 == 11 else "active"
        store.enroll(user, old, state=state, section=lab_a if i % 2 else lab_b)
        people[i] = (user, state)
    ta, teacher, auditor = (store.add_user(s, n) for s, n in
                            (("T0001", "Tara TA"), ("T0002", "Teo Teacher"), ("A0001", "Aud Itor")))
    store.enroll(ta, old, type="TaEnrollment", section=lab_a)
    store.enroll(teacher, old, type="TeacherEnrollment")
    store.enroll(auditor, old, role=store.add_role("Auditor", "StudentEnrollment"), section=lab_b)
    return types.SimpleNamespace(old=old, new=new, lab_a=new_lab_a, people=people)


def carried(people):
    """{SIS ID: (state group, goes to Lab A)} of the students --from carries by default."""
    return {u.sis_user_id: ("inactive" if state == "inactive" else "active", i % 2 == 1)
            for i, (u, state) in people.items() if u.sis_user_id and state != "completed"}


def in_course(canvas, course, role="StudentEnrollment"):
    store = canvas.store
    return {store.users[e.user_id].sis_user_id: e for e in store.enrollments.values()
            if e.course_id == course.id and e.role == role}


def test_dry_run_plans_every_person_with_section_and_state(canvas, run):
    rnd = old_round(canvas)
    r = run(enroll_user, NEW, "--from", OLD, "--dry-run")
    assert r.code == 0, r.err
    assert not canvas.writes()
    want = carried(rnd.people)
    lines = r.out.splitlines()
    assert len(lines) == len(want)
    lab_a = f'section {rnd.lab_a.id} "Lab A"'
    new = f'course {NEW} "Physics 1, 2027"'  # each person, course and section by name beside the id
    assert f"would enroll Student 0001 (S0001) in {new} as StudentEnrollment (active) in {lab_a}" in r.out
    default = "the course's default section"
    assert f"would enroll Student 0002 (S0002) in {new} as StudentEnrollment (active) in {default}" in r.out
    assert f"would enroll Student 0003 (S0003) in {new} as StudentEnrollment (inactive) in {lab_a}" in r.out
    a_count = sum(1 for s, (_, to_a) in want.items() if to_a)
    assert f"{a_count} to section 'Lab A' (sis_section_id:NEW-LAB-A)" in r.err
    assert f"{len(want) - a_count} to the default section" in r.err
    assert "skipped: 2 without a SIS ID" in r.err and "Student 0040 (user" in r.err
    assert "left out: 12 people concluded" in r.err
    # bulk reads only: both rosters, both sections lists, the course, Lab A once
    assert len(canvas.requests) <= 12, [c["path"] for c in canvas.requests]


def test_json_dry_run_and_export_then_csv_runs_the_same_plan(canvas, run, tmp_path):
    rnd = old_round(canvas)
    plan = run(enroll_user, NEW, "--from", OLD, "--role", "student", "--role", "ta", "--dry-run", "--json",
               "--export", tmp_path / "plan.csv")
    assert plan.code == 0, plan.err
    planned = {(o["sis_user_id"], o["role"]): o for o in plan.json()}
    assert planned[("T0001", "TaEnrollment")]["section"] == "sis_section_id:NEW-LAB-A"
    assert planned[("S0002", "StudentEnrollment")]["section"] == "default"
    assert planned[("S0003", "StudentEnrollment")]["after"] == "inactive"
    with open(tmp_path / "plan.csv", encoding="utf-8-sig", newline="") as f:
        exported = list(csv.DictReader(f))
    assert list(exported[0]) == ["course_id", "sis_user_id", "role", "section", "state", "limit_to_section", "name"]
    assert {(e["sis_user_id"], e["role"]) for e in exported} == \
        {(s, "student") for s in carried(rnd.people)} | {("T0001", "ta")}
    # the row numbers of the plan are the lines of the file
    assert all(exported[o["row"] - 2]["sis_user_id"] == o["sis_user_id"] for o in plan.json())
    r = run(enroll_user, "--csv", tmp_path / "plan.csv", "--log", tmp_path / "audit.jsonl")
    assert r.code == 0, r.err
    check_new_round(canvas, rnd)
    assert "TaEnrollment" in {e.type for e in canvas.store.enrollments.values() if e.course_id == rnd.new.id}


def assert_states_carried(canvas, rnd):
    """Everyone carried holds in the new round the state group they had in the old one."""
    assert {s: e.workflow_state for s, e in in_course(canvas, rnd.new).items()} == \
        {s: state for s, (state, _) in carried(rnd.people).items()}


def check_new_round(canvas, rnd):
    got = in_course(canvas, rnd.new)
    want = carried(rnd.people)
    assert set(got) == set(want)
    for sis, (state, to_a) in want.items():
        assert got[sis].workflow_state == state, sis
        assert (got[sis].course_section_id == rnd.lab_a.id) == to_a, sis


def test_real_run_costs_one_write_per_person_and_undo_puts_back_the_round(canvas, run, tmp_path):
    rnd = old_round(canvas)
    s0010 = canvas.store.user_by_sis("S0010")
    kept = canvas.store.enroll(s0010, rnd.new, state="inactive")  # already there, in another section
    log = tmp_path / "audit.jsonl"
    r = run(enroll_user, NEW, "--from", OLD, "--log", log)
    assert r.code == 0, r.err
    want = carried(rnd.people)
    writes = canvas.writes()
    assert len(writes) == len(want) - 1
    assert len(canvas.requests) - len(writes) <= 10
    assert "1 already in the new course with the role" in r.err
    got = in_course(canvas, rnd.new)
    assert got["S0010"] is kept and kept.workflow_state == "inactive"
    assert f"created {len(want) - 1}, unchanged 1" in r.err
    assert got["S0005"].user_id == canvas.store.user_by_sis("OLD0005").id  # a second login: one person
    before = len(canvas.writes())
    again = run(enroll_user, NEW, "--from", OLD, "--log", log)  # a finished round run again: a new job
    assert again.code == 0 and len(canvas.writes()) == before
    assert f"no changes, unchanged {len(want)}" in again.err
    r = run(enroll_user, "--undo", log)
    assert r.code == 0, r.err
    states = {e.workflow_state for sis, e in in_course(canvas, rnd.new).items() if sis != "S0010"}
    assert states == {"deleted"} and kept.workflow_state == "inactive"


def test_interrupted_run_continues_the_same_job(canvas, tmp_path, run):
    rnd = old_round(canvas)
    config = write_config(tmp_path / "c.json", canvas.url)
    log = tmp_path / "audit.jsonl"
    args = [sys.executable, str(ROOT / "enroll_user.py"), NEW, "--from", OLD, "--config", config,
            "--log", str(log)]
    canvas.latency = (0.02, 0.03)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(canvas.writes()) < 40 and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "run the same command again" in err
    first = len(in_course(canvas, rnd.new))
    assert 40 <= first < len(carried(rnd.people))
    canvas.latency = (0, 0)
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert f"created {len(carried(rnd.people)) - first}, unchanged {first}" in rerun.stderr
    starts = [e for e in audit_records(log) if e["event"] == "start"]
    assert len(starts) == 2 and starts[0]["job"] == starts[1]["job"]
    check_new_round(canvas, rnd)
    r = run(enroll_user, "--undo", log)
    assert r.code == 0, r.err
    assert {e.workflow_state for e in in_course(canvas, rnd.new).values()} == {"deleted"}


def test_set_state_direction_after_a_feed_made_everyone_active(canvas, run, tmp_path):
    rnd = old_round(canvas)
    assert run(enroll_user, NEW, "--from", OLD, "--log", tmp_path / "enroll.jsonl").code == 0
    for e in in_course(canvas, rnd.new).values():
        e.workflow_state = "active"  # an SIS import made everyone active in the new round
    canvas.store.enroll(canvas.store.add_user("S9999"), rnd.new)  # only in the new round: untouched
    canvas.requests.clear()
    log = tmp_path / "state.jsonl"
    r = run(set_user_state, NEW, "--from", OLD, "--log", log)
    assert r.code == 0, r.err
    inactive = {s for s, (state, _) in carried(rnd.people).items() if state == "inactive"}
    assert f"deactivated {len(inactive)}, unchanged {len(carried(rnd.people)) - len(inactive)}" in r.err
    got = in_course(canvas, rnd.new)
    assert {s for s, e in got.items() if e.workflow_state == "inactive"} == inactive
    assert len(canvas.writes()) == len(inactive) and len(canvas.requests) - len(inactive) <= 10
    assert f"{len(carried(rnd.people))} people in both courses" in r.err
    # the other way round only when asked: someone reactivated in the old round
    reactivated = next(e for e in canvas.store.enrollments_of("S0003") if e.course_id == rnd.old.id)
    canvas.store.advance(60)
    canvas.store.set_state(reactivated, "active")
    r = run(set_user_state, NEW, "--from", OLD, "--dry-run", "--json", "--log", log)
    assert r.code == 0 and not [o for o in r.json() if o["action"] != "unchanged"]
    assert "left inactive: 1 person active in course" in r.err and "--reactivate reactivates them" in r.err
    r = run(set_user_state, NEW, "--from", OLD, "--dry-run", "--json", "--log", log, "--reactivate")
    assert r.code == 0 and [(o["sis_user_id"], o["action"]) for o in r.json() if o["action"] != "unchanged"] \
        == [("S0003", "reactivated")]
    r = run(set_user_state, "--undo", log)
    assert r.code == 0, r.err
    assert {e.workflow_state for e in in_course(canvas, rnd.new).values()} == {"active"}


def test_set_state_export_runs_with_csv(canvas, run, tmp_path):
    rnd = old_round(canvas)
    assert run(enroll_user, NEW, "--from", OLD, "--state", "active").code == 0
    plan = tmp_path / "states.csv"
    r = run(set_user_state, NEW, "--from", OLD, "--dry-run", "--export", plan)
    assert r.code == 0 and not canvas.writes()[len(carried(rnd.people)):]
    with open(plan, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["course_id", "sis_user_id", "state", "role", "section", "name"]
    # only what changes: those already as in the old round are left out of the plan, so a
    # decision made between the export and the --csv run is never overwritten
    assert rows[0] == {"course_id": NEW, "sis_user_id": "S0003", "state": "inactive", "role": "student",
                       "section": "", "name": "Student 0003"}
    assert {row["state"] for row in rows} == {"inactive"}
    planned = {row["sis_user_id"] for row in rows}
    hand = next(e for sis, e in in_course(canvas, rnd.new).items()  # someone the plan leaves as they are
                if e.workflow_state == "active" and sis not in planned)
    canvas.store.set_state(hand, "inactive")  # someone deactivates a student by hand meanwhile
    r = run(set_user_state, "--csv", plan)
    assert r.code == 0, r.err
    assert hand.workflow_state == "inactive"
    canvas.store.set_state(hand, "active")
    assert_states_carried(canvas, rnd)


def test_section_option_puts_everyone_in_one_section(canvas, run):
    rnd = old_round(canvas)
    r = run(enroll_user, NEW, "--from", OLD, "--section", "sis_section_id:NEW-LAB-A")
    assert r.code == 0, r.err
    assert {e.course_section_id for e in in_course(canvas, rnd.new).values()} == {rnd.lab_a.id}
    assert f"{len(carried(rnd.people))} to section sis_section_id:NEW-LAB-A" in r.err


def test_include_concluded_carries_them_as_active(canvas, run):
    rnd = old_round(canvas)
    r = run(enroll_user, NEW, "--from", OLD, "--include-concluded")
    assert r.code == 0, r.err
    assert in_course(canvas, rnd.new)["S0007"].workflow_state == "active"
    assert "left out" not in r.err


def test_state_option_makes_everyone_active_then_set_state_carries_the_inactive(canvas, run):
    rnd = old_round(canvas)
    r = run(enroll_user, NEW, "--from", OLD, "--state", "active")
    assert r.code == 0, r.err
    assert {e.workflow_state for e in in_course(canvas, rnd.new).values()} == {"active"}
    r = run(set_user_state, NEW, "--from", OLD)
    assert r.code == 0, r.err
    assert_states_carried(canvas, rnd)


def test_custom_role_is_carried_by_its_name(canvas, run):
    rnd = old_round(canvas)
    r = run(enroll_user, NEW, "--from", OLD, "--role", "auditor")
    assert r.code == 0, r.err
    assert set(in_course(canvas, rnd.new, role="Auditor")) == {"A0001"}


def test_custom_role_state_is_carried(canvas, run):
    rnd = old_round(canvas)
    assert run(enroll_user, NEW, "--from", OLD, "--role", "Auditor").code == 0
    next(iter(in_course(canvas, rnd.old, role="Auditor").values())).workflow_state = "inactive"
    r = run(set_user_state, NEW, "--from", OLD, "--role", "Auditor")
    assert r.code == 0, r.err
    assert in_course(canvas, rnd.new, role="Auditor")["A0001"].workflow_state == "inactive"


@pytest.mark.parametrize("module,args,message", [
    (enroll_user, [NEW, "--from", OLD, "--export", "x.csv"], "--export goes with --dry-run"),
    (enroll_user, [NEW, "S1", "--from", OLD], "give only the new course"),
    (set_user_state, [NEW, "S1", "inactive", "--from", OLD], "give only the new course"),
    (enroll_user, [NEW, "S1", "student", "--role", "ta"], "--role goes with --from"),
    (set_user_state, [NEW, "S1", "inactive", "--role", "ta", "--role", "student"], "given once"),
    (set_user_state, ["--csv", "x.csv", "--include-concluded"], "go with --from"),
    (enroll_user, [NEW, "--from", "PHYS1"], "course must be"),
])
def test_usage_errors(canvas, run, module, args, message):
    r = run(module, *args)
    assert r.code == 2 and message in r.err and not canvas.requests


def test_same_course_and_unknown_old_course(canvas, run):
    old_round(canvas)
    r = run(enroll_user, NEW, "--from", NEW)
    assert r.code == 2 and "names the course itself" in r.err
    r = run(enroll_user, NEW, "--from", "sis_course_id:NOPE")
    assert r.code == 1 and "course sis_course_id:NOPE not found" in r.err and not canvas.writes()


def test_token_that_cannot_read_sis_data_is_told_so(canvas, run):
    old_round(canvas)
    canvas.store.tokens[next(iter(canvas.store.tokens))] = "nosis"
    r = run(enroll_user, NEW, "--from", OLD, "--dry-run")
    assert r.code == 1 and "hides SIS IDs from this token" in r.err and len(r.err.splitlines()) == 1


@pytest.mark.parametrize("name,message", [
    (".", "that is a directory"), ("plan.csv", "the file exists; choose another name"),
    ("missing/plan.csv", "no directory"), ("-", "takes a file name, not '-'")])
def test_export_to_a_file_that_cannot_be_written_is_refused_before_any_request(canvas, run, tmp_path,
                                                                               monkeypatch, name, message):
    old_round(canvas)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plan.csv").write_text("an admin's edits\n")
    r = run(enroll_user, NEW, "--from", OLD, "--dry-run", "--export", name)
    assert r.code == 2 and message in r.err and len(r.err.splitlines()) == 1
    assert not canvas.requests
    assert (tmp_path / "plan.csv").read_text() == "an admin's edits\n" and not (tmp_path / "-").exists()


def test_export_writes_a_new_file_of_mode_600(canvas, run, tmp_path):
    old_round(canvas)
    r = run(set_user_state, NEW, "--from", OLD, "--dry-run", "--export", tmp_path / "new.csv")
    assert r.code == 0, r.err
    assert (tmp_path / "new.csv").stat().st_mode & 0o777 == 0o600


def test_new_round_rows_of_other_roles_and_ended_states_are_weighed_from_the_one_read(canvas, run, tmp_path):
    """The new course is read whole once: a student concluded there is reopened (and undo
    concludes it again), one holding a student-type custom role there gets no second one."""
    rnd = old_round(canvas)
    store = canvas.store
    concluded_user, auditor_user = rnd.people[0][0], rnd.people[2][0]  # both in Lab B: default section
    concluded = store.enroll(concluded_user, rnd.new, state="completed")
    store.enroll(auditor_user, rnd.new, role=store.add_role("Listener", "StudentEnrollment"))
    log = tmp_path / "round.jsonl"
    r = run(enroll_user, NEW, "--from", OLD, "--json", "--log", log)
    assert r.code == 0, r.err
    by_sis = {o["sis_user_id"]: o for o in r.json()}
    assert by_sis[concluded_user.sis_user_id]["action"] == "reopened"
    assert by_sis[concluded_user.sis_user_id]["enrollment_id"] == concluded.id
    assert concluded.workflow_state == "active"
    assert by_sis[auditor_user.sis_user_id]["action"] == "unchanged"
    assert [e.role for e in store.enrollments_of(auditor_user.sis_user_id, rnd.new)] == ["Listener"]
    # no per-person lookups: the rosters, sections, course and roles only
    assert len(canvas.calls("GET", "/enrollments$")) <= 8
    r = run(enroll_user, "--undo", log)
    assert r.code == 0, r.err
    assert concluded.workflow_state == "completed"


def test_courses_pasted_from_the_browser(canvas, run):
    rnd = old_round(canvas)
    old_url = f"{canvas.url}/courses/{rnd.old.id}/users"
    r = run(enroll_user, f"{canvas.url}/courses/{rnd.new.id}", "--from", old_url, "--dry-run")
    assert r.code == 0, r.err
    assert "would enroll" in r.out
    canvas.requests.clear()
    r = run(enroll_user, NEW, "--from", f"https://canvas.example.edu/courses/{rnd.old.id}", "--dry-run")
    assert r.code == 2 and "not on the configured Canvas" in r.err and canvas.requests == []


@pytest.mark.parametrize("module", [enroll_user, set_user_state])
@pytest.mark.parametrize("role,message", [
    ("Auditr", "no course role 'Auditr'"), ("ghost", "no course role 'ghost'"),
    ("role_id:999", "no course role 'role_id:999'"), ("examiner", "'examiner' is ambiguous"),
    ("Retired", "'Retired' is inactive")])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_role_the_old_course_cannot_resolve_stops_the_run(canvas, run, tmp_path, module, role, message, dry_run):
    rnd = old_round(canvas)
    store = canvas.store
    examiner, examiner_ta = store.add_role("Examiner", "TeacherEnrollment"), store.add_role("EXAMINER", "TaEnrollment")
    store.add_role("Retired", state="inactive")
    store.enroll(store.add_user("E0001"), rnd.old, role=examiner)
    store.enroll(store.add_user("E0002"), rnd.old, role=examiner_ta)
    r = run(module, NEW, "--from", OLD, "--role", role, *(["--dry-run"] if dry_run else []),
            "--log", tmp_path / "a.jsonl")
    assert r.code == 1 and message in r.err and len(r.err.splitlines()) == 1, r.err
    assert "roles are student" in r.err or "ambiguous" in r.err
    assert not canvas.writes() and not r.out
    assert not canvas.calls("GET", "/enrollments$")  # nobody was read before the role was known


def test_a_role_given_exactly_carries_only_that_role(canvas, run):
    rnd = old_round(canvas)
    store = canvas.store
    examiner, examiner_ta = store.add_role("Examiner", "TeacherEnrollment"), store.add_role("EXAMINER", "TaEnrollment")
    store.enroll(store.add_user("E0001"), rnd.old, role=examiner)
    store.enroll(store.add_user("E0002"), rnd.old, role=examiner_ta)
    r = run(enroll_user, NEW, "--from", OLD, "--role", f"role_id:{examiner_ta.id}")
    assert r.code == 0, r.err
    assert {e.role for e in canvas.store.enrollments.values() if e.course_id == rnd.new.id} == {"EXAMINER"}
    assert "from course sis_course_id:PHYS1-2026 (EXAMINER): 1 person" in r.err
    r = run(enroll_user, NEW, "--from", OLD, "--role", "designer", "--dry-run")
    assert r.code == 0 and f"nobody in course {OLD} holds DesignerEnrollment" in r.err


def test_one_enrollment_per_person_and_role_in_the_section_of_the_active_one(canvas, run):
    store = canvas.store
    old, new = store.add_course("Old", "OLD-X"), store.add_course("New", "NEW-X")
    old_a, old_b = store.add_section(old, "OA", "Lab A"), store.add_section(old, "OB", "Lab B")
    store.add_section(new, "NA", "Lab A")
    new_b = store.add_section(new, "NB", "Lab B")
    ix, both = store.add_user("I-X"), store.add_user("I-Y")
    store.enroll(ix, old, state="inactive", section=old_a)
    store.enroll(ix, old, state="active", section=old_b)
    store.enroll(both, old, section=old_a)
    store.enroll(both, old, role=store.add_role("Auditor"), section=old_a)
    r = run(enroll_user, "sis_course_id:NEW-X", "--from", "sis_course_id:OLD-X", "--role", "student",
            "--role", "auditor")
    assert r.code == 0, r.err
    got = [(e.course_section_id, e.workflow_state) for e in store.enrollments_of("I-X", new)]
    assert got == [(new_b.id, "active")]
    assert [e.role for e in store.enrollments_of("I-Y", new)] == ["StudentEnrollment"]
    assert "not carried: 1 inactive enrollments beside an active one of the same role" in r.err
    assert f"(I-X, student, section {old_a.id})" in r.err
    assert "not carried: 1 second student-type role " in r.err and "(I-Y, Auditor; carried as student)" in r.err
    assert "2 people, 1 to section 'Lab A' (sis_section_id:NA), 1 to section 'Lab B' (sis_section_id:NB)" in r.err


def test_the_same_course_under_two_spellings_is_refused(canvas, run):
    rnd = old_round(canvas)
    for module in (enroll_user, set_user_state):
        r = run(module, str(rnd.new.id), "--from", NEW, "--dry-run")
        assert r.code == 1 and f"is course {rnd.new.id} itself" in r.err and len(r.err.splitlines()) == 1
        assert not canvas.writes() and not canvas.calls("GET", "/enrollments$")


def test_counts_are_of_people_and_a_rerun_moves_nobody(canvas, run):
    rnd = old_round(canvas)
    store = canvas.store
    s0001 = store.user_by_sis("S0001")
    store.enroll(s0001, rnd.old, role=store.add_role("Auditor2"))
    args = [NEW, "--from", OLD, "--role", "student", "--role", "Auditor2"]
    assert run(enroll_user, *args).code == 0
    writes = len(canvas.writes())
    again = run(enroll_user, *args)
    assert again.code == 0 and len(canvas.writes()) == writes
    people = len(carried(rnd.people))
    assert f"from course {OLD} (student, Auditor2): {people} people, {people} already in the new course" in again.err
    r = run(set_user_state, *args, "--dry-run")
    assert r.code == 0 and f"{people} people in both courses" in r.err, r.err


def test_a_concluded_old_course_carries_its_completed_as_active(canvas, run):
    rnd = old_round(canvas)
    canvas.store.conclude_course(rnd.old)
    assert canvas.store.states_of("S0001", rnd.old) == ["completed"]
    r = run(enroll_user, NEW, "--from", OLD)
    assert r.code == 0, r.err
    got = in_course(canvas, rnd.new)
    # those concluded one by one before the course was are not told apart: all were completed
    want = {u.sis_user_id: "inactive" if state == "inactive" else "active"
            for u, state in rnd.people.values() if u.sis_user_id}
    assert {s: e.workflow_state for s, e in got.items()} == want
    assert f"course {OLD} is concluded, which made its active enrollments completed" in r.err
    # those without a SIS ID are skipped, not counted as carried
    carried_active = sum(1 for state in want.values() if state == "active")
    assert f"{carried_active} people with completed ones carried as active" in r.err
    assert "left out" not in r.err

"""A round as institutions run it: several sections, section limits, temporary enrollments,
later decisions kept, and nothing silent (lecture and lab sections, an SIS import between steps)."""

import csv
from datetime import datetime, timedelta, timezone

import enroll_user
import set_user_state
from conftest import audit_records

OLD, NEW = "sis_course_id:CHEM1-2026", "sis_course_id:CHEM1-2027"
STUDENTS = 294
PAST = (datetime.now(timezone.utc) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
SOON = (datetime.now(timezone.utc) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Round:
    """Old round: everyone in Lecture, one in three also in Lab A, one in three in Lab B (the new
    round has no Lab B), one in ten inactive in both, two moved from Lab A to Lab B (inactive
    row left behind), a TA limited to Lab A, a teacher and a substitute lent the teacher's
    access. New round: Lecture and Lab A, and a student whose temporary enrollment ended."""

    def __init__(self, canvas):
        store = self.store = canvas.store
        self.old = store.add_course("Chemistry 1, 2026", "CHEM1-2026")
        lec, lab_a, lab_b = (store.add_section(self.old, f"OLD-{k}", n)
                             for k, n in (("LEC", "Lecture"), ("LA", "Lab A"), ("LB", "Lab B")))
        self.new = store.add_course("Chemistry 1, 2027", "CHEM1-2027")
        self.lec = store.add_section(self.new, "NEW-LEC", "Lecture")
        self.lab_a = store.add_section(self.new, "NEW-LA", "Lab A")
        self.labs = {}  # SIS ID -> "A" or "B"
        self.inactive = set()
        for i in range(STUDENTS):
            sis = f"S{i:04d}"
            user = store.add_user(sis, f"Student {i:04d}")
            state = "inactive" if i % 10 == 3 else "active"
            (self.inactive.add(sis) if state == "inactive" else None)
            store.enroll(user, self.old, state=state, section=lec)
            if i % 3 < 2:
                self.labs[sis] = "AB"[i % 3]
                if i in (22, 25):  # moved from Lab A to Lab B: the old row stays inactive
                    store.enroll(user, self.old, state="inactive", section=lab_a)
                store.enroll(user, self.old, state=state, section=lab_a if i % 3 == 0 else lab_b)
        self.ta = store.add_user("T0001", "Tara TA")
        store.enroll(self.ta, self.old, type="TaEnrollment", section=lab_a).limit = True
        teacher, sub = store.add_user("P0001", "Pat Teacher"), store.add_user("X0001", "Sam Substitute")
        store.enroll(teacher, self.old, type="TeacherEnrollment", section=lec)
        store.lend(teacher, sub, self.old, section=lec, end_at=SOON)
        self.ended_loan = store.lend(teacher, store.add_user("X0002", "Lee Lent"), self.new, type="StudentEnrollment",
                                     section=self.lec, end_at=PAST, state="inactive")

    def student_rows(self):
        return [e for e in self.store.enrollments.values()
                if e.course_id == self.new.id and e.type == "StudentEnrollment" and e.temporary_source is None]

    def sections_of(self, sis):
        return sorted(e.course_section_id for e in self.store.enrollments_of(sis, self.new)
                      if e.workflow_state != "deleted")


def expected(rnd):
    """{(SIS ID, new section id)} every carried membership lands on."""
    default = rnd.new.default_section_id
    want = set()
    for sis in (f"S{i:04d}" for i in range(STUDENTS)):
        want.add((sis, rnd.lec.id))
        if sis in rnd.labs:
            want.add((sis, rnd.lab_a.id if rnd.labs[sis] == "A" else default))
    return want


def test_dry_run_export_csv_and_undo_carry_every_section_and_the_limit(canvas, run, tmp_path):
    rnd = Round(canvas)
    plan, log = tmp_path / "plan.csv", tmp_path / "audit.jsonl"
    r = run(enroll_user, NEW, "--from", OLD, "--role", "student", "--role", "ta", "--role", "teacher",
            "--dry-run", "--json", "--export", plan)
    assert r.code == 0, r.err
    assert not canvas.writes() and len(canvas.requests) <= 12
    lines = r.json()
    assert {(o["sis_user_id"], o["section"]) for o in lines if o["role"] == "StudentEnrollment"} == \
        {(s, "sis_section_id:NEW-LEC") for s, _ in expected(rnd)} | \
        {(s, "sis_section_id:NEW-LA") for s, lab in rnd.labs.items() if lab == "A"} | \
        {(s, "default") for s, lab in rnd.labs.items() if lab == "B"}
    ta = next(o for o in lines if o["sis_user_id"] == "T0001")
    assert ta["limited_to_section"] is True and ta["section"] == "sis_section_id:NEW-LA"
    assert not [o for o in lines if o["sis_user_id"] == "X0001"]  # the substitute's loan stays behind
    lab_b = sum(1 for lab in rnd.labs.values() if lab == "B")
    assert f"no section 'Lab B' in course {NEW}: {lab_b} people to the default section" in r.err
    assert "not carried: 1 temporary enrollments" in r.err and "(X0001, teacher, temporary enrollment" in r.err
    assert "not carried: 2 inactive enrollments beside an active one" in r.err
    assert "limited to their section (as in course sis_course_id:CHEM1-2026): 1 person: Tara TA (T0001)" in r.err
    with open(plan, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["limit_to_section"] for row in rows if row["sis_user_id"] == "T0001"] == ["true"]
    r = run(enroll_user, "--csv", plan, "--log", log)
    assert r.code == 0, r.err
    assert len(canvas.writes()) == len(rows)  # one write per enrollment
    assert {(rnd.store.users[e.user_id].sis_user_id, e.course_section_id) for e in rnd.student_rows()} == expected(rnd)
    assert {rnd.store.users[e.user_id].sis_user_id for e in rnd.student_rows() if e.workflow_state == "inactive"} \
        == rnd.inactive
    ta_row = next(e for e in rnd.store.enrollments_of("T0001", rnd.new))
    assert ta_row.limit is True and ta_row.course_section_id == rnd.lab_a.id
    assert "limited to its section" in r.out
    r = run(enroll_user, "--undo", log)
    assert r.code == 0, r.err
    assert {e.workflow_state for e in rnd.student_rows()} == {"deleted"} and ta_row.workflow_state == "deleted"
    assert rnd.ended_loan.workflow_state == "inactive"


def test_step_4_after_an_sis_import_keeps_later_decisions(canvas, run, tmp_path):
    rnd = Round(canvas)
    store, log = rnd.store, tmp_path / "audit.jsonl"
    r = run(enroll_user, NEW, "--from", OLD, "--log", log)
    assert r.code == 0, r.err
    assert all(e["updated_at"] for e in audit_records(log) if e["event"] == "result")
    store.advance(3600)  # another admin: S0003 resumed their studies
    for e in store.enrollments_of("S0003", rnd.new):
        store.set_state(e, "active")
    store.advance(3600)  # an SIS import makes everyone active
    store.sis_import([(e, "active") for e in rnd.student_rows()])
    store.advance(3600)  # another admin deactivates S0004 in the new round
    for e in store.enrollments_of("S0004", rnd.new):
        store.set_state(e, "inactive")
    store.advance(3600)
    canvas.requests.clear()
    r = run(set_user_state, NEW, "--from", OLD, "--reactivate", "--log", log)
    assert r.code == 0, r.err
    back = rnd.inactive - {"S0003"}
    rows_back = sum(len(rnd.sections_of(s)) for s in back)
    assert f"summary: deactivated {rows_back}," in r.err
    # bulk reads: both rosters (about 500 rows each, 100 a page), the courses, the SIS import once
    assert len(canvas.writes()) == rows_back and len(canvas.requests) - rows_back <= 16
    assert len(canvas.calls("GET", "sis_imports")) == 1
    assert set(store.states_of("S0003", rnd.new)) == {"active"}
    assert set(store.states_of("S0004", rnd.new)) == {"inactive"}
    assert all(set(store.states_of(s, rnd.new)) == {"inactive"} for s in back)
    assert "left as they are: " in r.err and "(S0003, enrollment" in r.err and "(S0004, enrollment" in r.err
    assert "someone changed after the round was carried" in r.err
    assert "left as they are: 1 temporary enrollments" not in r.err  # X0002 is in no old row
    # rerun at any time: nothing newer is undone, nothing written
    store.advance(3600)
    before = len(canvas.writes())
    again = run(set_user_state, NEW, "--from", OLD, "--reactivate", "--log", log)
    assert again.code == 0 and len(canvas.writes()) == before, again.err
    # by default only "inactive" is carried: S0004 is not even looked at for reactivation
    r = run(set_user_state, NEW, "--from", OLD, "--dry-run", "--json", "--log", log)
    assert r.code == 0 and not [o for o in r.json() if o["action"] != "unchanged"]


def test_a_change_no_log_knows_of_is_a_later_decision_unless_it_made_the_row(canvas, run, tmp_path):
    rnd = Round(canvas)
    assert run(enroll_user, NEW, "--from", OLD, "--state", "active", "--log", tmp_path / "other.jsonl").code == 0
    store = rnd.store
    store.advance(600)
    for row in store.enrollments_of("S0013", rnd.new):
        store.set_state(row, "inactive")
        store.set_state(row, "active")  # someone decided: active (updated_at moved on)
    r = run(set_user_state, NEW, "--from", OLD, "--dry-run", "--json", "--log", tmp_path / "step4.jsonl")
    assert r.code == 0, r.err
    changed = {o["sis_user_id"] for o in r.json() if o["action"] == "deactivated"}
    assert changed == rnd.inactive - {"S0013"}  # rows unchanged since made are carried rows
    assert "(S0013, enrollment" in r.err


def test_a_limited_row_reopened_keeps_its_limit_and_undo_puts_a_changed_one_back(canvas, run, tmp_path):
    rnd = Round(canvas)
    store, log = rnd.store, tmp_path / "audit.jsonl"
    concluded = store.enroll(rnd.ta, rnd.new, type="TaEnrollment", section=rnd.lab_a, state="completed")
    concluded.limit = True
    r = run(enroll_user, NEW, "--from", OLD, "--role", "ta", "--log", log)
    assert r.code == 0, r.err
    assert concluded.workflow_state == "active" and concluded.limit is True
    assert canvas.writes()[-1]["form"]["enrollment[limit_privileges_to_course_section]"] == "true"
    assert run(enroll_user, "--undo", log).code == 0
    assert concluded.workflow_state == "completed" and concluded.limit is True
    # a single run that limits an unlimited concluded row: undo puts the old limit back
    concluded.limit = False
    r = run(enroll_user, NEW, "T0001", "ta", "--section", "sis_section_id:NEW-LA", "--limit-to-section",
            "--log", log, "--json")
    assert r.code == 0 and r.json()[0]["action"] == "reopened" and r.json()[0]["limited_to_section"] is True
    assert concluded.limit is True
    r = run(enroll_user, "--undo", log)
    assert r.code == 0, r.err
    assert concluded.workflow_state == "completed" and concluded.limit is False


def test_temporary_enrollments_are_their_own_kind(canvas, run):
    rnd = Round(canvas)
    store = rnd.store
    sub = store.add_user("X0003", "Kim Cover")
    loan = store.lend(store.user_by_sis("P0001"), sub, rnd.new, section=rnd.lec, end_at=SOON)
    r = run(enroll_user, NEW, "X0003", "teacher", "--section", "sis_section_id:NEW-LEC")
    assert r.code == 0 and not canvas.writes()
    assert f"holds this role only by temporary enrollment {loan.id} (lent by user" in r.out
    assert "already" not in r.out and "temporary) left as it is (active)" in r.out
    assert f"ends {SOON[:10]}" in r.out and "nothing to do" not in r.out.replace("; nothing", "")
    r = run(enroll_user, NEW, "X0003", "teacher", "--section", "sis_section_id:NEW-LA")
    assert r.code == 0 and f"beside temporary enrollment {loan.id}" in r.out
    assert loan.temporary_source is not None and len(canvas.writes()) == 1
    # a loan that ended is not reactivated unless asked, and then it says so
    r = run(set_user_state, NEW, "X0002", "active", "--json")
    assert r.code == 0 and r.json()[0]["action"] == "unchanged" and r.json()[0]["temporary"] is True
    assert "--include-temporary reactivates it" in r.json()[0]["hint"]
    assert rnd.ended_loan.workflow_state == "inactive"
    r = run(set_user_state, NEW, "X0002", "active", "--include-temporary")
    assert r.code == 0 and rnd.ended_loan.workflow_state == "active"
    assert "reactivated as asked (--include-temporary)" in r.out and "temporary" in r.out


def test_nothing_silent(canvas, run):
    rnd = Round(canvas)
    store = rnd.store
    summer = store.add_section(rnd.new, "NEW-SUMMER", "Summer lab")
    summer.end_at, summer.restrict_enrollments_to_section_dates = datetime.now(timezone.utc) - timedelta(days=3), True
    for dry in (["--dry-run"], []):
        r = run(enroll_user, NEW, "S0001", "student", "--section", "sis_section_id:NEW-SUMMER", *dry)
        assert r.code == 0 and "section 'Summer lab' ended on" in r.out and "will be read-only" in r.out, r.out
    r = run(enroll_user, NEW, "S0002", "student", "--state", "invited")
    assert r.code == 0 and "Canvas sends no invitation e-mail" in r.out
    r = run(enroll_user, NEW, "S0005", "student", "--state", "invited", "--notify")
    assert r.code == 0 and "no invitation e-mail" not in r.out
    canvas.requests.clear()
    r = run(enroll_user, NEW, "S0007@example.edu", "student")
    assert r.code == 1 and "that is S0007's login" in r.err and "give the SIS ID S0007" in r.err
    assert len(canvas.calls("GET", "sis_login_id")) == 1
    r = run(set_user_state, NEW, "s0007@EXAMPLE.edu", "inactive")
    assert r.code == 1 and "S0007's login" in r.err
    r = run(enroll_user, NEW, "NOBODY", "student")
    assert r.code == 1 and "no user with SIS ID 'NOBODY'; check it" in r.err


def test_limit_to_section_and_include_temporary_do_not_go_with_from(canvas, run):
    Round(canvas)
    r = run(enroll_user, NEW, "--from", OLD, "--limit-to-section", "--dry-run")
    assert r.code == 2 and "--limit-to-section does not go with --from" in r.err and not canvas.requests
    r = run(set_user_state, NEW, "--from", OLD, "--include-temporary", "--dry-run")
    assert r.code == 2 and "--include-temporary does not go with --from" in r.err and not canvas.requests


def test_reactivate_names_an_inactive_row_beside_an_active_one_and_leaves_it(canvas, run, tmp_path):
    rnd = Round(canvas)
    log = tmp_path / "audit.jsonl"
    assert run(enroll_user, NEW, "--from", OLD, "--log", log).code == 0
    lab_row = next(e for e in rnd.store.enrollments_of("S0000", rnd.new) if e.course_section_id == rnd.lab_a.id)
    rnd.store.set_state(lab_row, "inactive")  # a section move in the new round leaves this behind
    r = run(set_user_state, NEW, "--from", OLD, "--reactivate", "--dry-run", "--log", log)
    assert r.code == 0, r.err
    assert f"beside an active one of the same role (what a section move leaves behind): Student 0000 " \
           f"(S0000, enrollment {lab_row.id}, section {rnd.lab_a.id})" in r.err, r.err
    assert lab_row.workflow_state == "inactive"


def test_step_4_after_two_sis_imports_still_puts_the_first_ones_changes_right(canvas, run, tmp_path):
    """The second import finds the rows active already and only stamps its id on them
    (updated_at stays the first import's): still an import's change, not a decision."""
    rnd = Round(canvas)
    store, log = rnd.store, tmp_path / "audit.jsonl"
    assert run(enroll_user, NEW, "--from", OLD, "--log", log).code == 0
    assert run(set_user_state, NEW, "--from", OLD, "--log", log).code == 0
    for _night in range(2):
        store.advance(86400)
        store.sis_import([(e, "active") for e in rnd.student_rows()])
    store.advance(3600)
    r = run(set_user_state, NEW, "--from", OLD, "--log", log)
    rows_back = sum(len(rnd.sections_of(s)) for s in rnd.inactive)
    assert r.code == 0 and f"summary: deactivated {rows_back}," in r.err, r.err
    assert "someone changed after the round was carried" not in r.err
    assert len(canvas.calls("GET", "sis_imports")) == 1  # one list of the imports since the round
    assert all(set(store.states_of(s, rnd.new)) == {"inactive"} for s in rnd.inactive)


def test_concluding_the_old_course_is_no_decision_over_a_later_one(canvas, run, tmp_path):
    rnd = Round(canvas)
    store, log = rnd.store, tmp_path / "audit.jsonl"
    assert run(enroll_user, NEW, "--from", OLD, "--log", log).code == 0
    store.advance(3600)  # another admin deactivates S0004 (active in the old round) by hand
    for e in store.enrollments_of("S0004", rnd.new):
        store.set_state(e, "inactive")
    store.advance(3600)
    store.conclude_course(rnd.old)  # the end of term: its active enrollments become completed
    store.advance(3600)
    r = run(set_user_state, NEW, "--from", OLD, "--reactivate", "--log", log)
    assert r.code == 0, r.err
    assert set(store.states_of("S0004", rnd.new)) == {"inactive"}
    assert "(S0004, enrollment" in r.err and "someone changed after the round was carried" in r.err


def test_an_inactive_row_beside_an_active_one_is_named_without_reactivate_too(canvas, run, tmp_path):
    rnd = Round(canvas)
    log = tmp_path / "audit.jsonl"
    assert run(enroll_user, NEW, "--from", OLD, "--log", log).code == 0
    lecture = next(e for e in rnd.store.enrollments_of("S0001", rnd.new) if e.course_section_id == rnd.lec.id)
    rnd.store.set_state(lecture, "inactive")  # by hand, in one of two sections
    r = run(set_user_state, NEW, "--from", OLD, "--dry-run", "--log", log)
    assert r.code == 0 and f"(S0001, enrollment {lecture.id}, section {rnd.lec.id})" in r.err, r.err


def test_undo_puts_back_the_limit_of_a_row_reopened_in_the_default_section(canvas, run, tmp_path):
    store = canvas.store
    course = store.add_course("Physics 2", "PHYS2")
    store.add_section(course, "LAB", "Lab")  # two sections: the POST's reopening is not certain
    ta = store.enroll(store.add_user("D3"), course, type="TaEnrollment", state="completed")
    log = tmp_path / "audit.jsonl"
    r = run(enroll_user, course.id, "D3", "ta", "--limit-to-section", "--log", log)
    assert r.code == 0 and "reopened" in r.out and ta.limit is True, r.out + r.err
    r = run(enroll_user, "--undo", log)
    assert r.code == 0, r.err
    assert ta.workflow_state == "completed" and ta.limit is False


def test_undo_puts_back_the_limit_of_a_deleted_row_it_deletes_again(canvas, run, tmp_path):
    store = canvas.store
    course = store.add_course("Physics 2", "PHYS2")
    lab = store.add_section(course, "LAB", "Lab")
    ta = store.enroll(store.add_user("T2"), course, type="TaEnrollment", state="deleted", section=lab)
    log = tmp_path / "audit.jsonl"
    r = run(enroll_user, course.id, "T2", "ta", "--section", "Lab", "--limit-to-section", "--log", log)
    assert r.code == 0 and "reopened" in r.out and ta.limit is True, r.out + r.err
    r = run(enroll_user, "--undo", log)
    assert r.code == 0 and "limited to its section" not in r.out, r.out
    assert ta.workflow_state == "deleted" and ta.limit is False

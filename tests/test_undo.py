"""Undo follows the enrollment, not the SIS ID: moved sections, changed SIS IDs, real deletions;
which job it puts back; the listing of a log's jobs."""

import re

import enroll_user
import set_user_state
from conftest import TOKEN, audit_records, crosslisted, run_script, write_config, write_csv


def gets(canvas):
    return [r for r in canvas.requests if r["method"] == "GET"]


def test_undo_after_a_changed_sis_id_and_a_decrosslisted_section_restores_every_one(canvas, run, tmp_path):
    store = canvas.store
    home, merged, section, users = crosslisted(canvas, 4)
    stay = store.add_user("X0100")
    store.enroll(stay, merged)  # in Merged's own section: it stays there
    log = tmp_path / "audit.jsonl"
    csv = write_csv(tmp_path / "off.csv", "course_id,sis_user_id,state",
                    [(merged.id, u.sis_user_id, "inactive") for u in [*users, stay]])
    assert run(set_user_state, "--csv", csv, "--log", log).code == 0
    assert {e.workflow_state for e in store.enrollments.values()} == {"inactive"}
    store.change_sis_id(users[0], "X0000-B")  # an SIS import's change_sis_id row
    store.change_sis_id(stay, "X0100-B")
    store.uncrosslist(section)  # back to Home, the enrollments with it
    canvas.requests.clear()
    r = run(set_user_state, "--undo", log)
    assert r.code == 0, r.err
    assert {e.workflow_state for e in store.enrollments.values()} == {"active"}
    lines = r.out.splitlines()
    assert len(lines) == 5 and all("reactivated: inactive -> active" in line for line in lines)
    moved = [line for line in lines if f"moved to course {home.id} with its section" in line]
    assert len(moved) == 4 and all(re.search(rf"in course {home.id}( \"[^\"]*\")?:", line) for line in moved)
    assert any(re.search(rf"\(X0000, now X0000-B\) in course {home.id}( \"[^\"]*\")?:", line) for line in lines)
    assert any(re.search(rf"\(X0100, now X0100-B\) in course {merged.id}( \"[^\"]*\")?:", line)
               and "moved" not in line for line in lines)
    # the writes went to the course each enrollment is in now
    kept = store.enrollments_of("X0100-B")[0].id
    paths = sorted(w["path"] for w in canvas.writes())
    assert paths == sorted([f"/api/v1/courses/{home.id}/enrollments/{e.id}/reactivate"
                            for u in users for e in store.enrollments_of(u.sis_user_id)]
                           + [f"/api/v1/courses/{merged.id}/enrollments/{kept}/reactivate"])
    undo = [e for e in audit_records(log) if e["event"] == "intent"][-5:]
    assert {e["logged_course_id"] for e in undo if "logged_course_id" in e} == {str(merged.id)}


def test_undo_says_deleted_only_when_canvas_says_deleted(canvas, run, tmp_path):
    store = canvas.store
    home, merged, section, _users = crosslisted(canvas, 0)
    for i in range(3):
        store.add_user(f"N{i}")
    log = tmp_path / "audit.jsonl"
    csv = write_csv(tmp_path / "in.csv", "course_id,sis_user_id,role,section",
                    [(merged.id, f"N{i}", "student", "sis_section_id:HOME-01") for i in range(3)])
    assert run(enroll_user, "--csv", csv, "--log", log).code == 0
    n0, n1, n2 = (store.enrollments_of(f"N{i}")[0] for i in range(3))
    store.set_state(n0, "deleted")  # deleted in Canvas since (by someone else)
    store.uncrosslist(section)
    del store.enrollments[n2.id]  # gone for good (not even deleted)
    r = run(enroll_user, "--undo", log, "-v")  # -v: the unchanged row has its line too
    assert r.code == 1
    assert f"{n0.id} (StudentEnrollment, section {section.id} \"Home section 01\") is already deleted; nothing to do" \
        in r.out
    assert f"moved to course {home.id}" in r.out
    assert store.enrollments[n0.id].workflow_state == store.enrollments[n1.id].workflow_state == "deleted"
    assert f"Canvas has no enrollment {n2.id} now, in any state" in r.err
    assert "concluded or deleted now" not in r.out + r.err


def test_undo_of_a_deactivation_deleted_since_says_deleted_and_leaves_it(canvas, run, tmp_path):
    store = canvas.store
    _home, merged, section, users = crosslisted(canvas, 1)
    log = tmp_path / "audit.jsonl"
    assert run(set_user_state, merged.id, users[0].sis_user_id, "inactive", "--log", log).code == 0
    e = store.enrollments_of(users[0].sis_user_id)[0]
    store.set_state(e, "deleted")
    store.uncrosslist(section)
    writes = len(canvas.writes())
    r = run(set_user_state, "--undo", log)
    assert r.code == 1 and f"enrollment {e.id} is deleted now, not inactive as the job left it" in r.err
    assert len(canvas.writes()) == writes


def undo_requests(canvas, run, tmp_path, n, change_sis=0, uncrosslist=False):
    """Reads (GETs) and writes of an --undo of an n-row job."""
    store = canvas.store
    _home, merged, section, users = crosslisted(canvas, n, prefix="R")
    log = tmp_path / "audit.jsonl"
    csv = write_csv(tmp_path / "off.csv", "course_id,sis_user_id,state",
                    [(merged.id, u.sis_user_id, "inactive") for u in users])
    assert run(set_user_state, "--csv", csv, "--log", log).code == 0
    for user in users[:change_sis]:
        store.change_sis_id(user, user.sis_user_id + "-B")
    if uncrosslist:
        store.uncrosslist(section)
    canvas.requests.clear()
    r = run(set_user_state, "--undo", log)
    assert r.code == 0, r.err
    assert {e.workflow_state for e in store.enrollments.values()} == {"active"}
    return len(gets(canvas)), len(canvas.writes())


def test_undo_reads_in_bulk_where_the_enrollments_stayed(canvas, run, tmp_path):
    reads, writes = undo_requests(canvas, run, tmp_path, 300)
    assert writes == 300 and reads <= 12  # 5 chunks of SIS IDs x 2 state groups (+ the course)


def test_undo_follows_a_decrosslisted_section_with_one_lookup_by_id(canvas, run, tmp_path):
    reads, writes = undo_requests(canvas, run, tmp_path, 300, uncrosslist=True)
    assert writes == 300 and reads <= 26  # + the course it went to and its sections, for the names
    assert len(canvas.calls("GET", r"/accounts/self/enrollments/")) == 1


def test_undo_looks_up_by_id_only_those_whose_sis_id_changed(canvas, run, tmp_path):
    reads, writes = undo_requests(canvas, run, tmp_path, 300, change_sis=30)
    assert writes == 300 and len(canvas.calls("GET", r"/accounts/self/enrollments/")) == 30
    assert reads <= 12 + 30


def test_undo_as_a_subprocess_follows_a_moved_section(canvas, tmp_path):
    store = canvas.store
    home, merged, section, users = crosslisted(canvas, 2)
    config = write_config(tmp_path / "c.json", canvas.url)
    log = tmp_path / "audit.jsonl"
    r = run_script("set_user_state.py", merged.id, users[0].sis_user_id, "inactive", "--config", config,
                   "--log", log)
    assert r.code == 0, r.err
    store.change_sis_id(users[0], "X0000-B")
    store.uncrosslist(section)
    r = run_script("set_user_state.py", "--undo", log, "--config", config)
    assert r.code == 0, r.err
    assert r.out.startswith(f"User X0000 (X0000, now X0000-B) in course {home.id} \"Home\":") \
        and "moved to course" in r.out
    assert store.states_of("X0000-B") == ["active"]


# --- which job: single commands are jobs too; the listing -------------------------------


def two_jobs(canvas, run, tmp_path):
    """A batch sets U0 and U1 inactive, then one command sets U2 inactive: both in ./enrollments.audit.jsonl."""
    store = canvas.store
    course = store.add_course("Physics 2", "PHYS2")
    for n in range(3):
        store.enroll(store.add_user(f"U{n}"), course)
    csv = write_csv(tmp_path / "off.csv", "course_id,sis_user_id,state",
                    [(course.id, f"U{n}", "inactive") for n in range(2)])
    assert run(set_user_state, "--csv", csv).code == 0
    r = run(set_user_state, course.id, "U2", "inactive")
    assert r.code == 0 and r.err == ""
    jobs = [e for e in audit_records(tmp_path / "enrollments.audit.jsonl") if e["event"] == "start"]
    assert len(jobs) == 2 and jobs[1]["command"].startswith(f"set_user_state.py {course.id} U2 inactive")
    return course, jobs[0], jobs[1]


def test_undo_puts_back_the_last_command_for_one_user_and_names_it(canvas, run, tmp_path):
    _course, _batch, single = two_jobs(canvas, run, tmp_path)
    r = run(set_user_state, "--undo", "enrollments.audit.jsonl")
    assert r.code == 0, r.err
    assert r.err.splitlines()[0] == (f"set_user_state.py: putting back job {single['job']} of {single['time']} "
                                     f"(1 change): {single['command']}")
    assert canvas.store.states_of("U2") == ["active"]
    assert canvas.store.states_of("U0") == canvas.store.states_of("U1") == ["inactive"]
    assert len(r.out.splitlines()) == 1 and "U2" in r.out


def test_the_jobs_listing_shows_every_job_and_an_undo_as_such(canvas, run, tmp_path):
    _course, batch, single = two_jobs(canvas, run, tmp_path)
    assert run(set_user_state, "--undo", "enrollments.audit.jsonl").code == 0
    undo = [e for e in audit_records(tmp_path / "enrollments.audit.jsonl") if e["event"] == "start"][-1]
    writes = len(canvas.requests)
    r = run(set_user_state, "--jobs", use_config=False)  # the default log; no Canvas needed
    assert r.code == 0 and r.err == "" and len(canvas.requests) == writes
    assert r.out.splitlines() == [
        f"{batch['job']}  {batch['time']}  2 changes  {batch['command']}",
        f"{single['job']}  {single['time']}  1 change  {single['command']}  (undone by job {undo['job']})",
        f"{undo['job']}  {undo['time']}  1 change  {undo['command']}  (undo of job {single['job']})"]
    listed = run(set_user_state, "--jobs", "enrollments.audit.jsonl", "--json", use_config=False).json()
    assert [(j["job"], j["changes"], j["undo_of"], j["undone_by"]) for j in listed] == [
        (batch["job"], 2, None, []), (single["job"], 1, None, [undo["job"]]), (undo["job"], 1, single["job"], [])]
    again = run(set_user_state, "--undo", "enrollments.audit.jsonl")  # the last job is an undo
    assert again.code == 1 and again.err.count("\n") == 1 and len(again.err) < 300
    assert again.err.endswith("list its jobs with: python set_user_state.py --jobs\n")


def test_a_run_for_one_user_that_changes_nothing_or_a_dry_run_leaves_no_log(canvas, run, tmp_path):
    store = canvas.store
    course = store.add_course("Physics 2", "PHYS2")
    store.enroll(store.add_user("U0"), course)
    assert run(set_user_state, course.id, "U0", "active").code == 0
    assert run(set_user_state, course.id, "U0", "inactive", "--dry-run").code == 0
    assert not (tmp_path / "enrollments.audit.jsonl").exists()
    r = run(set_user_state, "--jobs", use_config=False)
    assert r.code == 2 and r.err.count("\n") == 1 and "enrollments.audit.jsonl" in r.err


def test_an_unknown_run_id_points_to_the_listing(canvas, run, tmp_path):
    two_jobs(canvas, run, tmp_path)
    r = run(set_user_state, "--undo", "enrollments.audit.jsonl", "--run", "nope")
    assert r.code == 2 and r.err.count("\n") == 1
    assert "has no job or run 'nope'; list its jobs with: python set_user_state.py --jobs" in r.err


def test_jobs_and_undo_of_a_single_command_as_subprocesses(canvas, tmp_path):
    store = canvas.store
    course = store.add_course("Physics 2", "PHYS2")
    for n in range(3):
        store.enroll(store.add_user(f"U{n}"), course)
    env = {"CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN}
    csv = write_csv(tmp_path / "off.csv", "course_id,sis_user_id,state",
                    [(course.id, f"U{n}", "inactive") for n in range(2)])
    assert run_script("set_user_state.py", "--csv", csv, env=env).code == 0
    assert run_script("enroll_user.py", course.id, "U2", "teacher", env=env).code == 0
    r = run_script("enroll_user.py", "--jobs")
    lines = r.out.splitlines()
    assert r.code == 0 and len(lines) == 2
    assert "2 changes  set_user_state.py --csv" in lines[0] and "1 change  enroll_user.py" in lines[1]
    r = run_script("set_user_state.py", "--undo", "enrollments.audit.jsonl", env=env)
    assert r.code == 0 and r.err.startswith("set_user_state.py: putting back job ")
    assert f"(1 change): enroll_user.py {course.id} U2 teacher" in r.err.splitlines()[0]
    assert [e.workflow_state for e in store.enrollments_of("U2")] == ["active", "deleted"]
    assert store.states_of("U0") == ["inactive"]
    r = run_script("set_user_state.py", "--jobs")
    assert r.out.splitlines()[1].endswith("(undone by job " + r.out.splitlines()[2].split()[0] + ")")
    assert "(undo of job " in r.out.splitlines()[2]


def test_the_logged_command_quotes_what_the_shell_would_split(canvas, run, tmp_path):
    """--jobs and the undo's naming line show the command so that it can be pasted back."""
    store = canvas.store
    course = store.add_course("Physics 2", "PHYS2")
    store.add_section(course, "LAB-A", "Lab A")
    store.add_user("U1")
    log = tmp_path / "audit.jsonl"
    assert run(enroll_user, course.id, "U1", "student", "--section", "Lab A", "--log", log).code == 0
    r = run(enroll_user, "--jobs", log)
    assert r.code == 0 and f"{course.id} U1 student --section 'Lab A' --log" in r.out, r.out
    r = run(enroll_user, "--undo", log)
    assert r.code == 0 and "--section 'Lab A'" in r.err.splitlines()[0]

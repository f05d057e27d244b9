"""An audit log that survives its own damage: a cut or garbled last record is moved aside and
cut off before anything is appended; a damaged line in the middle is named and skipped; every
whole record is still used by the rerun and by --undo."""

import json
import subprocess
import sys
import time

from conftest import ROOT, crosslisted, deactivation_batch, run_script, write_config, write_csv


def setup_batch(canvas, tmp_path, n=120):
    """n active students of course BIG, a file that sets them inactive, and its command line."""
    course, csv = deactivation_batch(canvas, tmp_path, n)
    config = write_config(tmp_path / "c.json", canvas.url)
    log = tmp_path / "audit.jsonl"
    return course, ["--csv", csv, "--config", config, "--log", log], log, config


def states(canvas, course):
    return [e.workflow_state for e in canvas.store.enrollments.values() if e.course_id == course.id]


def kill_after(canvas, args, writes):
    proc = subprocess.Popen([sys.executable, str(ROOT / "set_user_state.py"), *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(canvas.writes()) < writes and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.kill()
    proc.wait(timeout=10)
    time.sleep(0.3)  # requests already sent are still answered by Canvas


def cut_last_record(log):
    """Truncate the log in the middle of its last record, as a power cut or a full disk does."""
    data = log.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    cut = start + (len(data) - start) // 2
    with open(log, "r+b") as f:
        f.truncate(cut)
    return data[start:cut]


def test_killed_batch_with_its_last_record_cut_rerun_then_undo_puts_everything_back(canvas, tmp_path):
    course, args, log, config = setup_batch(canvas, tmp_path)
    canvas.latency = (0.01, 0.03)
    kill_after(canvas, args, 40)
    torn = cut_last_record(log)
    canvas.latency = (0, 0)
    rerun = run_script("set_user_state.py", *args)
    assert rerun.code == 0, rerun.err
    warning = [line for line in rerun.err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "not a whole record" in warning[0] and "audit.jsonl.damaged" in warning[0]
    assert "Traceback" not in rerun.err
    assert (tmp_path / "audit.jsonl.damaged").read_bytes() == torn + b"\n"  # its bytes saved aside
    assert all(isinstance(json.loads(line), dict) for line in log.read_text().splitlines())
    assert set(states(canvas, course)) == {"inactive"}
    undo = run_script("set_user_state.py", "--undo", log, "--config", config)
    assert undo.code == 0, undo.err
    assert "warning" not in undo.err  # repaired once: the log is whole again
    assert set(states(canvas, course)) == {"active"}
    assert len(states(canvas, course)) == 120


def test_a_log_cut_short_by_a_full_disk_during_its_first_record_is_still_ours(canvas, tmp_path):
    course, args, log, _config = setup_batch(canvas, tmp_path, n=3)
    log.write_bytes(b'{"time": "2027-01-10T09:12:01+0000", "run": "2027')  # nothing else reached the disk
    r = run_script("set_user_state.py", *args)
    assert r.code == 0 and "moved to" in r.err, r.err
    assert set(states(canvas, course)) == {"inactive"}


def garble(log, number, text="#\x00 garbled by a disk"):
    lines = log.read_text().splitlines(keepends=True)
    lines[number - 1] = text + "\n"
    log.write_text("".join(lines))


def test_a_garbled_result_in_the_middle_is_named_and_the_undo_still_restores_all(canvas, tmp_path):
    course, args, log, config = setup_batch(canvas, tmp_path, n=20)
    assert run_script("set_user_state.py", *args).code == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    number = next(n for n, r in enumerate(records, start=1) if r["event"] == "result" and n > 10)
    garble(log, number)
    undo = run_script("set_user_state.py", "--undo", log, "--config", config)
    assert undo.code == 0, undo.err
    assert f"line {number} damaged" in undo.err and "every other record is used" in undo.err
    assert set(states(canvas, course)) == {"active"}  # the open intent was settled by a look
    assert log.read_text().splitlines()[number - 1].startswith("#")  # left where it is, named


def test_a_garbled_intent_in_the_middle_loses_only_its_own_enrollment(canvas, tmp_path):
    course, args, log, config = setup_batch(canvas, tmp_path, n=20)
    assert run_script("set_user_state.py", *args).code == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    number, lost = next((n, r["sis_user_id"]) for n, r in enumerate(records, start=1)
                        if r["event"] == "intent" and n > 10)
    garble(log, number, '{"time": "2027-01-10T09:12:01+0000", "run": "x", "event": "intent", "se')
    undo = run_script("set_user_state.py", "--undo", log, "--config", config)
    assert undo.code == 0 and f"line {number} damaged" in undo.err, undo.err
    assert "reactivated 19," in undo.err
    assert canvas.store.states_of(lost) == ["inactive"]
    assert sorted(states(canvas, course)) == ["active"] * 19 + ["inactive"]
    listing = run_script("set_user_state.py", "--jobs", log)  # the job list reads it too
    assert listing.code == 0 and f"line {number} damaged" in listing.err
    assert len(listing.out.splitlines()) == 2 and "undo of job" in listing.out, listing.out


def test_a_file_that_is_not_a_log_is_refused_and_left_as_it_is(canvas, tmp_path):
    _course, args, log, _config = setup_batch(canvas, tmp_path, n=3)
    log.write_text("my notes\nabout the term\nnot json")
    r = run_script("set_user_state.py", *args)
    assert r.code == 2 and "not an audit log written by these scripts" in r.err
    assert len(r.err.splitlines()) == 1
    assert log.read_text() == "my notes\nabout the term\nnot json" and not canvas.requests


def test_zeros_after_the_last_record_are_moved_aside(canvas, tmp_path):
    course, args, log, config = setup_batch(canvas, tmp_path, n=5)
    assert run_script("set_user_state.py", *args).code == 0
    whole = log.read_bytes()
    with open(log, "ab") as f:  # zeros where a crashed filesystem lost its last blocks: 8 MiB
        f.write(b"\x00" * (8 << 20))
    undo = subprocess.run(["bash", "-c", f'ulimit -v 1048576; exec "{sys.executable}" '
                                         f'"{ROOT / "set_user_state.py"}" --undo "{log}" --config "{config}"'],
                          capture_output=True, text=True, timeout=120)
    assert undo.returncode == 0 and "Traceback" not in undo.stderr, undo.stderr
    assert "moved to" in undo.stderr
    assert set(states(canvas, course)) == {"active"}
    assert log.read_bytes().startswith(whole)


def without_results(log, keep):
    """The log as a kill -9 leaves it while writes were in flight: the last intents have no
    result (their writes reached Canvas all the same); keep: how many results to keep."""
    lines = log.read_text().splitlines()
    results = [n for n, line in enumerate(lines) if json.loads(line)["event"] == "result"]
    drop = set(results[keep:])
    log.write_text("".join(line + "\n" for n, line in enumerate(lines)
                           if n not in drop and json.loads(line)["event"] != "end"))
    return len(drop)


def test_open_intents_are_settled_by_id_after_an_sis_id_change_and_a_moved_section(canvas, tmp_path):
    store = canvas.store
    _home, merged, section, users = crosslisted(canvas, 20, prefix="M")
    csv = write_csv(tmp_path / "off.csv", "course_id,sis_user_id,state",
                    [(merged.id, u.sis_user_id, "inactive") for u in users])
    config = write_config(tmp_path / "c.json", canvas.url)
    log = tmp_path / "audit.jsonl"
    assert run_script("set_user_state.py", "--csv", csv, "--config", config, "--log", log).code == 0
    assert without_results(log, keep=12) == 8
    for user in users[::2]:
        store.change_sis_id(user, user.sis_user_id + "-B")
    store.uncrosslist(section)
    undo = run_script("set_user_state.py", "--undo", log, "--config", config)
    assert undo.code == 0 and "reactivated 20," in undo.err, undo.err
    assert {e.workflow_state for e in store.enrollments.values()} == {"active"}


def test_an_open_creation_whose_user_has_another_sis_id_now_fails_its_row_and_stays_open(canvas, tmp_path):
    store = canvas.store
    course = store.add_course("Physics 2", "PHYS2")
    users = [store.add_user(f"C{i}") for i in range(3)]
    csv = write_csv(tmp_path / "in.csv", "course_id,sis_user_id,role",
                    [(course.id, u.sis_user_id, "student") for u in users])
    config = write_config(tmp_path / "c.json", canvas.url)
    log = tmp_path / "audit.jsonl"
    assert run_script("enroll_user.py", "--csv", csv, "--config", config, "--log", log).code == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    seq = next(r["seq"] for r in records if r["event"] == "intent" and r["sis_user_id"] == "C2")
    log.write_text("".join(json.dumps(r) + "\n" for r in records  # C2's answer lost (kill -9)
                           if not (r["event"] == "result" and r["seq"] == seq) and r["event"] != "end"))
    store.change_sis_id(users[2], "C2-B")
    undo = run_script("enroll_user.py", "--undo", log, "--config", config)
    assert undo.code == 1 and "deleted 2," in undo.err and "failed 1" in undo.err, undo.err
    assert "cannot tell whether the job's created write was made" in undo.err and "'C2'" in undo.err
    assert store.states_of("C2-B") == ["active"]  # not guessed: left, and said
    assert not [line for line in log.read_text().splitlines()
                if json.loads(line)["event"] == "result" and json.loads(line).get("settled")]  # still open


def test_a_garbled_start_record_never_makes_undo_take_an_older_job(canvas, tmp_path):
    _course, args, log, config = setup_batch(canvas, tmp_path, n=4)
    assert run_script("set_user_state.py", *args).code == 0
    csv2 = write_csv(tmp_path / "on.csv", "course_id,sis_user_id,state",
                     [("sis_course_id:BIG", "B0001", "active")])
    assert run_script("set_user_state.py", "--csv", csv2, "--config", config, "--log", log).code == 0
    lines = log.read_text().splitlines()
    last_start = max(n for n, line in enumerate(lines, start=1) if json.loads(line)["event"] == "start")
    garble(log, last_start)
    undo = run_script("set_user_state.py", "--undo", log, "--config", config)
    assert undo.code == 2 and "start record of the last job" in undo.err and "--run " in undo.err, undo.err
    listing = run_script("set_user_state.py", "--jobs", log)
    assert listing.code == 0 and "(its start record is damaged)" in listing.out.splitlines()[-1]
    job = listing.out.splitlines()[-1].split()[0]
    undo = run_script("set_user_state.py", "--undo", log, "--run", job, "--config", config)
    assert undo.code == 0 and canvas.store.states_of("B0001") == ["inactive"], undo.err


def test_a_log_an_editor_saved_with_a_byte_order_mark_is_still_read(canvas, tmp_path):
    course, args, log, config = setup_batch(canvas, tmp_path, n=5)
    assert run_script("set_user_state.py", *args).code == 0
    log.write_bytes(b"\xef\xbb\xbf" + log.read_bytes())
    undo = run_script("set_user_state.py", "--undo", log, "--config", config)
    assert undo.code == 0 and set(states(canvas, course)) == {"active"}, undo.err


def test_brackets_nested_past_the_stack_are_a_damaged_line_and_a_bad_config(canvas, tmp_path):
    course, args, log, config = setup_batch(canvas, tmp_path, n=5)
    assert run_script("set_user_state.py", *args).code == 0
    with open(log, "a") as f:
        f.write("[" * 100000 + "\n")
    listing = run_script("set_user_state.py", "--jobs", log)
    assert listing.code == 0 and "Traceback" not in listing.err and len(listing.out.splitlines()) == 1
    undo = run_script("set_user_state.py", "--undo", log, "--config", config)
    assert undo.code == 0 and set(states(canvas, course)) == {"active"}, undo.err
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 60000)  # under the size bound, past Python's stack
    deep.chmod(0o600)
    r = run_script("set_user_state.py", "1", "S1", "inactive", "--config", deep)
    assert r.code == 2 and "nested too deep" in r.err and "Traceback" not in r.err, r.err


def test_open_creations_whose_section_moved_course_are_found_there_and_undone(canvas, tmp_path):
    store = canvas.store
    _home, merged, section, _ = crosslisted(canvas, 0)
    users = [store.add_user(f"P{i:02d}") for i in range(10)]
    csv = write_csv(tmp_path / "in.csv", "course_id,sis_user_id,role,section",
                    [(merged.id, u.sis_user_id, "student", "sis_section_id:HOME-01") for u in users])
    config = write_config(tmp_path / "c.json", canvas.url)
    log = tmp_path / "audit.jsonl"
    assert run_script("enroll_user.py", "--csv", csv, "--config", config, "--log", log).code == 0
    assert without_results(log, keep=6) == 4  # four POSTs whose answers a kill -9 lost
    store.uncrosslist(section)  # back to Home, the new enrollments with it
    undo = run_script("enroll_user.py", "--undo", log, "--config", config)
    assert undo.code == 0 and "deleted 10," in undo.err, undo.err
    assert {e.workflow_state for e in store.enrollments.values()} == {"deleted"}

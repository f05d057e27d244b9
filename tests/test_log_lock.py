"""One process per audit log: a second run or an --undo on a log in use is refused at once,
naming the running process, and sends nothing; the lock goes with the process, kill -9 too."""

import subprocess
import sys
import time

from conftest import ROOT, TOKEN, deactivation_batch, run_script, write_config

OTHER = "tok-OTHER-admin-5f2a"  # the refused run's token: its requests, if any, are its own


def setup_batch(canvas, tmp_path, n=300):
    course, csv = deactivation_batch(canvas, tmp_path, n)
    canvas.store.tokens[OTHER] = "admin"
    config = write_config(tmp_path / "c.json", canvas.url)
    other = write_config(tmp_path / "other.json", canvas.url, token=OTHER)
    log = tmp_path / "audit.jsonl"
    return course, csv, config, other, log


def start(args):
    return subprocess.Popen([sys.executable, str(ROOT / "set_user_state.py"), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_writes(canvas, k, timeout=30):
    deadline = time.monotonic() + timeout
    while len(canvas.writes()) < k and time.monotonic() < deadline:
        time.sleep(0.002)


def requests_with(canvas, token):
    return [r for r in canvas.requests if r["authorization"] == f"Bearer {token}"]


def states(canvas, course):
    return [e.workflow_state for e in canvas.store.enrollments.values() if e.course_id == course.id]


def test_undo_during_its_batch_is_refused_naming_the_batch_and_sends_nothing(canvas, tmp_path):
    course, csv, config, other, log = setup_batch(canvas, tmp_path)
    canvas.latency = (0.01, 0.02)
    batch = start(["--csv", csv, "--config", config, "--log", log, "--workers", "4"])
    wait_for_writes(canvas, 20)
    undo = run_script("set_user_state.py", "--undo", log, "--config", other)
    _out, err = batch.communicate(timeout=120)
    assert undo.code == 4 and len(undo.err.splitlines()) == 1, undo.err
    assert f"in use by another run (pid {batch.pid}, since " in undo.err
    assert f"set_user_state.py --csv {csv} --config {config} --log {log} --workers 4)" in undo.err
    assert requests_with(canvas, OTHER) == []  # not even a read
    assert batch.returncode == 0, err
    assert len(canvas.writes()) == 300 and set(states(canvas, course)) == {"inactive"}
    assert not (tmp_path / "audit.jsonl.lock").exists()  # removed by the batch as it ended


def test_the_same_batch_started_twice_runs_once(canvas, tmp_path):
    course, csv, config, other, log = setup_batch(canvas, tmp_path)
    canvas.latency = (0.01, 0.02)
    first = start(["--csv", csv, "--config", config, "--log", log, "--workers", "4"])
    wait_for_writes(canvas, 10)
    second = run_script("set_user_state.py", "--csv", csv, "--config", other, "--log", log, "--workers", "4")
    out, err = first.communicate(timeout=120)
    assert second.code == 4 and second.out == "" and f"pid {first.pid}" in second.err
    assert requests_with(canvas, OTHER) == []
    assert first.returncode == 0, err
    writes = canvas.writes()
    assert len(writes) == 300 and len({w["path"] for w in writes}) == 300  # no enrollment written twice
    assert len(out.splitlines()) == 300 and set(states(canvas, course)) == {"inactive"}


def test_a_dry_run_undo_on_a_log_in_use_is_refused_too(canvas, tmp_path):
    _course, csv, config, other, log = setup_batch(canvas, tmp_path, n=100)
    canvas.latency = (0.01, 0.02)
    batch = start(["--csv", csv, "--config", config, "--log", log, "--workers", "2"])
    wait_for_writes(canvas, 5)
    dry = run_script("set_user_state.py", "--undo", log, "--dry-run", "--config", other)
    batch.communicate(timeout=120)
    assert dry.code == 4 and f"pid {batch.pid}" in dry.err and requests_with(canvas, OTHER) == []


def test_kill_9_lets_go_of_the_log(canvas, tmp_path):
    course, csv, config, _other, log = setup_batch(canvas, tmp_path, n=100)
    canvas.latency = (0.01, 0.02)
    batch = start(["--csv", csv, "--config", config, "--log", log, "--workers", "2"])
    wait_for_writes(canvas, 10)
    batch.kill()
    batch.communicate(timeout=10)
    assert (tmp_path / "audit.jsonl.lock").exists()  # a killed run leaves its note, not its lock
    canvas.latency = (0, 0)
    rerun = run_script("set_user_state.py", "--csv", csv, "--config", config, "--log", log)
    assert rerun.code == 0, rerun.err
    assert set(states(canvas, course)) == {"inactive"}
    undo = run_script("set_user_state.py", "--undo", log, "--config", config)
    assert undo.code == 0 and set(states(canvas, course)) == {"active"}, undo.err


def test_one_user_with_the_log_of_a_running_batch_is_refused(canvas, tmp_path):
    _course, csv, config, other, log = setup_batch(canvas, tmp_path, n=100)
    canvas.store.add_user("LONE")
    canvas.latency = (0.01, 0.02)
    batch = start(["--csv", csv, "--config", config, "--log", log, "--workers", "2"])
    wait_for_writes(canvas, 5)
    one = run_script("enroll_user.py", "sis_course_id:BIG", "LONE", "student", "--log", log, "--config", other)
    batch.communicate(timeout=120)
    assert one.code == 4 and f"pid {batch.pid}" in one.err and requests_with(canvas, OTHER) == []
    assert TOKEN not in one.err


def test_a_log_that_is_where_stdout_goes_is_refused(canvas, tmp_path):
    course = canvas.store.add_course("Physics 2", "PHYS2")
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    config = write_config(tmp_path / "c.json", canvas.url)
    out = tmp_path / "out.txt"
    with open(out, "w") as stdout:
        proc = subprocess.run([sys.executable, str(ROOT / "set_user_state.py"), str(course.id), "S1", "inactive",
                               "--config", str(config), "--log", "/dev/stdout"], stdout=stdout,
                              stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 2 and "this command's output goes to" in proc.stderr, proc.stderr
    assert canvas.writes() == [] and out.read_text() == ""


def test_a_lock_file_that_is_a_symbolic_link_is_refused_and_its_target_left_alone(canvas, tmp_path):
    course = canvas.store.add_course("Physics 2", "PHYS2")
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    config = write_config(tmp_path / "c.json", canvas.url)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    log = tmp_path / "audit.jsonl"
    (tmp_path / "audit.jsonl.lock").symlink_to(victim)
    r = run_script("set_user_state.py", course.id, "S1", "inactive", "--config", config, "--log", log)
    assert r.code == 2 and "is a symbolic link" in r.err and canvas.writes() == [], r.err
    assert victim.read_text() == "precious\n"

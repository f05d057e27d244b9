"""Logs, configs, CSVs and exports that are not ordinary files on a roomy disk: devices, FIFOs,
directories, read-only folders, full disks (ulimit -f), endless input. One line, a documented
exit code, no traceback, no hang, and no Canvas write."""

import json
import os
import shlex
import subprocess
import sys

import pytest

import enroll_user
from conftest import ROOT, clean_environ, deactivation_batch, write_config, write_csv

EXIT_USAGE, EXIT_DISK = 2, 74


def shell(command, timeout=60):
    """A command line in bash, as an admin types it (ulimit, pipes); what it printed."""
    proc = subprocess.run(["bash", "-c", command], env=clean_environ(), capture_output=True, text=True,
                          timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def script(name, *args):
    return " ".join(shlex.quote(str(a)) for a in (sys.executable, ROOT / name, *args))


@pytest.fixture
def batch(canvas, tmp_path):
    """Three active students and a file that sets them inactive; the command without --log."""
    course = canvas.store.add_course("Small", "SMALL")
    for i in range(3):
        canvas.store.enroll(canvas.store.add_user(f"S{i}"), course)
    csv = write_csv(tmp_path / "in.csv", "course_id,sis_user_id,state",
                    [("sis_course_id:SMALL", f"S{i}", "inactive") for i in range(3)])
    return ["--csv", csv, "--config", write_config(tmp_path / "c.json", canvas.url)]


def one_line(proc, code, *words):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code and len(lines) == 1, proc.stderr
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize("log,words", [
    ("/dev/null", "is a device, not a file"), ("/dev/full", "is a device, not a file"),
    ("DIR", "is a directory, not a file"), ("FIFO", "is a pipe (FIFO), not a file"),
    ("MISSING/audit.jsonl", "no such folder")])
def test_a_log_that_cannot_take_records_is_refused_before_any_request(canvas, batch, tmp_path, log, words):
    (tmp_path / "DIR").mkdir()
    os.mkfifo(tmp_path / "FIFO")
    path = log if log.startswith("/") else tmp_path / log
    proc = shell(script("set_user_state.py", *batch, "--log", path), timeout=30)
    one_line(proc, EXIT_USAGE, words)
    assert canvas.requests == []


def test_dev_stdout_piped_as_the_log_is_refused_without_a_hang(canvas, batch):
    proc = shell(script("set_user_state.py", *batch, "--log", "/dev/stdout") + " | cat", timeout=30)
    one_line(proc, 0, "is a pipe (FIFO), not a file")  # bash reports cat's status
    proc = shell("set -o pipefail; " + script("set_user_state.py", *batch, "--log", "/dev/stdout") + " | cat",
                 timeout=30)
    assert proc.returncode == EXIT_USAGE and proc.stdout == "" and canvas.requests == []


def test_undo_of_a_device_or_fifo_is_refused_without_a_hang(canvas, batch, tmp_path):
    os.mkfifo(tmp_path / "FIFO")
    for path in ("/dev/zero", tmp_path / "FIFO"):
        proc = shell(script("set_user_state.py", "--undo", path, *batch[2:]), timeout=30)
        one_line(proc, EXIT_USAGE, "not a log file")
    assert canvas.requests == []


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this process cannot write: a read-only mount for root (who may write any
    folder), chmod 555 for anyone else."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("root here cannot mount a read-only folder")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_log_in_a_read_only_folder_is_refused_before_any_request(canvas, batch, read_only_folder):
    proc = shell(script("set_user_state.py", *batch, "--log", read_only_folder / "audit.jsonl"))
    one_line(proc, EXIT_USAGE, "is read-only")
    assert canvas.requests == []


def test_a_full_disk_refuses_the_log_before_any_request(canvas, batch, tmp_path):
    log = tmp_path / "audit.jsonl"
    # ulimit -f 16: no file past 16 KiB; Python ignores SIGXFSZ, so writes fail with EFBIG
    proc = shell(f"ulimit -f 16; {script('set_user_state.py', *batch, '--log', log)}")
    one_line(proc, EXIT_DISK, "ulimit -f", "audit.jsonl")
    assert canvas.requests == [] and not log.exists()


def test_a_disk_that_fills_during_a_batch_stops_it_before_a_write_without_its_record(canvas, tmp_path):
    _course, csv = deactivation_batch(canvas, tmp_path, 300)
    config = write_config(tmp_path / "c.json", canvas.url)
    log = tmp_path / "audit.jsonl"
    args = ["--csv", csv, "--config", config, "--log", log, "--workers", "4"]
    proc = shell(f"ulimit -f 96; {script('set_user_state.py', *args)}")  # room for about 200 records
    one_line(proc, EXIT_DISK, "stopped: cannot write the audit log", "File too large",
             "no change was sent without its record", "run the same command again to finish")
    records = [json.loads(line) for line in log.read_text().splitlines()]  # whole lines only
    intents = [r for r in records if r["event"] == "intent"]
    assert 0 < len(intents) < 300
    written = [int(w["path"].rsplit("/", 1)[1]) for w in canvas.writes()]
    assert sorted(written) == sorted(set(written))  # each enrollment once
    assert set(written) <= {i["enrollment_id"] for i in intents}  # never a write without its intent
    rerun = shell(script("set_user_state.py", *args))
    assert rerun.returncode == 0, rerun.stderr
    assert {e.workflow_state for e in canvas.store.enrollments.values()} == {"inactive"}
    undo = shell(script("set_user_state.py", "--undo", log, "--config", config))
    assert undo.returncode == 0 and "reactivated 300," in undo.stderr, undo.stderr
    assert {e.workflow_state for e in canvas.store.enrollments.values()} == {"active"}


@pytest.mark.parametrize("option", ["--config", "--csv"])
def test_dev_zero_as_config_or_csv_is_one_line_in_bounded_memory(canvas, batch, option):
    args = [*batch[:2], "--config", "/dev/zero"] if option == "--config" else ["--csv", "/dev/zero", *batch[2:]]
    # 1 GiB of address space: plenty for the scripts, and a read of /dev/zero to its end fails
    proc = shell(f"ulimit -v 1048576; {script('set_user_state.py', *args)}", timeout=60)
    one_line(proc, EXIT_USAGE, "/dev/zero")
    assert canvas.requests == []


def test_an_endless_config_pipe_is_one_line(canvas, batch):
    proc = shell(f"ulimit -v 1048576; {script('set_user_state.py', *batch[:2])} --config <(yes)", timeout=60)
    one_line(proc, EXIT_USAGE, "larger than 64 KiB")


def test_export_on_a_full_disk_leaves_no_file(canvas, tmp_path):
    old = canvas.store.add_course("Old", "OLD")
    canvas.store.add_course("New", "NEW")
    for i in range(200):
        canvas.store.enroll(canvas.store.add_user(f"P{i:04d}", name=f"Person {i:04d}"), old)
    config = write_config(tmp_path / "c.json", canvas.url)
    plan = tmp_path / "plan.csv"
    args = ["sis_course_id:NEW", "--from", "sis_course_id:OLD", "--dry-run", "--export", plan, "--config", config]
    proc = shell(f"ulimit -f 2; {script('enroll_user.py', *args)}")  # 2 KiB: about 40 of 200 rows
    assert proc.returncode == EXIT_DISK, proc.stderr
    assert [line for line in proc.stderr.splitlines() if "error" in line] == \
        [f"enroll_user.py: error: cannot write {plan}; nothing was written: File too large"]
    assert os.listdir(tmp_path) == ["c.json"]  # neither the plan nor its temporary file
    assert canvas.writes() == []
    proc = shell(script("enroll_user.py", *args))
    assert proc.returncode == 0 and len(plan.read_text(encoding="utf-8-sig").splitlines()) == 201
    assert oct(plan.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("target", ["/dev/full", "fifo", "folder"])
def test_export_to_something_that_is_not_a_file_says_what_it_is(canvas, run, tmp_path, target):
    path = {"fifo": tmp_path / "plan.fifo", "folder": tmp_path}.get(target, target)
    if target == "fifo":
        os.mkfifo(path)
    r = run(enroll_user, "sis_course_id:NEW", "--from", "sis_course_id:OLD", "--dry-run", "--export", path)
    assert r.code == 2 and "not a file" in r.err and "exists" not in r.err and not canvas.requests, r.err

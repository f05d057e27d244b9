"""Real processes on the consoles admins use: narrow encodings, closed pipes."""

import json
import subprocess
import sys
import time

import pytest

from conftest import ROOT, TOKEN, audit_writes, clean_environ

IDS = ["Žofia-é", "emoji-😀", "plain-1"]


@pytest.fixture
def people(canvas, course):
    for sis in IDS:
        canvas.store.enroll(canvas.store.add_user(sis), course)
    return course


def env_for(canvas, encoding):
    return {"CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN, "PYTHONIOENCODING": encoding}


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_narrow_console_escapes_what_it_cannot_show(canvas, people, tmp_path, encoding):
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,state\n" + "".join(f"{people.id},{s},inactive\n" for s in IDS),
                   encoding="utf-8")
    proc = subprocess.run([sys.executable, str(ROOT / "set_user_state.py"), "--csv", str(csv)],
                          env={**clean_environ(), **env_for(canvas, encoding)}, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode(encoding)  # every byte is in the console's encoding
    assert out.count("deactivated") == 3 and "\\U0001f600" in out and b"Traceback" not in proc.stderr
    assert all(canvas.store.states_of(s) == ["inactive"] for s in IDS)
    proc = subprocess.run([sys.executable, str(ROOT / "set_user_state.py"), str(people.id), IDS[1], "active",
                           "--json"], env={**clean_environ(), **env_for(canvas, encoding)}, capture_output=True)
    assert proc.returncode == 0 and proc.stderr == b""
    [obj] = [json.loads(line) for line in proc.stdout.decode(encoding).splitlines()]
    assert obj["sis_user_id"] == IDS[1] and obj["action"] == "reactivated"


def test_closed_pipe_stops_the_batch_like_ctrl_c(canvas, course, tmp_path):
    for i in range(300):
        canvas.store.enroll(canvas.store.add_user(f"Q{i:03d}"), course)
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,state\n" + "".join(f"{course.id},Q{i:03d},inactive\n" for i in range(300)))
    canvas.latency = (0.01, 0.02)
    args = [sys.executable, str(ROOT / "set_user_state.py"), "--csv", str(csv), "--json",
            "--log", str(tmp_path / "audit.jsonl")]
    env = {**clean_environ(), "CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # what `| head -1` does
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert json.loads(first)["action"] == "deactivated"
    assert proc.returncode == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err and err.count("\n") == 1
    assert "stdout was closed" in err and "run the same command again" in err
    changed = {e.id for e in canvas.store.enrollments.values() if e.workflow_state == "inactive"}
    assert 0 < len(changed) < 300
    assert {w["enrollment_id"] for w in audit_writes(tmp_path / "audit.jsonl")} == changed
    canvas.latency = (0, 0)
    time.sleep(0.1)
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0 and f"deactivated {300 - len(changed)}," in rerun.stderr


def test_progress_counts_rows_done_fits_the_terminal_and_is_cleared(canvas, course, tmp_path):
    import fcntl
    import os
    import pty
    import re
    import struct
    import termios
    for i in range(40):
        canvas.store.enroll(canvas.store.add_user(f"W{i:03d}"), course)
    csv = tmp_path / "in.csv"
    csv.write_text("course_id,sis_user_id,state\n" + "".join(f"{course.id},W{i:03d},inactive\n" for i in range(40)))
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))  # 40 columns
    env = {**clean_environ(), "CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, str(ROOT / "set_user_state.py"), "--csv", str(csv)],
                            env=env, stdout=follower, stderr=follower)  # one terminal for both
    proc.wait(timeout=60)
    os.close(follower)
    data = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(leader)
    screen = data.decode().replace("\r\n", "\n")
    assert proc.returncode == 0
    progress = re.findall(r"\r(row [^\r\n\x1b]*)\x1b\[K", screen)
    assert progress and all(len(p) <= 39 for p in progress)
    assert progress[-1].startswith("row 40/40")
    # every result line and the summary start at the left edge, never after a progress text
    for line in screen.split("\n"):
        visible = re.sub(r".*\r", "", re.sub(r"\x1b\[K", "", line))
        assert not visible.startswith("row ") or not line.strip().endswith("inactive")
    assert "\r\x1b[Ksummary: deactivated 40" in screen

"""First contact: a Python without requests gets one line, not a traceback; hints name the
command as it was run (python -m, a path from another folder)."""

import os
import subprocess
import sys
import venv

import pytest

from conftest import ROOT, TOKEN, clean_environ


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """A virtualenv with nothing installed, not even pip: no requests."""
    where = tmp_path_factory.mktemp("bare")
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    assert subprocess.run([python, "-c", "import requests"], capture_output=True).returncode != 0
    return python


@pytest.mark.parametrize("script", ["enroll_user.py", "set_user_state.py"])
def test_a_python_without_requests_gets_one_line_and_exit_2(bare_python, script):
    proc = subprocess.run([bare_python, ROOT / script, "1", "S1", "student"], capture_output=True, text=True,
                          env=clean_environ(), timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith(f"{script}: error: ") and "-m pip install requests" in proc.stderr


def run_as(args, cwd, env=None):
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**clean_environ(), **(env or {})}, timeout=60)
    assert TOKEN not in proc.stdout + proc.stderr
    return proc


def test_python_dash_m_names_itself_in_hints(canvas, course):
    canvas.store.enroll(canvas.store.add_user("S1"), course, state="deleted")
    env = {"CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN}
    proc = run_as(["-m", "set_user_state", course.id, "S1", "active"], ROOT, env)
    assert proc.returncode == 1 and proc.stderr.rstrip().endswith("enroll the user again with python -m enroll_user")
    proc = run_as(["-m", "enroll_user", "--help"], ROOT)
    assert "    python -m enroll_user sis_course_id:PHYS2-2027 S1001 student" in proc.stdout


def test_a_script_run_by_path_from_another_folder_names_that_path(canvas, course, tmp_path):
    canvas.store.enroll(canvas.store.add_user("S1"), course, state="inactive")
    env = {"CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN}
    path = os.path.relpath(ROOT / "enroll_user.py", tmp_path)  # ../../.../enroll_user.py
    proc = run_as([path, course.id, "S1", "student"], tmp_path, env)
    other = os.path.join(os.path.dirname(path), "set_user_state.py")
    assert proc.returncode == 0 and f"to reactivate: python {other} {course.id} S1 active" in proc.stdout

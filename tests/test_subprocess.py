"""Both scripts as real processes: exit codes, streams, and the demo itself."""

import subprocess
import sys

from conftest import ROOT, TOKEN, clean_environ, run_script


def env_for(canvas):
    return {"CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN}


def test_enroll_deactivate_reactivate_as_processes(canvas, course):
    canvas.store.add_user("S1")
    env = env_for(canvas)
    r = run_script("enroll_user.py", "sis_course_id:PHYS2", "S1", "student", env=env)
    assert (r.code, r.err) == (0, "") and "enrolled User S1 (S1)" in r.out
    r = run_script("set_user_state.py", course.id, "S1", "inactive", env=env)
    assert (r.code, r.err) == (0, "") and "active -> inactive" in r.out
    r = run_script("set_user_state.py", course.id, "S1", "active", env=env)
    assert (r.code, r.err) == (0, "") and "inactive -> active" in r.out
    assert canvas.store.states_of("S1") == ["active"]


def test_errors_are_one_line_without_traceback(canvas, course):
    env = env_for(canvas)
    for args, code in [(("enroll_user.py", course.id, "ghost", "student"), 1),
                       (("set_user_state.py", "999", "S1", "inactive"), 1),
                       (("set_user_state.py", course.id, "S1", "inactive", "--timeout", "x"), 2)]:
        r = run_script(*args, env=env)
        assert r.code == code and "Traceback" not in r.err and r.out == ""
    r = run_script("enroll_user.py", course.id, "S1", "student", env={**env, "CANVAS_TOKEN": "wrong"})
    assert r.code == 1 and r.err.count("\n") == 1 and "Invalid access token" in r.err


def test_no_configuration_is_exit_2(tmp_path):
    r = run_script("set_user_state.py", "1", "S1", "inactive")
    assert r.code == 2 and "CANVAS_URL" in r.err and "Traceback" not in r.err


def test_help_and_version():
    for script in ("enroll_user.py", "set_user_state.py"):
        r = run_script(script, "--help")
        assert r.code == 0 and "--dry-run" in r.out and "--config" in r.out


def test_nothing_runs_at_import():
    code = "import enroll_user, set_user_state, canvas_common; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout == "ok\n" and proc.stderr == ""


def test_demo_runs_as_documented():
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "demo.py")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "deactivated: active -> inactive" in proc.stdout
    assert "all steps as expected" in proc.stdout


def test_a_sis_id_starting_with_a_dash_gets_a_hint(canvas, course):
    r = run_script("set_user_state.py", course.id, "-S1001", "inactive", env=env_for(canvas))
    assert r.code == 2 and "goes after --" in r.err and r.err.count("\n") == 1


def test_help_names_the_csv_columns():
    r = run_script("enroll_user.py", "--help")
    assert "course_id, sis_user_id, role [, section, state, limit_to_section]" in " ".join(r.out.split())


def test_the_standin_can_be_served_by_hand():
    import json
    import socket
    import urllib.request
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "standin.py"), "--port", str(port),
                             "--latency-ms", "50"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/courses/sis_course_id:PHYS2-2027",
                                         headers={"Authorization": "Bearer demo-token"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["name"].startswith("Physics 2")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_hints_quote_for_the_platform_shell(monkeypatch):
    import canvas_commands
    assert canvas_commands.shell_quote("a b'c") == "'a b'\"'\"'c'"
    monkeypatch.setattr(canvas_commands.os, "name", "nt")
    assert canvas_commands.shell_quote("sis_course_id:PHYS 2") == '"sis_course_id:PHYS 2"'
    # cmd.exe acts on these outside double quotes: S&1 would run a command named 1
    for value in ("S&1", "A|B", "x^y", "100%", "(a)"):
        assert canvas_commands.shell_quote(value) == f'"{value}"'
    assert canvas_commands.shell_quote("S1001") == "S1001"


def test_csv_from_a_pipe_that_cannot_seek(canvas, course):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    proc = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" "{ROOT / "set_user_state.py"}" --csv /dev/stdin < '
                       f'<(printf "course_id,sis_user_id,state\\n{course.id},S1,inactive\\n")'],
        env={**clean_environ(), **env_for(canvas)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert canvas.store.states_of("S1") == ["inactive"]

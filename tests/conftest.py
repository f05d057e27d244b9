"""One stand-in Canvas per test run; each test gets it empty, with one admin token."""

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from standin import StandinCanvas

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "tok-SECRET-7d1e0c9b"


@pytest.fixture(scope="session")
def server():
    canvas = StandinCanvas().start()
    yield canvas
    canvas.stop()


@pytest.fixture
def canvas(server):
    server.reset()
    server.store.tokens[TOKEN] = "admin"
    return server


# What requests and these scripts read from the environment; each test sets its own.
NETWORK_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                     "requests_ca_bundle", "curl_ca_bundle", "ssl_cert_file")


def foreign(name: str) -> bool:
    return name.startswith("CANVAS_") or name.lower() in NETWORK_VARIABLES


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if foreign(name):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray ./config.json


def write_csv(path, header, rows):
    """A CSV file of header and rows at path (a pathlib.Path); its name as a str."""
    path.write_text("\n".join([header] + [",".join(map(str, r)) for r in rows]) + "\n")
    return str(path)


def crosslisted(canvas, n, prefix="X"):
    """A section of course Home cross-listed into course Merged, n students in it."""
    store = canvas.store
    home, merged = store.add_course("Home", "HOME"), store.add_course("Merged", "MERGED")
    section = store.add_section(home, "HOME-01", "Home section 01")
    store.crosslist(section, merged)
    users = [store.add_user(f"{prefix}{i:04d}") for i in range(n)]
    for user in users:
        store.enroll(user, merged, section=section)
    return home, merged, section, users


def deactivation_batch(canvas, tmp_path, n, sis_course="BIG", prefix="B"):
    """(course, csv): n active students of a new course and a file that sets them inactive."""
    course = canvas.store.add_course(sis_course.title(), sis_course)
    for i in range(n):
        canvas.store.enroll(canvas.store.add_user(f"{prefix}{i:04d}"), course)
    csv = write_csv(tmp_path / "big.csv", "course_id,sis_user_id,state",
                    [(f"sis_course_id:{sis_course}", f"{prefix}{i:04d}", "inactive") for i in range(n)])
    return course, csv


def write_config(path, host, token=TOKEN, mode=0o600):
    path.write_text(json.dumps({"canvas": {"host": host, "access_token": token}}))
    path.chmod(mode)
    return str(path)


@pytest.fixture
def config(tmp_path, canvas):
    return write_config(tmp_path / "canvas.json", canvas.url)


@pytest.fixture
def course(canvas):
    return canvas.store.add_course("Physics 2", "PHYS2", sections=("PHYS2-LAB",))


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return [json.loads(line) for line in self.out.splitlines()]


@pytest.fixture
def run(capsys, config):
    """Run a script's main([...]) in process with --config; check the token never shows."""
    def _run(module, *args, use_config=True):
        argv = [str(a) for a in args] + (["--config", config] if use_config else [])
        try:
            code = module.main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        out, err = capsys.readouterr()
        assert TOKEN not in out + err
        return Result(code, out, err)
    return _run


def clean_environ() -> dict:
    """This process's environment without CANVAS_*, proxy and CA variables: for subprocesses."""
    return {k: v for k, v in os.environ.items() if not foreign(k)}


def run_script(script, *args, env=None, timeout=60):
    """Run a script as a real subprocess with only the given CANVAS_* environment."""
    proc = subprocess.run([sys.executable, str(ROOT / script), *map(str, args)],
                          env={**clean_environ(), **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)
    assert TOKEN not in proc.stdout + proc.stderr
    return Result(proc.returncode, proc.stdout, proc.stderr)


# CI runs the property tests on a fixed seed so a run is reproducible; locally
# each run explores new examples.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, max_examples=150, deadline=None)
settings.register_profile("hunt", max_examples=2000, deadline=None)  # --hypothesis-profile=hunt
if os.environ.get("CI"):
    settings.load_profile("ci")


def audit_records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


WRITES = ("created", "reopened", "deactivated", "reactivated", "deleted", "concluded")


def audit_writes(path):
    """The writes an audit log records as made: each intent merged with its result."""
    records = audit_records(path)
    intents = {(r["run"], r["seq"]): r for r in records if r["event"] == "intent"}
    made = []
    for r in records:
        if r["event"] == "result" and r["action"] in WRITES:
            made.append({**intents[(r.get("of_run") or r["run"], r["seq"])], **r, "event": "write"})
    return made


def changes_counted(text):
    """The changes a summary or stop line counts, whatever their kinds (created, deactivated, ...)."""
    kinds = "created|reopened|deactivated|reactivated|deleted|concluded"
    return sum(int(n) for n in re.findall(rf"\b(?:{kinds}) (\d+)", text))

"""Installed or run from a checkout: what the scripts call themselves, and what pyproject.toml installs.

.ci/run installs the package into an empty virtualenv and runs both commands from its PATH;
these tests cover the names the scripts print either way, in process.
"""

import sys

import pytest

import enroll_user
import set_user_state
from conftest import ROOT


@pytest.fixture
def installed(monkeypatch):
    """As pip's console script starts it: sys.argv[0] is the command on PATH."""
    def as_command(name):
        monkeypatch.setattr(sys, "argv", [f"/home/admin/.local/bin/{name}"])
    return as_command


def examples(help_text: str) -> list[str]:
    """The commands in the examples that end --help."""
    tail = help_text.split("\nexamples:\n", 1)[1]
    return [line.strip() for line in tail.splitlines() if line.startswith("    ")]


@pytest.mark.parametrize("module, command, third", [(enroll_user, "enroll_user", "student"),
                                                    (set_user_state, "set_user_state", "inactive")])
def test_help_ends_with_three_examples_named_as_run(run, installed, module, command, third):
    r = run(module, "--help", use_config=False)
    assert r.code == 0 and r.out.startswith(f"usage: {command}.py [options] COURSE SIS_ID")
    shown = examples(r.out)
    assert [e.split()[:2] for e in shown] == [["python", f"{command}.py"]] * len(shown)
    assert f"python {command}.py sis_course_id:PHYS2-2027 S1001 {third}" in shown
    assert any("--csv" in e for e in shown) and shown[-1].endswith("--undo enrollments.audit.jsonl")

    installed(command)
    r = run(module, "--help", use_config=False)
    assert r.out.startswith(f"usage: {command} [options] COURSE SIS_ID")
    assert [e.split()[0] for e in examples(r.out)] == [command] * len(shown)
    r = run(module, "1", "S1", third, use_config=False)
    assert r.code == 2 and r.err.startswith(f"{command}: error: no Canvas host or token configured")


def test_the_reactivation_hint_names_the_command_as_run(canvas, course, run, installed):
    canvas.store.enroll(canvas.store.add_user("S1"), course, state="inactive")
    r = run(enroll_user, course.id, "S1", "student")
    assert r.code == 0 and f"to reactivate: python set_user_state.py {course.id} S1 active" in r.out
    installed("enroll_user.exe")  # as on Windows
    r = run(enroll_user, course.id, "S1", "student")
    assert f"to reactivate: set_user_state {course.id} S1 active" in r.out


def test_an_ended_enrollment_names_enroll_user_as_run(canvas, course, run, installed):
    canvas.store.enroll(canvas.store.add_user("S1"), course, state="deleted")
    installed("set_user_state")
    r = run(set_user_state, course.id, "S1", "active")
    assert r.code == 1 and r.err.startswith("set_user_state: error: ")
    assert r.err.rstrip().endswith("enroll the user again with enroll_user")


def test_pyproject_installs_every_module():
    """A new top-level module or package must be listed in pyproject.toml, or the installed
    commands cannot import it (.ci/run's install check would fail too, later)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = pyproject["tool"]["setuptools"]
    modules = {p.stem for p in ROOT.glob("*.py")}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert set(setuptools["py-modules"]) == modules
    assert set(setuptools["packages"]) == packages
    assert pyproject["project"]["scripts"] == {"enroll_user": "enroll_user:main",
                                               "set_user_state": "set_user_state:main"}


def test_the_readme_shows_the_install():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pipx install ." in readme and "uv tool install ." in readme
    assert "pipx install git+" in readme and "uv tool install git+" in readme

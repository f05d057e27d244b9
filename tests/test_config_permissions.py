"""A config file others can change is refused, as ssh refuses such a key (whoever writes it
decides where the token goes); one others can only read is a warning (POSIX)."""

import pytest

import canvas_common as cc
from conftest import run_script, write_config


@pytest.fixture
def one_user(canvas, course):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    return [course.id, "S1", "inactive"]


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602, 0o664])
def test_a_config_others_can_change_is_refused_with_the_chmod(canvas, one_user, tmp_path, mode):
    path = write_config(tmp_path / "shared.json", canvas.url, mode=mode)
    r = run_script("set_user_state.py", *one_user, "--config", path)
    assert r.code == 2 and r.out == "" and len(r.err.splitlines()) == 1
    assert f"can be changed by other users (mode {mode:03o})" in r.err and r.err.strip().endswith(f"chmod 600 {path}")
    assert canvas.requests == []
    assert canvas.store.states_of("S1") == ["active"]


def test_a_config_others_can_read_works_with_a_warning(canvas, one_user, tmp_path):
    path = write_config(tmp_path / "open.json", canvas.url, mode=0o644)
    r = run_script("set_user_state.py", *one_user, "--config", path)
    assert r.code == 0 and f"warning: config file {path} can be read by other users" in r.err
    assert canvas.store.states_of("S1") == ["inactive"]


def test_the_chmod_it_gives_fixes_it(canvas, one_user, tmp_path):
    path = write_config(tmp_path / "my config.json", canvas.url, mode=0o666)
    r = run_script("set_user_state.py", *one_user, "--config", path)
    assert r.code == 2 and f"chmod 600 '{path}'" in r.err  # quoted as the shell needs it
    (tmp_path / "my config.json").chmod(0o600)
    r = run_script("set_user_state.py", *one_user, "--config", path)
    assert r.code == 0 and r.err == ""


def test_modes_mean_nothing_on_windows(canvas, tmp_path, monkeypatch):
    path = write_config(tmp_path / "shared.json", canvas.url, mode=0o666)
    monkeypatch.setattr(cc.os, "name", "nt")
    assert cc.load_config(path).base_url == canvas.url

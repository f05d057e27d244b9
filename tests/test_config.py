"""Where host and token come from, and what is refused."""

import json

import pytest

import canvas_common as cc
import set_user_state
from conftest import TOKEN, run_script, write_config


@pytest.mark.parametrize("host,expected", [
    ("canvas.example.edu", "https://canvas.example.edu"),
    ("https://canvas.example.edu/", "https://canvas.example.edu"),
    ("https://canvas.example.edu:8443/api/v1/", "https://canvas.example.edu:8443"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://localhost:3000/api/v1", "http://localhost:3000"),
    ("http://[::1]:3000", "http://[::1]:3000"),
])
def test_host_forms(host, expected):
    assert cc.normalize_base_url(host) == expected


@pytest.mark.parametrize("host,words", [
    ("http://canvas.example.edu", "refusing plain http"),
    ("http://10.0.0.5:8080", "refusing plain http"),
    ("https://canvas.example.edu/courses", "has a path"),
    ("ftp://canvas.example.edu", "not an http"),
    ("https://canvas.example.edu:99999", "not a valid"),
    ("canvas example.edu", "not a valid host name"),
    ("https://user:pw@canvas.example.edu", "user name"),
])
def test_bad_hosts_are_refused(host, words):
    with pytest.raises(cc.ConfigError, match=words):
        cc.normalize_base_url(host)


def test_environment_is_used_when_no_config_file(canvas, course, run, monkeypatch):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    monkeypatch.setenv("CANVAS_URL", canvas.url)
    monkeypatch.setenv("CANVAS_TOKEN", TOKEN)
    r = run(set_user_state, course.id, "S1", "inactive", use_config=False)
    assert r.code == 0 and canvas.store.states_of("S1") == ["inactive"]


def test_config_file_beats_environment(canvas, course, run, monkeypatch):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    monkeypatch.setenv("CANVAS_URL", "https://elsewhere.example.edu")
    monkeypatch.setenv("CANVAS_TOKEN", "other-token")
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 0
    assert {c["authorization"] for c in canvas.requests} == {f"Bearer {TOKEN}"}


def test_half_environment_never_borrows_from_config_json(canvas, course, run, monkeypatch, tmp_path):
    write_config(tmp_path / "config.json", canvas.url)  # the cwd's config.json
    monkeypatch.setenv("CANVAS_URL", canvas.url)
    r = run(set_user_state, course.id, "S1", "inactive", use_config=False)
    assert r.code == 2 and "no access token in the environment" in r.err
    assert canvas.requests == []


def test_config_json_in_current_directory(canvas, course, run, tmp_path):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    write_config(tmp_path / "config.json", canvas.url)
    r = run(set_user_state, course.id, "S1", "inactive", use_config=False)
    assert r.code == 0 and r.err == ""


def test_nothing_configured_names_both_ways(canvas, run):
    r = run(set_user_state, "1", "S1", "inactive", use_config=False)
    assert r.code == 2 and "CANVAS_URL and CANVAS_TOKEN" in r.err and "config.json" in r.err


@pytest.mark.parametrize("content,words", [
    ("{not json", "not valid JSON"),
    ('["canvas"]', 'no "canvas" object'),
    ('{"canvas": {"host": "x.edu"}}', "no access token"),
    ('{"canvas": {"host": "x.edu", "access_token": "  "}}', "no access token"),
    ('{"canvas": {"access_token": "abc"}}', "no Canvas host"),
    ('{"canvas": {"host": "x.edu", "access_token": "ab\\ncd"}}', "characters a Canvas token cannot have"),
    ('{"canvas": {"host": "x.edu", "access_token": "t\u00f6k"}}', "characters a Canvas token cannot have"),
    ('{"canvas": {"host": "x.edu", "access_token": 12345}}', "no access token"),
    ('{"canvas": "x.edu"}', 'no "canvas" object'),
    ('{"canvas": {"host": "http://x.edu", "access_token": "abc"}}', "refusing plain http"),
])
def test_bad_config_files(canvas, run, tmp_path, content, words):
    path = tmp_path / "bad.json"
    path.write_text(content)
    path.chmod(0o600)
    r = run(set_user_state, "1", "S1", "inactive", "--config", path, use_config=False)
    assert r.code == 2 and words in r.err and r.err.count("\n") == 1
    assert canvas.requests == []


def test_missing_and_unreadable_config(canvas, run, tmp_path):
    r = run(set_user_state, "1", "S1", "inactive", "--config", tmp_path / "nope.json", use_config=False)
    assert r.code == 2 and "does not exist" in r.err
    r = run(set_user_state, "1", "S1", "inactive", "--config", tmp_path, use_config=False)
    assert r.code == 2 and "cannot read config file" in r.err


def test_world_readable_config_works_with_a_warning(canvas, course, run, tmp_path):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    path = write_config(tmp_path / "open.json", canvas.url, mode=0o644)
    r = run(set_user_state, course.id, "S1", "inactive", "--config", path, use_config=False)
    assert r.code == 0 and f"chmod 600 {path}" in r.err and "warning" in r.err


def test_subprocess_with_environment(canvas, course):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    r = run_script("set_user_state.py", course.id, "S1", "inactive", "--json",
                   env={"CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN})
    assert r.code == 0 and r.err == "" and json.loads(r.out)["action"] == "deactivated"


def test_no_chmod_warning_where_posix_modes_mean_nothing(canvas, tmp_path, monkeypatch, capsys):
    path = write_config(tmp_path / "shared.json", canvas.url, mode=0o644)
    cc.load_config(path)
    assert "chmod 600" in capsys.readouterr().err
    monkeypatch.setattr(cc.os, "name", "nt")  # Windows: modes mean nothing there
    cc.load_config(path)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("host", ["https://canvas.example.edu/?access_token={t}",
                                  "https://admin:{t}@canvas.example.edu", "canvas.example.edu/#{t}"])
def test_a_host_pasted_with_the_token_in_it_is_refused_without_showing_it(tmp_path, host):
    token = "7~" + "q" * 60
    config = write_config(tmp_path / "c.json", host.format(t=token), token=token)
    r = run_script("set_user_state.py", "1", "S1", "inactive", "--config", config, "-v")
    assert r.code == 2 and "canvas.example.edu" in r.err and token not in r.err + r.out, r.err

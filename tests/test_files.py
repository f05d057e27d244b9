"""Files as Windows and Excel write them: config encodings, CSV dialects, exact cells."""

import json

import pytest

import enroll_user
import set_user_state
from conftest import TOKEN


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_config_written_on_windows_is_read(canvas, course, run, tmp_path, encoding):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    path = tmp_path / "config.json"
    path.write_bytes(json.dumps({"canvas": {"host": canvas.url, "access_token": TOKEN}}).encode(encoding))
    path.chmod(0o600)
    r = run(set_user_state, course.id, "S1", "inactive", "--config", path, use_config=False)
    assert r.code == 0 and r.err == "", r.err


@pytest.mark.parametrize("delimiter,newline", [(";", "\r\n"), ("\t", "\n"), (",", "\r"), (";", "\r")])
def test_excel_dialects_and_line_endings(canvas, course, run, tmp_path, delimiter, newline):
    for i in range(3):
        canvas.store.enroll(canvas.store.add_user(f"S,{i}"), course)
    lines = [delimiter.join(["Course ID", "SIS User ID", "State", "Comment"])] + [
        delimiter.join([str(course.id), f'"S,{i}"', "inactive", "moved; left"]) for i in range(3)]
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + newline.join(lines) + newline).encode("utf-8"))
    r = run(set_user_state, "--csv", path)
    assert r.code == 0 and "deactivated 3" in r.err, r.err
    assert all(canvas.store.states_of(f"S,{i}") == ["inactive"] for i in range(3))


def test_a_file_that_is_not_utf8_says_how_to_save_it(canvas, run, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("course_id;sis_user_id;role\n1;Žofia;student\n".encode("cp1252"))
    r = run(enroll_user, "--csv", path)
    assert r.code == 2 and "line 2: not UTF-8" in r.err and "CSV UTF-8" in r.err and canvas.requests == []


def test_cells_mean_exactly_what_the_command_line_means(canvas, course, run, tmp_path):
    canvas.store.enroll(canvas.store.add_user("LEAD1"), course)
    path = tmp_path / "spaces.csv"
    path.write_text(f"course_id,sis_user_id,state\n{course.id}, LEAD1,inactive\n")
    r = run(set_user_state, "--csv", path)
    assert r.code == 1 and "' LEAD1'" in r.err and "leading or trailing spaces" in r.err
    assert canvas.store.states_of("LEAD1") == ["active"]
    r = run(set_user_state, course.id, " LEAD1", "inactive")
    assert r.code == 1 and "leading or trailing spaces" in r.err


def test_a_malformed_course_refuses_the_whole_file(canvas, course, run, tmp_path):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    path = tmp_path / "course.csv"
    path.write_text(f"course_id,sis_user_id,state\n{course.id},S1,inactive\nPHYS2,S1,inactive\n")
    r = run(set_user_state, "--csv", path)
    assert r.code == 2 and "line 3: course must be" in r.err and canvas.requests == []


def test_both_scripts_word_an_unknown_sis_id_the_same(canvas, course, run):
    a = run(enroll_user, course.id, "ghost", "student").err.split(": error: ")[1]
    b = run(set_user_state, course.id, "ghost", "inactive").err.split(": error: ")[1]
    c = run(enroll_user, course.id, "ghost", "student", "--dry-run").err.split(": error: ")[1]
    assert a == b == c == "Canvas has no user with SIS ID 'ghost'; check it (SIS IDs are case-sensitive)\n"

"""Canvas's answers and failures: retries, pagination, errors, secrets."""

import socket

import pytest

import enroll_user
import set_user_state
from conftest import TOKEN, write_config
from standin import Fault, proxy_error, server_error, throttled


@pytest.fixture
def enrolled(canvas, course):
    return canvas.store.enroll(canvas.store.add_user("S1"), course)


@pytest.mark.parametrize("status", [403, 429])
def test_throttling_is_retried_for_reads_and_writes(canvas, course, enrolled, run, status):
    canvas.fault(throttled(status, method="GET", times=2))
    canvas.fault(throttled(status, method="DELETE", times=2))
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 0 and r.err == ""
    assert canvas.store.states_of("S1") == ["inactive"]
    assert len(canvas.calls("DELETE")) == 3


@pytest.mark.parametrize("status", [403, 429])
def test_throttled_after_all_retries(canvas, course, enrolled, run, status):
    canvas.fault(throttled(status, times=99))
    r = run(set_user_state, course.id, "S1", "inactive", "--retries", "2")
    assert r.code == 1 and "rate-limiting" in r.err and len(canvas.requests) == 3


def test_permission_403_is_not_retried(canvas, course, enrolled, run):
    from conftest import TOKEN
    canvas.store.tokens[TOKEN] = "student"
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 1 and "not permitted" in r.err and "not authorized" in r.err
    assert len(canvas.requests) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_proxy_errors_on_reads_are_retried(canvas, course, enrolled, run, status):
    canvas.fault(proxy_error(status, method="GET", times=2))
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 0 and canvas.store.states_of("S1") == ["inactive"]


def test_proxy_error_page_after_retries_is_one_line(canvas, course, enrolled, run):
    canvas.fault(proxy_error(503, times=99))
    r = run(set_user_state, course.id, "S1", "inactive", "--retries", "1")
    assert r.code == 1 and r.err.count("\n") == 1
    assert "HTTP 503 (Service Unavailable)" in r.err and "<html" not in r.err


def test_server_error_shows_report_id(canvas, course, enrolled, run):
    canvas.fault(server_error(report_id=777, method="GET"))
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 1 and "error report 777" in r.err and len(canvas.requests) == 1


@pytest.mark.parametrize("kind,message", [
    ("expired", "Expired access token"), ("revoked", "Revoked access token"),
])
def test_bad_tokens(canvas, course, enrolled, run, kind, message):
    canvas.store.tokens[TOKEN] = kind
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 1 and message in r.err and "new token" in r.err


def test_unknown_token(canvas, course, enrolled, run):
    del canvas.store.tokens[TOKEN]
    r = run(enroll_user, course.id, "S1", "student")
    assert r.code == 1 and "Invalid access token" in r.err


def test_pagination_follows_opaque_next_links(canvas, course, run):
    canvas.max_per_page = 2
    user = canvas.store.add_user("S1")
    for _ in range(5):
        canvas.store.enroll(user, course, section=canvas.store.add_section(course))
    r = run(set_user_state, course.id, "S1", "inactive", "--json")
    assert r.code == 0 and len(r.json()) == 5
    pages = [c["query"].get("page") for c in canvas.calls("GET")]
    assert pages[0] is None and all(p.startswith("bookmark:") for p in pages[1:3])
    assert canvas.store.states_of("S1") == ["inactive"] * 5


def test_next_link_to_another_host_is_refused(canvas, course, enrolled, run):
    canvas.max_per_page = 1
    canvas.store.enroll(canvas.store.users[enrolled.user_id], course,
                        section=canvas.store.add_section(course))
    canvas.fault(Fault("next_host", method="GET", location="http://127.0.0.2:9"))
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 1 and "refusing to send the token" in r.err
    assert canvas.writes() == []


def test_redirect_is_not_followed(canvas, course, enrolled, run):
    canvas.fault(Fault("redirect", location="https://evil.example.com"))
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 1 and "redirect to https://evil.example.com" in r.err
    assert len(canvas.requests) == 1


@pytest.mark.parametrize("fault,words", [
    (Fault("not_json", method="GET", times=9), "a page that is not Canvas's (HTML) answered"),
    (Fault("truncated", method="GET", times=9), "broke"),
    (Fault("reset", method="GET", times=9), "broke"),
])
def test_broken_answers_are_one_line(canvas, course, enrolled, run, fault, words):
    canvas.fault(fault)
    r = run(set_user_state, course.id, "S1", "inactive", "--retries", "1")
    assert r.code == 1 and words in r.err and r.err.count("\n") == 1
    assert canvas.store.states_of("S1") == ["active"]


def test_list_answer_of_the_wrong_shape(canvas, course, enrolled, run):
    canvas.fault(Fault("status", method="GET", status=200, body={"enrollments": []}))
    r = run(set_user_state, course.id, "S1", "inactive")
    assert r.code == 1 and "not a list" in r.err


def test_silent_server_is_bounded_by_timeout(canvas, course, enrolled, run):
    canvas.fault(Fault("delay", method="GET", seconds=3, times=9))
    r = run(set_user_state, course.id, "S1", "inactive", "--timeout", "0.3", "--retries", "1")
    assert r.code == 1 and "gave no answer in 2 tries over" in r.err and "each allowed 0.3 s" in r.err
    assert "--timeout" in r.err


def test_connection_refused(run, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    path = write_config(tmp_path / "dead.json", f"http://127.0.0.1:{port}")
    r = run(set_user_state, "1", "S1", "inactive", "--config", path, "--retries", "1", use_config=False)
    assert r.code == 1 and "connection was refused" in r.err


def test_dns_failure(run, tmp_path):
    path = write_config(tmp_path / "dns.json", "canvas.nonexistent-host.invalid")
    r = run(set_user_state, "1", "S1", "inactive", "--config", path, "--retries", "0", use_config=False)
    assert r.code == 1 and "does not resolve" in r.err


def test_verbose_shows_requests_without_the_token(canvas, course, enrolled, run):
    r = run(set_user_state, course.id, "S1", "inactive", "-v")
    assert r.code == 0
    lines = r.err.splitlines()
    assert len(lines) == 5 and lines[0].startswith("GET http://127.0.0.1")  # + the course, its sections
    assert lines[-1].startswith("DELETE") and "-> 200" in lines[-1]


def test_server_echoing_the_token_is_redacted(canvas, course, enrolled, run):
    canvas.fault(Fault("status", status=400, body={"message": f"bad request from {TOKEN}"}))
    r = run(set_user_state, course.id, "S1", "inactive", "--json")
    assert r.code == 1 and "[REDACTED]" in r.err  # run() asserts the token is absent


def test_token_goes_only_as_bearer_header(canvas, course, enrolled, run):
    run(set_user_state, course.id, "S1", "inactive")
    for call in canvas.requests:
        assert call["authorization"] == f"Bearer {TOKEN}" and call["cookie"] is None
        assert TOKEN not in call["raw"] and TOKEN not in str(call["form"])


def test_a_name_that_does_not_resolve_is_not_retried(run, tmp_path, monkeypatch):
    import socket as socket_module
    real, asked = socket_module.getaddrinfo, []

    def counting(host, *args, **kwargs):
        if host == "canvas.nonexistent-host.invalid":
            asked.append(host)
        return real(host, *args, **kwargs)
    monkeypatch.setattr(socket_module, "getaddrinfo", counting)
    path = write_config(tmp_path / "dns.json", "canvas.nonexistent-host.invalid")
    r = run(set_user_state, "1", "S1", "inactive", "--config", path, "--retries", "3", use_config=False)
    assert r.code == 1 and "does not resolve" in r.err and len(asked) == 1

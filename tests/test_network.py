"""Admins' networks for real: a CONNECT proxy, a TLS Canvas with a certificate
from a test CA (as a TLS-inspecting proxy would present), CA options, ~/.netrc."""

import json
import ssl

import pytest
import trustme

from conftest import TOKEN, run_script, write_config
from proxy import ConnectProxy


@pytest.fixture(scope="session")
def test_ca():
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_server(server, test_ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return server.start_tls(context)


@pytest.fixture
def ca_file(test_ca, tmp_path):
    path = tmp_path / "corporate-ca.pem"
    test_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def proxy():
    p = ConnectProxy().start()
    yield p
    p.stop()


@pytest.fixture
def enrolled(canvas, course, tls_server):
    return canvas.store.enroll(canvas.store.add_user("S1"), course)


def tls_env(canvas, **extra):
    return {"CANVAS_URL": canvas.tls_url, "CANVAS_TOKEN": TOKEN, **extra}


def test_https_through_a_connect_proxy_never_shows_the_token(canvas, course, enrolled, proxy, ca_file):
    r = run_script("set_user_state.py", course.id, "S1", "inactive", "--ca-bundle", ca_file,
                   env=tls_env(canvas, HTTPS_PROXY=proxy.url))
    assert r.code == 0, r.err
    assert enrolled.workflow_state == "inactive"
    port = canvas.tls_url.rsplit(":", 1)[1]
    assert proxy.heads and all(h.startswith(f"CONNECT localhost:{port} HTTP/1.") for h in proxy.heads)
    assert TOKEN.encode() not in proxy.seen and b"Bearer" not in proxy.seen


def test_no_proxy_is_honoured(canvas, course, enrolled, proxy, ca_file):
    r = run_script("set_user_state.py", course.id, "S1", "inactive", "--ca-bundle", ca_file,
                   env=tls_env(canvas, HTTPS_PROXY=proxy.url, NO_PROXY="localhost"))
    assert r.code == 0 and proxy.heads == []


def test_plain_http_to_loopback_never_goes_through_a_proxy(canvas, course, proxy):
    canvas.store.enroll(canvas.store.add_user("S1"), course)
    r = run_script("set_user_state.py", course.id, "S1", "inactive",
                   env={"CANVAS_URL": canvas.url, "CANVAS_TOKEN": TOKEN, "HTTP_PROXY": proxy.url,
                        "http_proxy": proxy.url})
    assert r.code == 0 and proxy.heads == [] and TOKEN.encode() not in proxy.seen


def test_unknown_ca_is_a_certificate_problem_said_at_once(canvas, course, enrolled):
    r = run_script("set_user_state.py", course.id, "S1", "inactive", "-v", env=tls_env(canvas))
    attempts = [line for line in r.err.splitlines() if "-> SSLError" in line]
    assert r.code == 1 and len(attempts) == 1 and canvas.requests == []  # tried once, not retried
    line = r.err.splitlines()[-1]
    assert "certificate problem" in line and "--ca-bundle" in line and "Traceback" not in r.err


def test_a_bare_host_whose_server_speaks_plain_http_is_said_as_such(canvas, course, enrolled, tmp_path):
    """A host without a scheme means https; a server answering plain HTTP there is no certificate problem."""
    port = canvas.url.rsplit(":", 1)[1]
    config = write_config(tmp_path / "bare.json", f"127.0.0.1:{port}")
    r = run_script("set_user_state.py", course.id, "S1", "inactive", "--config", config, "-v")
    attempts = [line for line in r.err.splitlines() if "-> SSLError" in line]
    assert r.code == 1 and len(attempts) == 1 and "Traceback" not in r.err
    line = r.err.splitlines()[-1]
    assert "answers plain HTTP, not HTTPS" in line and f"http://127.0.0.1:{port}" in line
    assert "check the port" in line and "certificate" not in line
    assert canvas.store.states_of("S1") == ["active"]


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"])
def test_ca_files_named_in_the_environment(canvas, course, enrolled, ca_file, variable):
    r = run_script("set_user_state.py", course.id, "S1", "inactive", env=tls_env(canvas, **{variable: ca_file}))
    assert r.code == 0, r.err


def test_ca_bundle_in_the_config_file(canvas, course, enrolled, ca_file, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"canvas": {"host": canvas.tls_url, "access_token": TOKEN,
                                             "ca_bundle": ca_file}}))
    config.chmod(0o600)
    r = run_script("set_user_state.py", course.id, "S1", "inactive", "--config", config)
    assert r.code == 0, r.err
    r = run_script("set_user_state.py", course.id, "S1", "active", "--config", config,
                   "--ca-bundle", tmp_path / "missing.pem")
    assert r.code == 2 and "missing.pem" in r.err and "does not exist" in r.err


def test_netrc_never_replaces_the_token(canvas, course, enrolled, ca_file, tmp_path):
    (tmp_path / ".netrc").write_text("machine localhost login someone password other-secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    r = run_script("set_user_state.py", course.id, "S1", "inactive", "--ca-bundle", ca_file,
                   env=tls_env(canvas, HOME=str(tmp_path), NETRC=str(tmp_path / ".netrc")))
    assert r.code == 0, r.err
    assert {c["authorization"] for c in canvas.requests} == {f"Bearer {TOKEN}"}

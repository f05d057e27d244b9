"""Proxies on 127.0.0.1 for tests: a forward proxy (CONNECT tunnels, and a record of
every byte clients sent it, so a test can check what a proxy could see), and a proxy in
front of Canvas that may answer with its own pages (a block page, a sign-in page)."""

from __future__ import annotations

import http.client
import select
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit


class LocalServer:
    """A server of these tests on 127.0.0.1 (self.server, set by the subclass), served from a
    daemon thread."""

    server: socketserver.TCPServer

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


class ConnectProxy(LocalServer):
    def __init__(self):
        self.heads: list[str] = []  # the first line of every request
        self.seen = bytearray()  # everything clients sent, tunnelled bytes included
        self.lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy.handle(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    def record(self, data: bytes):
        with self.lock:
            self.seen += data

    def handle(self, client: socket.socket):
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(65536)
            if not data:
                return
            head += data
        self.record(head)
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        with self.lock:
            self.heads.append(line)
        method, target, _ = line.split(" ", 2)
        if method != "CONNECT":  # a plain request through the proxy: refuse, but it was seen
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.relay(client, upstream)

    def relay(self, client, upstream):
        peers = {client: upstream, upstream: client}
        try:
            while True:
                ready, _, _ = select.select(list(peers), [], [], 10)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        self.record(data)
                    peers[sock].sendall(data)
        finally:
            upstream.close()


class FrontProxy(LocalServer):
    """A proxy in front of a Canvas, as a TLS-inspecting gateway stands in an admin's network:
    the client takes it for Canvas (its URL is the config's host) and it passes requests on.

    answer(method, path, writes) may put the proxy's own page in Canvas's place: it returns
    None to pass the answer through, or (forward, status, headers, body): forward says whether
    the request reaches Canvas first (a block page after the write was passed on) or never
    does (a sign-in page). writes counts the writes seen before this one. Canvas's own
    links are rewritten to the proxy's address, as a reverse proxy does."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.answer: Callable[[str, str, int], tuple | None] = lambda method, path, writes: None
        self.writes = 0  # writes the proxy was sent
        self.own = 0  # answers it made itself
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy.handle(self, "GET")

            def do_POST(self):
                proxy.handle(self, "POST")

            def do_PUT(self):
                proxy.handle(self, "PUT")

            def do_DELETE(self):
                proxy.handle(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    def handle(self, handler: BaseHTTPRequestHandler, method: str):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            writes = self.writes
            self.writes += method != "GET"
        own = self.answer(method, handler.path, writes)
        if own is None or own[0]:
            status, headers, data = self.forward(handler, method, body)
        if own is not None:
            with self.lock:
                self.own += 1
            _, status, headers, text = own
            data = text.encode()
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def forward(self, handler: BaseHTTPRequestHandler, method: str, body: bytes) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=30)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(method, handler.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            kept = {k: v for k, v in resp.getheaders()
                    if k.lower() not in ("content-length", "connection", "transfer-encoding")}
        finally:
            conn.close()
        upstream = f"{self.upstream.scheme}://{self.upstream.netloc}"
        if "Link" in kept:
            kept["Link"] = kept["Link"].replace(upstream, self.url)
        return resp.status, kept, data


def block_page(host: str = "webfilter.example.edu") -> tuple[int, dict, str]:
    """A web filter's block page, as Squid-based gateways answer: 403, HTML, Via naming it."""
    return 403, {"Content-Type": "text/html", "Via": f"1.1 {host} (squid/5.7)", "Server": "squid/5.7"}, (
        "<html><head><title>ERROR: The requested URL could not be retrieved</title></head>"
        "<body><h1>Access denied</h1><p>Access control configuration prevents your request "
        f"from being allowed at this time.</p><p>Generated by {host} (squid/5.7)</p></body></html>")


def sign_in_page() -> tuple[int, dict, str]:
    """A single sign-on gateway's page, answered with 200 as such gateways do."""
    return 200, {"Content-Type": "text/html; charset=utf-8"}, (
        "<!DOCTYPE html><html><head><title>Sign in - Example University</title></head><body>"
        "<form method=\"post\" action=\"/idp/profile/SAML2/Redirect/SSO\">"
        "<input name=\"j_username\"><input type=\"password\" name=\"j_password\">"
        "<button>Sign in</button></form></body></html>")

"""A forward proxy on 127.0.0.1 for tests: CONNECT tunnels, and a record of
every byte clients sent it, so a test can check what a proxy could see."""

from __future__ import annotations

import select
import socket
import socketserver
import threading


class ConnectProxy:
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

    def start(self) -> ConnectProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

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

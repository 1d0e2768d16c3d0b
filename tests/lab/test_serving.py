"""The lab's HTTP servers end their connections when they stop, as a node going down does (lab/serving.py):
a client's idle kept connection is closed, and a request being served still gets its answer, then its
connection closes."""
from __future__ import annotations

import http.client
import select
import threading

from lab.serving import LabHTTPServer, LabRequestHandler
from orchestrator.clients.keepalive import dropped


def _server(release: threading.Event, arrived: threading.Event) -> LabHTTPServer:
    class Handler(LabRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/slow":
                arrived.set()
                release.wait(10)
            body = self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = LabHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve, daemon=True).start()
    return srv


def _get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    return conn.getresponse().read()


def test_stop_closes_idle_connections_at_once_and_answers_the_request_being_served():
    release, arrived = threading.Event(), threading.Event()
    srv = _server(release, arrived)
    port = srv.server_address[1]
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    busy = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        assert _get(idle, "/quick") == b"/quick"
        assert not dropped(idle.sock)  # kept open between requests
        answer: list[bytes] = []
        slow = threading.Thread(target=lambda: answer.append(_get(busy, "/slow")))
        slow.start()
        assert arrived.wait(5)
        srv.stop()
        assert select.select([idle.sock], [], [], 5)[0] and idle.sock.recv(1) == b""  # closed, no answer left
        release.set()
        slow.join(5)
        assert answer == [b"/slow"]
        busy.sock.settimeout(5)
        assert busy.sock.recv(1) == b""  # then that connection closes too
    finally:
        release.set()
        idle.close()
        busy.close()

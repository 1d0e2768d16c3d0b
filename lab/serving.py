"""The lab's HTTP servers (the REST twins, the control API): threaded, stopped at once, and idle when idle.

Stopped at once means no connection left either: a client keeps an idle HTTP/1.1 connection for its reads
(orchestrator/clients/keepalive.py), and a rebooting or powered-off appliance keeps none of them. `stop()`
closes every connection that waits for its next request before it returns (the client sees the EOF before
it sends another request on it), and ends the reading side of one whose request is being served: that
request still gets its answer, then the connection closes. A handler says which of the two it is in by
being a `LabRequestHandler`.

Why not socketserver's serve_forever: it wakes every poll_interval to look for a shutdown() request. The lab
ran it at 0.05 s (a rebooting node's REST twin must stop listening at once: connection refused), so every
server woke 20 times a second: ~4 ms of CPU a second for an idle two-site lab's five twins, on every lab of
the suite for its whole life. This loop sleeps until a connection comes or stop() writes to a wake-up pipe.
"""
from __future__ import annotations

import os
import selectors
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LabRequestHandler(BaseHTTPRequestHandler):
    """Tells its `LabHTTPServer` when its connection waits for the next request and when one arrived."""

    server: "LabHTTPServer"

    def handle_one_request(self) -> None:
        self.server.waiting(self.connection, True)
        super().handle_one_request()

    def parse_request(self) -> bool:
        self.server.waiting(self.connection, False)  # a request line arrived: it is served to the end
        return super().parse_request()


class LabHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type) -> None:
        super().__init__(address, handler)
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._done = threading.Event()
        self._open: dict[socket.socket, bool] = {}  # connection -> waits for its next request
        self._open_lock = threading.Lock()

    def serve(self) -> None:
        """Accept connections until stop() (run on the server's own thread; each request gets a thread)."""
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(self, selectors.EVENT_READ)
                sel.register(self._wake_r, selectors.EVENT_READ)
                while not self._stopping:
                    ready = sel.select()
                    if not self._stopping and any(key.fileobj is self for key, _ in ready):
                        self._handle_request_noblock()
        finally:
            self._done.set()

    def process_request(self, request: socket.socket, client_address: object) -> None:
        with self._open_lock:
            self._open[request] = True
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: socket.socket, client_address: object) -> None:
        if self._stopping:  # a connection stop() ended under a read (a TLS handshake): not the lab's error
            return
        super().handle_error(request, client_address)

    def waiting(self, conn: socket.socket, idle: bool) -> None:
        """`conn` waits for its next request (`idle`), or serves one; a stopped server closes it at once."""
        with self._open_lock:
            if conn not in self._open:
                return
            self._open[conn] = idle
            if idle and self._stopping:
                _end(conn, socket.SHUT_RDWR)

    def stop(self) -> None:
        """No new connection from now on (refused once the socket is closed); requests already being served
        finish on their own threads, and no connection carries another request."""
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._done.wait()
        self.server_close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        with self._open_lock:
            for conn, idle in self._open.items():
                _end(conn, socket.SHUT_RDWR if idle else socket.SHUT_RD)


def _end(conn: socket.socket, how: int) -> None:
    """Shut a served connection down on the plain socket (a TLS socket's own shutdown would drop its TLS
    state under a reply still being written); its thread then sees the end and closes it."""
    try:
        socket.socket.shutdown(conn, how)
    except OSError:
        pass  # already closed by its thread

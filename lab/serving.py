"""The lab's HTTP servers (the REST twins, the control API): threaded, stopped at once, and idle when idle.

Stopped at once means no connection left either: a client keeps an idle HTTP/1.1 connection for its reads
(orchestrator/clients/keepalive.py), and a rebooting or powered-off appliance keeps none of them. `stop()`
ends every connection's reading side, so an idle one is closed by its thread (the client sees the EOF
before it sends its next request) and a request being served still gets its answer, then the connection
closes.

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
from http.server import ThreadingHTTPServer


class LabHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type) -> None:
        super().__init__(address, handler)
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._done = threading.Event()
        self._open: set[socket.socket] = set()
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
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

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
            still_open = list(self._open)
        for conn in still_open:
            try:  # the plain socket's shutdown: a TLS socket's own would drop its TLS state under a reply
                socket.socket.shutdown(conn, socket.SHUT_RD)
            except OSError:
                pass  # already closed by its thread

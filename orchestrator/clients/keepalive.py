"""One kept HTTP/1.1 connection per client, for reads (GET) and the login before them (and the logout).

Why: every REST call opened its own TLS connection: a handshake and a certificate check on both ends
(~2.8 ms of CPU client and server together) for answers of a few hundred bytes. A look at the domain asks
each node eight or more things in a row, a job's poll asks the same thing every second.

Why reads only, and why a kept connection is never re-sent on silently: what a lost reply, a reset or a
refused connection means must not change. A call that changes a node (a backup, restore or install start)
still goes on a fresh connection closed after it, exactly as before: its reset stays a reset of *that*
request (`Ambiguous`). The login and the logout change no node and share the kept connection: a lost reply
to a login is asked again like a read's (at worst a session is left to expire), one to a logout changes
nothing (the session ends either way); the login is a client's first request, so the reads after it share
its connection (a look at a node: one TLS handshake, not two), and the logout its last. A read on a kept
connection that fails is classified and counted like any other failed read: the retry policy asks again,
and the next attempt starts on a fresh connection, since a connection is never kept after a failure, nor
after an answer that will be asked again (a 503, a garbage answer: the client drops it; behind a load
balancer a fresh connection may reach another backend).

What can make a kept connection fail that a fresh one would not: the server closing it while it sat idle
(its keep-alive timeout, a reboot). That is seen *before* the request is sent (the socket is readable: an
EOF, a reset, or bytes nobody asked for) and the connection is then replaced by a fresh one, uncounted and
unlogged: the node was not asked yet, so the fresh connection's outcome (refused, 503, an answer) is what
the node says now. A connection idle longer than `IDLE_S` is not reused at all (servers close idle
connections after a few seconds; Apache's default is 5 s), so that a server closing it while the request
is on its way stays rare; when it happens it is one counted retry, as a lost connection is.
"""
from __future__ import annotations

import contextlib
import http.client
import select
import socket
import ssl
import threading
import time
from typing import Callable, Iterator

IDLE_S = 2.0


def dropped(sock: object) -> bool:
    """True when a kept connection must not carry another request: no real socket (closed by http.client
    after a `Connection: close`, or a recording's stand-in), or readable while idle (the server closed or
    reset it, or sent something unasked)."""
    if not isinstance(sock, socket.socket) or sock.fileno() < 0:
        return True
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class KeptConnection:
    """The one idle connection a client keeps for its reads, with how many connections it opened."""

    def __init__(self, connect: Callable[[], http.client.HTTPConnection], *, idle: float = IDLE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._connect = connect
        self._idle = idle
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: http.client.HTTPConnection | None = None
        self._since = 0.0
        self.opened = 0

    @contextlib.contextmanager
    def connection(self, *, keep: bool) -> Iterator[http.client.HTTPConnection]:
        """A connection for one request. `keep` (a read): the kept connection if it is still sound, and the
        one used is kept again if the block ends normally (its answer read to the end). Otherwise a fresh
        connection, closed after. A failure always closes the connection used."""
        conn = self._take() if keep else None
        if conn is None:
            conn = self._fresh()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        if keep:
            self._give_back(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close the idle connection (a client's session ends; a look at the domain is over)."""
        with self._lock:
            conn, self._kept = self._kept, None
        if conn is not None:
            conn.close()

    def _fresh(self) -> http.client.HTTPConnection:
        with self._lock:
            self.opened += 1
        return self._connect()

    def _take(self) -> http.client.HTTPConnection | None:
        with self._lock:
            conn, self._kept = self._kept, None
            since = self._since
        if conn is None:
            return None
        if self._clock() - since > self._idle or dropped(conn.sock):
            conn.close()
            return None
        conn.sock.settimeout(conn.timeout)  # a fresh connection's timeout, not the last read's remainder
        return conn

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        if dropped(conn.sock):  # the server said `Connection: close`, or the answer left bytes behind
            conn.close()
            return
        with self._lock:
            spare, self._kept, self._since = self._kept, conn, self._clock()
        if spare is not None:  # another thread's read kept one meanwhile: keep the newest
            spare.close()

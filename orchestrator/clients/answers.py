"""Reading a node's HTTP answer within bounds: a size cap and a total deadline per request.

Why one place: both clients read answers over `http.client` (the appliance REST client directly, pyVmomi
through its SOAP stub), and neither may read a 10 MB body whole nor wait forever on a body that trickles in
at 1 KB/s (a socket timeout only bounds the wait for *one* byte). `bounded_response` makes a factory of
`http.client.HTTPResponse`s that refuse an announced or actual body over the cap, stop reading at
the deadline, and refuse a compressed body (no client asks for one: 64 MB of gzip can expand to gigabytes
past the cap); a connection uses it through `response_class`. Both failures are `BadAnswer` naming the node
and the request: transient for the retry policy, so a GET is asked again and a POST becomes ambiguous; an
answer cut by the deadline (`SlowAnswer`) is not asked again (it already took the whole deadline).
"""
from __future__ import annotations

import contextlib
import functools
import http.client
import time
from typing import Any, Callable, Iterator

from orchestrator.clients import headers
from orchestrator.clients.retry import BadAnswer, SlowAnswer

headers.install()  # every answer's header block, the SOAP stub's included, read without the email parser

PIECE = 64 * 1024


class BoundedResponse(http.client.HTTPResponse):
    """An answer read in single receives, each within what is left of the request's deadline."""

    def __init__(self, sock: Any, *args: Any, node: str = "", where: str = "", max_body: int = 4 * 1024 * 1024,
                 total: float = 120.0, per_read: float = 30.0, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.node, self.where, self.max_body, self.total, self.per_read = node, where, max_body, total, per_read
        self._socket = sock
        self._end = time.monotonic() + self.total
        self._seen = 0

    def begin(self) -> None:
        with self._deadline():
            super().begin()
        announced = self.getheader("Content-Length", "") or ""
        if announced.isdigit() and int(announced) > self.max_body:
            raise self._bad(f"answer of {int(announced)} bytes refused (at most {self.max_body})")
        encoding = (self.getheader("Content-Encoding", "") or "identity").strip().lower()
        if encoding != "identity":  # never asked for: a compressed body would expand past the cap unread
            raise self._bad(f"answer is {encoding}-compressed, which was not asked for (its size cannot be bounded)")

    def read(self, amt: int | None = None) -> bytes:
        if amt is None or amt < 0:
            return b"".join(iter(lambda: self.read(PIECE), b""))
        if self.fp is None:  # read to the end: its socket may be closed already (an HTTP/1.0 answer)
            return b""
        with self._deadline():
            data = super().read1(amt)  # one receive: a trickle cannot hold a read past the deadline
        if self.fp is not None and (not data or self.length == 0):
            self._close_conn()  # as read() does at the end: the connection may carry the next request
        self._seen += len(data)
        if self._seen > self.max_body:
            raise self._bad(f"answer exceeds {self.max_body} bytes: refused")
        return data

    @contextlib.contextmanager
    def _deadline(self) -> Iterator[None]:
        """Bound the next receive by the per-read timeout and what is left of the request's deadline; a
        receive cut short by the deadline (not by the per-read timeout) is the deadline's BadAnswer."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise self._late()
        if hasattr(self._socket, "settimeout"):
            self._socket.settimeout(min(self.per_read, left))
        try:
            yield
        except TimeoutError:
            if left < self.per_read:
                raise self._late() from None
            raise

    def _late(self) -> SlowAnswer:
        return self._bad(f"no complete answer within {self.total:g}s (a body trickling in, or a stalled proxy)",
                         SlowAnswer)

    def _bad(self, text: str, kind: type[BadAnswer] = BadAnswer) -> BadAnswer:
        self.close()
        return kind(text, node=self.node, what=self.where)


def bounded_response(node: str, where: str, *, max_body: int, total: float,
                     per_read: float) -> Callable[..., BoundedResponse]:
    """What builds a connection's answers (set it as its `response_class`): BoundedResponses for one node and
    request (or endpoint). A factory, not a class per request: a subclass of HTTPResponse cost ~25 us of CPU
    to create, per request, and each one stayed in its ABC's subclass caches."""
    return functools.partial(BoundedResponse, node=node, where=where, max_body=max_body, total=total,
                             per_read=per_read)

"""orchestrator/clients/headers.py reads a header block exactly as `http.client` does with the email parser:
the same headers in the same order, the same payload, defects and type, for plain blocks (its own path)
and for everything else (handed to the stdlib)."""
from __future__ import annotations

import http.client
import io

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.clients import headers

STDLIB = headers.email.parser.Parser


def _stdlib(raw: bytes) -> http.client.HTTPMessage:
    lines = http.client._read_headers(io.BytesIO(raw))
    return STDLIB(_class=http.client.HTTPMessage).parsestr(b"".join(lines).decode("iso-8859-1"))


def _seen(msg: http.client.HTTPMessage) -> tuple:
    payload = msg.get_payload()
    return (msg.items(), payload if isinstance(payload, str) else repr(type(payload)),
            [type(d) for d in msg.defects], msg.is_multipart(), type(msg))


def _same(raw: bytes) -> None:
    assert _seen(headers.parse_headers(io.BytesIO(raw))) == _seen(_stdlib(raw)), raw


EXAMPLES = [
    b"Content-Type: application/json\r\nContent-Length: 12\r\n\r\nbody after the block",
    b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX:   spaced  \r\n\r\n", b"A: b\n\n", b"A:\r\n\r\n", b"A:b:c\r\n\r\n",
    b"X-Folded: a\r\n b\r\n\r\n", b"A: b\r\n\tc\r\n\r\n", b"no colon line\r\nA: b\r\n\r\n", b"A b: c\r\n\r\n",
    b":empty name\r\n\r\n", b"From nobody\r\nA: b\r\n\r\n", b"A: \xe9t\xe9\r\n\r\n", b"", b"\r\n", b"A: b",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n", b"content-type:  Message/rfc822\r\n\r\n",
]


def test_every_kind_of_block_reads_as_the_stdlib_reads_it():
    for raw in EXAMPLES:
        _same(raw)


LINE = st.one_of(
    st.tuples(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=0, max_size=8),
              st.sampled_from([":", ": ", ":\t", " :", ""]),
              st.text(st.characters(min_codepoint=1, max_codepoint=255, blacklist_characters="\r\n"), max_size=12),
              st.sampled_from(["\r\n", "\n"])).map("".join),
    st.sampled_from([" folded\r\n", "\tfolded\n", "Content-Type: multipart/x\r\n", "Set-Cookie: s=1\r\n"]))


@given(st.lists(LINE, max_size=6), st.sampled_from(["\r\n", "\n", ""]))
def test_any_block_reads_as_the_stdlib_reads_it(lines, end):
    _same("".join(lines).encode("iso-8859-1") + end.encode())


def test_http_client_reads_headers_here_once_installed():
    headers.install()
    assert http.client.parse_headers is headers.parse_headers

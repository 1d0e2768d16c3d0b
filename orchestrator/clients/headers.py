"""HTTP answer headers read without the email package's feed parser, for the common well-formed case.

Why: `http.client` parses every answer's header block with `email.parser` (a general MIME parser: regexes,
a line buffer, a policy object), ~100 us of CPU per answer; vcwave reads thousands of answers a command
(every REST call and every SOAP call of pyVmomi goes through `http.client`), and measured on the lab it was a
tenth of the product's own CPU. A block of plain `Name: value` lines becomes the very same `HTTPMessage`
(`Message.set_raw`, as compat32's `header_source_parse` splits them); anything else - a folded line, a line
without a name, a character a header name may not have - goes to the stdlib parser, which decides and
records its defects as before. The limits on line length and header count stay `http.client`'s own.
"""
from __future__ import annotations

import email.parser
import http.client
import re
from typing import Any

_PLAIN = re.compile(r"[!-9;-~]+:[^\r\n]*\r?\n")  # a header name (printable, no colon), its value, one line
# a multipart or message/* type makes the email parser read a body too: its business
_COMPOSITE = re.compile(r"content-type:[ \t]*(multipart|message)/", re.I)


def parse_headers(fp: Any, _class: type = http.client.HTTPMessage) -> http.client.HTTPMessage:
    """`http.client.parse_headers`, same result; plain blocks without the email parser."""
    lines = http.client._read_headers(fp)  # the stdlib's reader: its line and count limits
    body = lines[:-1] if lines and lines[-1] in (b"\r\n", b"\n", b"") else lines
    texts = [line.decode("iso-8859-1") for line in body]
    if not all(_PLAIN.fullmatch(t) for t in texts) or any(_COMPOSITE.match(t) for t in texts):
        return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
    msg = _class()
    for t in texts:
        name, value = t.split(":", 1)
        msg.set_raw(name, value.lstrip(" \t").rstrip("\r\n"))
    msg.set_payload("")
    return msg


def install() -> None:
    """Make `http.client` (and so pyVmomi, and the appliance client) read headers here; idempotent."""
    http.client.parse_headers = parse_headers

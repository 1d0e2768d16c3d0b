"""Record the cassettes afresh from the lab and find none of the session ids and passwords the wire carried.

The witness reads the RAW traffic (before vcwave's scrubbing) with its own patterns, so a scrubber that
registers the wrong value (e.g. `"<id>; HttpOnly"` instead of the bare id) cannot hide its own leak.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

import lab.record as record
from orchestrator import scrub

RAW_PATTERNS = (
    re.compile(r'vmware_soap_session="?([^";,\s]+)'),            # SOAP cookie (request and response)
    re.compile(r"<key>([^<]+)</key>\s*<userName>"),               # vim25 UserSession key (Login answer)
    re.compile(r"session\[([^\]]+)\]"),                           # vcsim session-scoped object ids
    re.compile(r'^\{"value":\s*"([0-9a-f]{16,})"\}$'),            # appliance session answer
    re.compile(r"<password[^>]*>([^<]+)</password>"),              # SOAP Login password
)


class Witness:
    """Secret values seen on the wire, gathered from raw requests and responses."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def text(self, text: str) -> None:
        for rx in RAW_PATTERNS:
            self.seen.update(m.group(1) for m in rx.finditer(text))

    def headers(self, headers: dict) -> None:
        for name, value in headers.items():
            for v in value if isinstance(value, list) else [value]:
                v = str(v)
                if name.lower() == "vmware-api-session-id":
                    self.seen.add(v)
                elif name.lower() == "authorization" and v.startswith("Basic "):
                    self.seen.add(base64.b64decode(v[6:]).decode().split(":", 1)[1])
                else:
                    self.text(v)

    def body(self, body: Any) -> None:
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        if isinstance(body, str):
            self.text(body)


@pytest.fixture
def witness(monkeypatch) -> Witness:
    w = Witness()
    scrub_request, scrub_response = record.before_record_request, record.before_record_response

    def request(req: Any) -> Any:
        w.headers(dict(req.headers))
        w.body(req.body)
        return scrub_request(req)

    def response(resp: dict) -> dict:
        w.headers(resp.get("headers") or {})
        w.body((resp.get("body") or {}).get("string"))
        return scrub_response(resp)

    monkeypatch.setattr(record, "before_record_request", request)
    monkeypatch.setattr(record, "before_record_response", response)
    return w


def test_fresh_recording_holds_no_session_id_or_password(tmp_path: Path, witness: Witness, vcsim_binary) -> None:
    counts = record.record_all(tmp_path / "cassettes")
    assert set(counts) == set(record.SCENARIOS) and all(counts.values())
    seen = witness.seen - {scrub.MASK}  # vcrpy hands some requests over twice, the second time scrubbed
    assert len(seen) >= 8, f"the witness saw too little traffic to prove anything: {sorted(seen)}"
    written = {p.name: p.read_text() for p in (tmp_path / "cassettes").glob("*.yaml")}
    assert len(written) == len(record.SCENARIOS)
    leaks = {name: sorted(v for v in seen if v in text) for name, text in written.items()}
    assert not any(leaks.values()), f"secrets seen on the wire reached the cassettes: {leaks}"

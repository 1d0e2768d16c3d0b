"""Redaction of secrets from anything that leaves the process: log events, error texts, journal, report, cassettes.

It sits below the clients, the engine, the log and the report (all of them use it); which key names are
secret is decided once, in `orchestrator.core.secret_keys`.

Why one module: a password must never reach a log line, a journal entry, a report or a recorded cassette,
whatever path it took (an exception text, a SOAP body, an HTTP header). Two mechanisms:

- a registry of known secret values (every `orchestrator.secrets.Secret` registers itself on creation), whose
  occurrences are replaced wherever they appear;
- patterns for secrets we never saw as values: SOAP `<password ...>` elements, vim25 `UserSession` keys
  and vcsim's `session[...]` object ids, `vmware_soap_session` cookies, `vmware-api-session-id` headers,
  `Authorization` headers, JSON password/session fields.
"""
from __future__ import annotations

import re
import threading
from typing import Any

from orchestrator.core.secret_keys import is_secret_key

MASK = "***"

_lock = threading.Lock()
_known: set[str] = set()


_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # SOAP Login: <password versionId="6.5">***</password> (attributes, any namespace prefix)
    (re.compile(r"(<(?:\w+:)?password\b[^>]*>)(.*?)(</(?:\w+:)?password>)", re.S | re.I), r"\1" + MASK + r"\3"),
    # SOAP cookie, in Cookie and Set-Cookie headers, quoted or not
    (re.compile(r'(vmware_soap_session=)("[^"]*"|[^;,\s]*)', re.I), r"\1" + MASK),
    # vim25 UserSession (Login / currentSession answers): <key>id</key><userName>...
    (re.compile(r"(<key>)([^<]+)(</key>\s*<userName>)"), r"\1" + MASK + r"\3"),
    # vcsim session-scoped managed object ids: session[<session id>]<object id>
    (re.compile(r"(session\[)([^\]]+)(\])"), r"\1" + MASK + r"\3"),
    # appliance session header as text
    (re.compile(r"(vmware-api-session-id[\"']?\s*[:=]\s*[\"']?)([^\"'\s,;}]+)", re.I), r"\1" + MASK),
    # Authorization header as text
    (re.compile(r"(Authorization[\"']?\s*[:=]\s*[\"']?(?:Basic|Bearer|SIGN)\s+)([^\"'\s,;}]+)", re.I),
     r"\1" + MASK),
    # JSON fields: "location_password": "x", "backup_password": "x", "sso_admin_user_password": "x", ...
    (re.compile(r'("(?:[\w.\-]*password|[\w.\-]*passwd|[\w.\-]*secret|pwd)"\s*:\s*)"(?:[^"\\]|\\.)*"', re.I),
     r'\1"' + MASK + '"'),
    # vapi map encoding: {"key": "vmdir.password", "value": "x"}
    (re.compile(r'("key"\s*:\s*"[^"]*password[^"]*"\s*,\s*"value"\s*:\s*)"(?:[^"\\]|\\.)*"', re.I),
     r'\1"' + MASK + '"'),
]


def register(value: str) -> None:
    """Remember a secret value so every later `scrub_text` redacts it. Very short values are ignored."""
    if isinstance(value, str) and len(value) >= 4:
        with _lock:
            _known.add(value)


def forget_all() -> None:
    """Tests only: clear the registry."""
    with _lock:
        _known.clear()


def known_count() -> int:
    with _lock:
        return len(_known)


def scrub_text(text: str) -> str:
    """Redact registered secret values and known secret patterns from a string."""
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    for rx, repl in _PATTERNS:
        text = rx.sub(repl, text)
    return text


def scrub_bytes(data: bytes) -> bytes:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return scrub_text(text).encode("utf-8")


def scrub_value(value: Any, key: str | None = None, _depth: int = 0) -> Any:
    """Recursively redact a value: secret-named keys become '***', strings are scrubbed, Secrets stay masked."""
    if _depth > 20:
        return value
    if key is not None and is_secret_key(key) and value not in (None, "", "-"):
        return MASK
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bytes):
        return scrub_bytes(value)
    if isinstance(value, dict):
        return {k: scrub_value(v, k if isinstance(k, str) else None, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        # vapi map encoding [{"key": "x.password", "value": ...}]
        out = []
        for item in value:
            if isinstance(item, dict) and is_secret_key(str(item.get("key", ""))) and "value" in item:
                item = {**item, "value": MASK}
            out.append(scrub_value(item, None, _depth + 1))
        return type(value)(out) if isinstance(value, tuple) else out
    if type(value).__name__ == "Secret":
        return MASK
    if isinstance(value, BaseException):
        return scrub_text(f"{type(value).__name__}: {value}")
    return value


def scrub_event(event: dict) -> dict:
    """A structlog-style processor body: scrub every key of an event dict."""
    return {k: scrub_value(v, k) for k, v in event.items()}

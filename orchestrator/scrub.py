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
from typing import Any, Iterable, Sequence

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


PREFIX = 4  # the shortest value registered: every known value is found through its first PREFIX characters
FEW = 32  # up to this many known values, trying each in the text is cheaper than looking them up
# Derived from _known on each register, replaced (never changed in place) so readers need no lock: every value
# longest first while there are FEW (None beyond: sorting them all on every register was quadratic in a
# long-lived process); the values by their first PREFIX characters; and those sharing a character with MASK.
_longest_first: tuple[str, ...] | None = ()
_by_prefix: dict[str, tuple[str, ...]] = {}
_mask_like: tuple[str, ...] = ()


def _longest(values: Iterable[str]) -> list[str]:
    return sorted(values, key=lambda v: (-len(v), v))


def register(value: str) -> None:
    """Remember a secret value so every later `scrub_text` redacts it. Very short values are ignored."""
    global _longest_first, _by_prefix, _mask_like
    if isinstance(value, str) and len(value) >= PREFIX:
        with _lock:
            if value in _known:
                return
            _known.add(value)
            _longest_first = tuple(_longest(_known)) if len(_known) <= FEW else None
            if set(value) & set(MASK):
                _mask_like = (*_mask_like, value)
            else:
                key = value[:PREFIX]
                _by_prefix = {**_by_prefix, key: (*_by_prefix.get(key, ()), value)}


def forget_all() -> None:
    """Tests only: clear the registry."""
    global _longest_first, _by_prefix, _mask_like
    with _lock:
        _known.clear()
        _longest_first, _by_prefix, _mask_like = (), {}, ()


def known_count() -> int:
    with _lock:
        return len(_known)


def _candidates(text: str) -> Sequence[str]:
    """The known values that may occur in `text`, longest first.

    Why: a process that lives long (a rehearsal, a test worker) registers hundreds of secrets, and sorting
    and trying all of them for every string of every log event cost more than the rest of the logging
    (measured: 0.24 ms for a 60-character text with 2000 known, 100 ms for a 20 kB SOAP body). Beyond FEW
    values the text is looked up by its PREFIX-character windows instead (20 us, 2 ms). A value absent from the
    text can appear after an earlier replacement only by overlapping the MASK put there, so it shares a
    character with MASK: those values are always candidates, and the redaction is exactly the one of trying
    every value in turn."""
    every = _longest_first
    if every is not None:
        return every
    index = _by_prefix
    found = {v for i in range(len(text) - PREFIX + 1) for v in index.get(text[i:i + PREFIX], ())}
    return _longest(found.union(_mask_like))


def scrub_text(text: str) -> str:
    """Redact registered secret values and known secret patterns from a string."""
    if not text:
        return text
    for value in _candidates(text):
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

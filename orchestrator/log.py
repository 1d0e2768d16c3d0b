"""Structured logging (structlog): every event carries domain, wave, node and step, and no secret.

`configure(json=False)` renders for a human console; `configure(json=True)` writes JSON lines (the rehearsal
and CI logs). A scrub processor (orchestrator.scrub) runs on every event, after exceptions are
formatted, so no password, session id or SOAP cookie reaches a log line whatever the caller passed.
Context: `bind(...)`/`unbind(...)` set contextvars for the current task; `bound(...)` is the scoped form.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any, Iterator, TextIO

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars, merge_contextvars, unbind_contextvars

from orchestrator.scrub import scrub_event

CONTEXT_KEYS = ("domain", "wave", "node", "step")
UNKNOWN = "-"

_configured = False


def _defaults(logger: Any, method: str, event: dict) -> dict:
    for k in CONTEXT_KEYS:
        if event.get(k) in (None, ""):
            event[k] = UNKNOWN
    return event


def _scrub(logger: Any, method: str, event: dict) -> dict:
    return scrub_event(event)


def processors(json: bool) -> list:
    """The processor chain (also used by tests that need the same pipeline)."""
    return [
        merge_contextvars,
        _defaults,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        _scrub,
        structlog.processors.JSONRenderer(sort_keys=False) if json
        else structlog.dev.ConsoleRenderer(colors=False, sort_keys=False),
    ]


def configure(json: bool = False, stream: TextIO | None = None, level: str | int = "info") -> None:
    """Set up structlog for the process: console (default) or JSON lines, scrubbed, to `stream`."""
    global _configured
    lvl = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    structlog.configure(
        processors=processors(json),
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=stream if stream is not None else sys.stderr),
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger. Configures the console default on first use if nobody configured logging."""
    if not _configured and not structlog.is_configured():
        configure()
    log = structlog.get_logger(name) if name else structlog.get_logger()
    return log.bind(**initial) if initial else log


def bind(**context: Any) -> None:
    """Bind domain/wave/node/step (or more) for every later event of this task/thread."""
    bind_contextvars(**{k: v for k, v in context.items() if v is not None})


def unbind(*keys: str) -> None:
    unbind_contextvars(*keys)


@contextlib.contextmanager
def bound(**context: Any) -> Iterator[None]:
    """Scoped bind: `with bound(node="psc-a", step="backup"): ...`."""
    with bound_contextvars(**{k: v for k, v in context.items() if v is not None}):
        yield

"""Structured logging (structlog): every event carries domain, wave, node and step, and no secret.

`configure(json=False)` renders the event stream (key=value lines); `configure(json=True)` writes JSON
lines (the rehearsal and CI logs). The commands use `configure(human=True)`: the console view
(orchestrator.console) renders the events for a person, `-v` (verbose) shows the stream as above and
`--json` JSON lines; whatever is shown, `record_to(path)` keeps the FULL event stream (debug included) as
JSON lines in the state folder (one rotated file per domain). The engine and steps only emit events.
A scrub processor (orchestrator.scrub) runs on every event, after exceptions are formatted, so no
password, session id or SOAP cookie reaches a log line, the console or the event file.
Context: `bind(...)`/`unbind(...)` set contextvars for the current task; `bound(...)` is the scoped form.
"""
from __future__ import annotations

import contextlib
import json as _json
import logging
import logging.handlers
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from orchestrator.slog import structlog  # noqa: I001 - before structlog.contextvars (see orchestrator/slog.py)
from structlog.contextvars import bind_contextvars, bound_contextvars, merge_contextvars, unbind_contextvars

from orchestrator.clients.retry import outage_reason
from orchestrator.private import private_dirs, private_fd
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


def _outage(logger: Any, method: str, event: dict) -> dict:
    """An event emitted while a node is down on purpose (orchestrator.clients.retry.expected_outage) says
    so: `expected="rebooting"`. The console counts such retries as waits, not faults."""
    reason = outage_reason()
    if reason:
        event.setdefault("expected", reason)
    return event


def processors(json: bool) -> list:
    """The processor chain (also used by tests that need the same pipeline)."""
    return [*_enrich(), _renderer(json)]


def _enrich() -> list:
    """Everything before rendering: context, level, time, exceptions, and the scrub (last, so nothing escapes)."""
    return [
        merge_contextvars,
        _defaults,
        _outage,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        _scrub,
    ]


def _renderer(json: bool) -> Any:
    return (structlog.processors.JSONRenderer(sort_keys=False) if json
            else structlog.dev.ConsoleRenderer(colors=False, sort_keys=False))


class _Stream:
    """A rendered view of the events on a stream (-v: key=value lines; --json: JSON lines), info and up."""

    def __init__(self, json: bool, stream: TextIO, level: int) -> None:
        self.render, self.stream, self.level = _renderer(json), stream, level
        self._lock = threading.Lock()

    def __call__(self, event: dict) -> None:
        if logging.getLevelName(str(event.get("level", "info")).upper()) < self.level:
            return
        line = self.render(None, "", dict(event))
        with self._lock:
            print(line, file=self.stream, flush=True)

    def close(self, keep: bool = True) -> None:
        pass


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """A rotating file whose every generation is created 0600, like the journal (never world-readable,
    even for an instant, whatever the umask)."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = private_fd(Path(self.baseFilename))
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


class EventFile:
    """The full event stream as JSON lines in one rotated file per domain (`<state>/<domain>/events.jsonl`),
    0600 like the journal. Like the journal, the file is written only once the command acts (its first
    step, window or run event) or ends without being refused: a command refused for bad input writes
    nothing. Until then the events are kept in memory."""

    OPENING = ("step.", "window.", "run.")  # events of a command that acts on the domain

    MAX_BYTES, BACKUPS = 20 * 1024 * 1024, 5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._early: list[str] = []
        self._handler: logging.handlers.RotatingFileHandler | None = None
        self.path: Path | None = None

    def attach(self, path: Path) -> None:
        """The first file named wins: one command run (or one rehearsal) keeps one event log."""
        with self._lock:
            if self.path is None:
                self.path = path

    def _open(self) -> None:
        """Create (or append to) the file and write what was kept. Under the lock."""
        if self._handler is not None or self.path is None:
            return
        private_dirs(self.path.parent)
        self._handler = _PrivateRotatingFile(self.path, maxBytes=self.MAX_BYTES, backupCount=self.BACKUPS,
                                             encoding="utf-8")
        for line in self._early:
            self._write(line)
        self._early.clear()

    def _write(self, line: str) -> None:
        assert self._handler is not None
        self._handler.emit(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))

    def __call__(self, event: dict) -> None:
        head = {k: event[k] for k in ("timestamp", "level", "event") if k in event}
        line = _json.dumps({**head, **event}, default=str, sort_keys=False)
        with self._lock:
            if self._handler is None and str(event.get("event", "")).startswith(self.OPENING):
                self._open()
            if self._handler is None:
                self._early.append(line)
            else:
                self._write(line)

    def close(self, keep: bool = True) -> None:
        """`keep=False`: the command was refused; what was only kept in memory is dropped."""
        with self._lock:
            if keep:
                self._open()
            if self._handler:
                self._handler.close()
            self._handler, self.path = None, None
            self._early.clear()


class _CurrentStderr:
    """`sys.stderr` as it is at each write, not as it was when logging was configured: a test harness, a
    daemon or a redirection may have replaced (and closed) the one there was."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_sinks: list[Callable[[dict], None]] = []
_event_file: EventFile | None = None


def _fan_out(logger: Any, method: str, event: dict) -> dict:
    """Hand the (scrubbed) event to every sink; structlog itself prints nothing."""
    for sink in list(_sinks):
        sink(event)
    raise structlog.DropEvent


def configure(json: bool = False, stream: TextIO | None = None, level: str | int = "info", *,
              verbose: bool = False, human: bool = False) -> None:
    """Set up structlog for the process.

    human=False (tests, benchmarks): the event stream, or JSON lines, to `stream` (default stderr).
    human=True (the commands): the console view on stdout for a person (`verbose`: the event stream on
    stderr instead, `json`: JSON lines on stderr), plus the full event file once `record_to()` names it."""
    global _configured, _event_file
    finish()
    lvl = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not human:
        structlog.configure(
            processors=processors(json),
            wrapper_class=structlog.make_filtering_bound_logger(lvl),
            logger_factory=structlog.PrintLoggerFactory(file=stream if stream is not None else _CurrentStderr()),
            cache_logger_on_first_use=False,
        )
        _configured = True
        return
    _event_file = EventFile()
    if json or verbose:
        view: Any = _Stream(json, stream if stream is not None else _CurrentStderr(), lvl)
    else:
        from orchestrator.console import Console
        view = Console(stream if stream is not None else sys.stdout)
    _sinks[:] = [_event_file, view]
    structlog.configure(
        processors=[*_enrich(), _fan_out],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),  # the event file keeps everything
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # prints nothing (see _fan_out)
        cache_logger_on_first_use=False,
    )
    _configured = True


def record_to(state_dir: str | Path, domain: str) -> Path | None:
    """Keep the full event stream in `<state_dir>/<domain>/events.jsonl` (rotated). No-op unless the
    commands' logging (`configure(human=True)`) is active. Returns the file."""
    if _event_file is None:
        return None
    _event_file.attach(Path(state_dir) / domain / "events.jsonl")
    return _event_file.path


def event_log_path() -> Path | None:
    """Where this command's full event log is being written (None before `record_to`)."""
    return _event_file.path if _event_file else None


def describe_run(plan: Any, window: tuple[float | None, float | None] = (None, None),
                 time_scale: float | None = None) -> None:
    """Give the console view the saved plan (expected durations, the window estimate) and the window's state
    (opened, closed: journal timestamps); `time_scale`: the lab's clock, so that expected durations shrink like
    its jobs. No-op without a console."""
    from orchestrator.console import Console
    for sink in _sinks:
        if isinstance(sink, Console):
            if time_scale is not None:
                sink.view.time_scale = time_scale
            if plan is not None:
                sink.use_plan(plan, window)


def console_tally() -> Any:
    """The console's running tally (steps, retries of transient faults, waits), None without a console: the
    rehearsal's summary prints the very figures its console summary line printed, not a second count."""
    from orchestrator.console import Console
    return next((sink.view.tally for sink in _sinks if isinstance(sink, Console)), None)


def finish(keep: bool = True) -> None:
    """End the command's views: the console prints its summary, the event file is closed (`keep=False`: the
    command was refused for bad input, and an event file it never needed to open is not created)."""
    global _event_file
    for sink in list(_sinks):
        sink.close(keep=keep)  # type: ignore[attr-defined]
    _sinks.clear()
    _event_file = None


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

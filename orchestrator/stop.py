"""Stopping a command on Ctrl-C or SIGTERM: within seconds, journaled, lock released, exit 130 / 143.

Why cooperative: a command spends its life waiting (a job poll, a reboot, an installer's output), often
in lane threads. Python delivers a signal to the main thread only, and an exception raised there at an
arbitrary bytecode could land between a journal write and the lock release. So the first signal only sets
`STOP`; every wait in vcwave sleeps through `sleep()` below, which wakes at once and raises `Interrupted`
in whichever thread waits. The exception unwinds the steps (a step left "started" is reconciled against
the live node on the next run), the session journals the interruption and releases the domain lock, and
the task exits 128 + the signal number. A second signal raises at once, for an operator who insists.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

STOP = threading.Event()
_received: list[int] = []


class Interrupted(BaseException):
    """The operator (Ctrl-C) or the system (SIGTERM) asked vcwave to stop. A BaseException, like
    KeyboardInterrupt, so that no `except Exception` on the way mistakes it for a failed step."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def requested() -> int | None:
    """The signal that asked for a stop, or None."""
    return _received[0] if STOP.is_set() and _received else None


def check() -> None:
    """Raise Interrupted if a stop was asked for (called between two waits and before starting work)."""
    signum = requested()
    if signum is not None:
        raise Interrupted(signum)


def sleep(seconds: float) -> None:
    """`time.sleep` that a stop request cuts short: every wait of vcwave goes through here."""
    if STOP.wait(max(0.0, seconds)):
        check()


def _handler(signum: int, frame: object) -> None:
    if STOP.is_set():  # the second signal: stop now, wherever the main thread is
        raise Interrupted(_received[0] if _received else signum)
    _received.append(signum)
    STOP.set()


@contextlib.contextmanager
def signals_stop() -> Iterator[None]:
    """For the life of one command: SIGINT and SIGTERM ask for a stop (main thread only; elsewhere, e.g.
    a test calling a command from a worker thread, nothing is installed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        reset()


def reset() -> None:
    """Forget a stop request (the next command in the same process starts clean)."""
    STOP.clear()
    _received.clear()

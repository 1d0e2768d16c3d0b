"""The console a person follows: a structlog sink that prints what `RunView` folds from the events.

On a terminal a rich `Live` view redraws, in place, one row per running step (percent, phase, elapsed,
expected remaining, folded retries) under the window clock, while finished steps and warnings scroll above
it as permanent lines. Anywhere else (a pipe, CI, AWX) the same lines are printed plainly, time-stamped,
with no cursor movement; a batch of steps that start together is one line there.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from orchestrator.console.model import Running, RunView

if TYPE_CHECKING:
    from orchestrator.console.live import LiveView


class Console:
    """structlog sink (see orchestrator.log): `console(event)` for every event, `close()` at the end."""

    START_DELAY_S = 1.0  # plain mode: a start line waits this long for its batch (and for a quick end)

    def __init__(self, stream: TextIO, *, live: bool | None = None, refresh_per_second: float = 4.0) -> None:
        self.stream = stream
        self.view = RunView()
        self._lock = threading.RLock()
        self.live_mode = stream.isatty() if live is None else live
        self._starts: list[Running] = []  # plain mode: started, not printed yet
        self._timer: threading.Timer | None = None
        self._live: LiveView | None = None
        if self.live_mode:  # rich only here: ~50 ms of imports a command in a pipe, CI or AWX never needs
            from orchestrator.console import live
            self._live = live.LiveView(self.view, stream, refresh_per_second)

    # ---------------------------------------------------------------- sink
    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            name = event.get("event")
            run = self.view.running.get(str(event.get("step")))
            lines = self.view.apply(event)
            if name == "step.start":
                self._started(self.view.running[str(event.get("step"))])
                return
            if run is not None and run in self._starts and name in ("step.done", "step.failed", "step.manual"):
                self._starts.remove(run)  # ended before its start line was due: the end line says it all
            elif lines:
                self._flush_starts()  # anything else printed: the steps running meanwhile are named first
            for line in lines:
                self._print(line)

    def _started(self, run: Running) -> None:
        if self.live_mode:
            for line in self.view.start_line([run]):
                self._print(line)
            return
        self._starts.append(run)
        if self._timer is None:
            self._timer = threading.Timer(self.START_DELAY_S, self._flush_due)
            self._timer.daemon = True
            self._timer.start()

    def _flush_due(self) -> None:
        with self._lock:
            self._timer = None
            self._flush_starts()

    def use_plan(self, plan: Any, window: tuple[float | None, float | None] = (None, None)) -> None:
        with self._lock:
            self.view.use_plan(plan, window)

    def close(self, keep: bool = True) -> None:
        """The summary line; the live view (transient) disappears, leaving the permanent lines."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._flush_starts()
            if self._live is not None:
                self._live.stop()
                self._live = None
            t = self.view.tally
            if t.ok or t.changed or t.failed or t.paused:
                self._print(self.view.summary())

    # ---------------------------------------------------------------- output
    def _flush_starts(self) -> None:
        """Plain mode: the steps that started since the last printed line, one line per kind of step."""
        starts, self._starts = self._starts, []
        for line in self.view.start_line(starts) if starts else ():
            self._print(line)

    def _print(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self._live is not None:
            self._live.print(f"{stamp} {line}")
        else:
            print(f"{stamp} {line}", file=self.stream, flush=True)

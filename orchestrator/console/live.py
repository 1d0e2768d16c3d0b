"""The console's live part on a terminal: rich's `Live` view, redrawn in place under the permanent lines.

Why apart: rich costs ~50 ms of CPU to import, and only a console on a terminal draws with it; a command whose
output goes to a pipe, CI or AWX prints plain lines (console/view.py) and never imports this module.
"""
from __future__ import annotations

from typing import TextIO

from rich.console import Console as RichConsole
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.console.model import RunView, duration


class LiveView:
    """The live board of `view` on `stream`, started at once; lines printed through it scroll above it."""

    def __init__(self, view: RunView, stream: TextIO, refresh_per_second: float) -> None:
        self._rich = RichConsole(file=stream, force_terminal=True, highlight=False, soft_wrap=True)
        self._live = Live(_Board(view), console=self._rich, refresh_per_second=refresh_per_second,
                          transient=True, redirect_stdout=True, redirect_stderr=True)
        self._live.start()

    def print(self, line: str) -> None:
        self._rich.print(Text(line))

    def stop(self) -> None:
        self._live.stop()


class _Board:
    """The live part: the window clock and one row per running step, recomputed at every refresh."""

    def __init__(self, view: RunView) -> None:
        self.view = view

    def __rich__(self) -> Group:
        now = self.view.clock()
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
        for run in list(self.view.running.values()):
            pct = f"{run.percent:.0f}%" if run.percent is not None else "  -"
            remaining = run.remaining(now)
            left = f"~{duration(remaining)} left" if remaining is not None else ""
            table.add_row(Text(f"  {run.who()}"), Text(run.label()), Text(pct, justify="right"),
                          Text(run.phase or "running"), Text(f"{duration(run.elapsed(now))} elapsed"), Text(left),
                          Text(run.waiting_text(), style="yellow"))
        clock = self.view.window_text()
        if not self.view.running and not clock:
            return Group()  # between steps: nothing to draw
        header = Text(f"running {len(self.view.running)} step(s)" + (f" · {clock}" if clock else ""), style="bold")
        return Group(header, table)

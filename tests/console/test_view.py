"""The console on a pipe (plain lines, no escape sequence, a quick batch folded) and in a pseudo-terminal
(a rich live view redrawn in place while a step runs), fed the same events the engine emits."""
from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time

from orchestrator.console import Console

from tests.cli.test_cli import ROOT

ESC = "\x1b"


def ev(name: str, step: str, node: str, **kw) -> dict:
    return {"event": name, "level": kw.pop("level", "info"), "step": step, "node": node, **kw}


def test_plain_lines_on_a_pipe():
    out = io.StringIO()
    c = Console(out)
    assert not c.live_mode
    for n in ("psc-a", "vc-a"):
        c(ev("step.start", f"pre/precheck/{n}", n, action="precheck", method="", frm="6.7 U1", to="6.7 U3"))
    for n in ("psc-a", "vc-a"):
        c(ev("step.done", f"pre/precheck/{n}", n, duration_s=0.05))
    c(ev("step.start", "psc/upgrade/psc-a", "psc-a", action="upgrade", method="update", frm="6.7 U1", to="6.7 U3"))
    c(ev("tls.verification_disabled", "", "psc-a", level="warning"))  # printed: the running step is named first
    c(ev("step.failed", "psc/upgrade/psc-a", "psc-a", error="install failed", level="error", duration_s=1.0))
    c.close()
    text = out.getvalue()
    assert ESC not in text
    lines = [l.split(" ", 1)[1] for l in text.splitlines()]  # without the time stamp
    assert lines[0].startswith("ok       psc-a    precheck") and lines[1].startswith("ok       vc-a     precheck")
    assert lines[2] == "start    psc-a  upgrade (update)  6.7 U1 -> 6.7 U3"
    assert lines[3].startswith("WARNING psc-a")
    assert lines[4].startswith("FAILED   psc-a    upgrade (update)") and lines[5].strip() == "install failed"
    assert lines[6].startswith("summary  steps: ok 2, changed 0, failed 1")
    assert len(lines) == 7


def test_a_long_step_gets_its_start_line_without_waiting_for_its_end():
    out = io.StringIO()
    c = Console(out)
    c.START_DELAY_S = 0.05
    c(ev("step.start", "psc/upgrade/psc-a", "psc-a", action="upgrade", method="update"))
    deadline = time.monotonic() + 5
    while "start" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "start    psc-a  upgrade (update)" in out.getvalue()
    c.close()


LIVE_SCRIPT = r"""
import sys, time
from orchestrator.console import Console
c = Console(sys.stdout, refresh_per_second=20)
assert c.live_mode
c({"event": "step.start", "level": "info", "step": "psc/upgrade/psc-a", "node": "psc-a", "action": "upgrade",
   "method": "update", "frm": "6.7 U1", "to": "6.7 U3"})
for pct in (10, 40, 70):
    c({"event": "job.progress", "level": "info", "step": "psc/upgrade/psc-a", "node": "psc-a", "what": "install",
       "state": "INSTALL_IN_PROGRESS", "percent": pct})
    time.sleep(0.4)
for i in range(3):
    c({"event": "job.poll_failed", "level": "info", "step": "psc/upgrade/psc-a", "node": "psc-a",
       "expected": "rebooting", "deadline_s": 1200, "error": "HTTP 503"})
time.sleep(0.4)
c({"event": "step.done", "level": "info", "step": "psc/upgrade/psc-a", "node": "psc-a", "duration_s": 1.6})
c.close()
"""


def test_live_view_updates_in_place_in_a_pseudo_terminal():
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}
    proc = subprocess.Popen([sys.executable, "-c", LIVE_SCRIPT], stdin=slave, stdout=slave, stderr=slave, env=env,
                            close_fds=True)
    os.close(slave)
    chunks = []
    end = time.monotonic() + 60
    while time.monotonic() < end:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    assert proc.returncode == 0, text[-2000:]
    assert re.search(r"\x1b\[\d*A", text), "no cursor-up: the view is not redrawn in place"
    assert "\x1b[2K" in text  # lines erased and drawn again
    percents = re.findall(r"psc-a\s+upgrade \(update\)\s+(\d+)%", text)
    assert {"10", "40", "70"} <= set(percents), percents  # the same row, redrawn as the job moved
    assert "rebooting, retried 3x, waiting up to 20 min" in text
    assert re.search(r"changed\s+psc-a\s+upgrade \(update\)", text)  # the permanent line stays

"""The two-site rehearsal as a CI job sees it (stdout a pipe): at most 60 plain lines that name every step's
outcome, no escape sequence, and the full event stream in the state folder's event log."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tests.cli.test_cli import ROOT
from tests.conftest import require_vcsim

OUTCOMES = ("ok", "changed", "FAILED", "PAUSED")


def test_two_site_rehearsal_console_is_short_and_complete(tmp_path):
    require_vcsim()
    workdir = tmp_path / "rehearsal"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "invoke", "-r", str(ROOT), "rehearse", "--workdir", str(workdir)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = r.stdout.splitlines()
    print("\n" + r.stdout)
    assert len(lines) <= 60, len(lines)
    assert "\x1b" not in r.stdout and r.stderr == ""
    assert "state=None" not in r.stdout and max(len(l) for l in lines) < 220

    log = workdir / "state" / "vsphere.local" / "events.jsonl"
    events = [json.loads(l) for l in log.read_text().splitlines()]
    kinds = {e["event"] for e in events}
    assert {"step.start", "step.done", "job.progress", "window.opened", "window.closed"} <= kinds
    ended = [e for e in events if e["event"] in ("step.done", "step.failed", "step.manual")]
    outcome_lines = [l for l in lines if l.split()[1:2] and l.split()[1] in OUTCOMES]
    assert len(outcome_lines) == len(ended) > 30  # every step's outcome is a line
    for e in ended:  # ...naming its node (or the snapshot set's VMs) and its action
        action = e["step"].split("/")[1]  # precheck, backup-during, snapshot-set, upgrade, ...
        action = action if action == "snapshot-set" else action.split("-")[0]
        assert any((f" {e['node']} " in l or " VMs " in l) and action in l for l in outcome_lines), e
    assert "outcome: upgraded" in r.stdout
    # the snapshot set's power cycle and the update reboots are waits, not faults
    waits = re.search(r"retries of transient faults: (\d+) \(waits while nodes were down on purpose: (\d+)\)", r.stdout)
    assert waits and int(waits.group(2)) > 0
    # the console's summary line and the rehearsal's summary count the same retries and waits (a new user saw
    # "waits: 19" and "waits: 6" for the same rehearsal)
    console = re.search(r"summary  steps: .*retries of transient faults: (\d+) \(waits while a node was down on "
                        r"purpose: (\d+)\)", r.stdout)
    assert console and console.groups() == waits.groups()
    assert f"files: {log.parent}/: report/report.md, report/report.html, events.jsonl" in r.stdout
    assert oct(log.stat().st_mode & 0o777) == "0o600"

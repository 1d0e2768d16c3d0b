"""A body trickled at 1 KB/s, through the command line (issue 17): `invoke status` against a lab whose psc-a
answers its version that way. status asks every node within its observation deadline; the trickle must not
hold it (nor its exit: the probe threads are joined when the process ends) past that deadline. Before the
probes bounded each request's total time, this status printed after 9 s and exited after 122 s."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from orchestrator.engine.journal import Journal
from orchestrator.facts.domain import DEFAULT_DEADLINE_S

ROOT = Path(__file__).resolve().parents[2]
VERSION = "GET /rest/appliance/system/version"


@pytest.fixture
def trickling_lab(tmp_path):
    from lab import manage
    from orchestrator.commands.plan import run as plan
    d = tmp_path / "lab"
    info = manage.up(ROOT / "examples" / "two-site.yml", d, 0.001, warm=True, extra=("--no-vcsim",))
    try:
        plan(info["inventory"], "6.7 U3", out=str(tmp_path / "plan.json"))
        spec = {"seed": 0, "faults": [{"type": "garbage", "node": "psc-a", "answer": "trickle",
                                       "path": "system/version", "count": 1000}]}
        urllib.request.urlopen(urllib.request.Request(info["control_url"] + "/lab/faults", method="POST",
                                                      data=json.dumps(spec).encode()), timeout=10).close()
        yield info
    finally:
        manage.down(d)


@pytest.mark.full  # ~6 s: the observation deadline (8 s) is the product's, not shortened for the lab
def test_status_against_a_trickle_ends_within_its_deadline(trickling_lab, tmp_path):
    state = tmp_path / "state"
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "invoke", "-r", str(ROOT), "status", "--plan", str(tmp_path / "plan.json"),
                        "--state-dir", str(state)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - t0
    print(f"\nstatus with psc-a trickling its version at 1 KB/s: {elapsed:.1f}s (deadline {DEFAULT_DEADLINE_S:g}s)")
    assert r.returncode == 0, r.stderr  # status itself worked: it reports the node, it does not fail
    assert "Traceback" not in r.stderr
    problem = next(line for line in r.stdout.splitlines() if line.startswith("problem: psc-a:"))
    assert f"not answering (appliance: {VERSION}: no complete answer within" in problem
    assert elapsed < 3 * DEFAULT_DEADLINE_S, f"the trickle held status {elapsed:.1f}s"
    journal = state / "vsphere.local" / "journal.sqlite"
    if journal.exists():  # status is read-only: it journals nothing, least of all a step done
        j = Journal.open(journal)
        try:
            assert not [e for e in j.events() if e.kind.endswith("succeeded")]
        finally:
            j.close()

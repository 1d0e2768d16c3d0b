"""A garbage answer on the first `GET /rest/appliance/update` after psc-a's install started (a broken proxy,
a half-started service), through the production CLI on the lab: the command ends as README promises, the
node is installed exactly once (the lab's own record), a re-run converges, and `status` tells the truth.

Why a lab test: the pure decision (core.converge) was tested; what the administrator meets is the
command's exit code, its message, the next run and the status line, and only the whole chain shows them.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from lab import manage
from lab.faults import Faults
from orchestrator.commands import status as status_cmd
from orchestrator.commands import waves
from tests.conftest import require_vcsim
from tests.core.test_repoint import invoke
from tests.engine.labkit import lab_domain

EX = Path(__file__).resolve().parents[2] / "examples"
GARBAGE = {"type": "garbage", "node": "psc-a", "answer": "truncated", "path": "appliance/update", "method": "GET",
           "count": 1, "after": {"event": "install_started", "node": "psc-a"}}


def test_a_garbage_fault_waits_for_its_after_condition():
    """Pure: before the install started the fault does not bite; once the record says so, it bites once."""
    faults = Faults({"faults": [GARBAGE]})
    started = {"yes": False}

    def due(after):
        return started["yes"] and after == {"event": "install_started", "node": "psc-a", "role": None, "count": 1}

    assert faults.garbage("psc-a", "GET", "/rest/appliance/update", due) is None
    started["yes"] = True
    assert faults.garbage("psc-a", "POST", "/rest/appliance/update/pending/x", due) is None  # GET only
    assert faults.garbage("psc-a", "GET", "/rest/appliance/update", due).answer == "truncated"
    assert faults.garbage("psc-a", "GET", "/rest/appliance/update", due) is None  # count: 1


def _record(d) -> dict[str, dict[str, int]]:
    return manage.control(d.lab_dir, "/lab/record?since=0")["counts"]


@pytest.mark.full
def test_garbage_right_after_the_install_started(tmp_path, monkeypatch):
    require_vcsim()
    with lab_domain(tmp_path, monkeypatch, EX / "two-site.yml", "6.7 U3") as d:
        f = d.flags
        waves.precheck(f)
        waves.backup(f, "pre")
        waves.stage(f)
        manage.control(d.lab_dir, "/lab/faults", {"seed": 1, "faults": [GARBAGE]})
        cli = ("--inventory", f.inventory, "--plan", f.plan, "--state-dir", f.state_dir)

        r = invoke("upgrade", "--wave", "psc", *cli, cwd=tmp_path)
        print(r.stdout[-3000:], r.stderr[-2000:])
        assert "Traceback" not in r.stderr
        assert r.returncode == 0, (r.stdout, r.stderr)  # a garbage GET is asked again (README), the wave ends
        assert manage.control(d.lab_dir, "/lab/state")["faults"]["faults"][0]["count"] == 0  # it did bite
        log = (Path(f.state_dir) / d.domain / "events.jsonl").read_text()
        # the garbage is "psc-a does not answer (not valid JSON)": unknown and waited on, never "not done"
        # (whether the next look finds the job running, the reboot or the end depends on the loaded clock)
        waited = [line for line in log.splitlines() if '"step.waiting"' in line and "psc/upgrade/psc-a" in line]
        assert any("not valid JSON" in line for line in waited), waited
        rec = _record(d)
        assert rec["psc-a"]["install_started"] == 1 and rec["psc-a"]["install_completed"] == 1

        again = invoke("upgrade", "--wave", "psc", *cli, cwd=tmp_path)
        assert again.returncode == 0, (again.stdout, again.stderr)
        assert _record(d)["psc-a"]["install_started"] == 1  # converged: nothing installed twice

        st = status_cmd.status_data(f)
        nodes = {n["node"]: n for n in st.nodes}
        assert nodes["psc-a"]["version"] == "6.7 U3" and nodes["psc-a"]["live"] == "answering"
        assert st.problems == () and st.next_command == "invoke upgrade --wave vcenter"
        assert st.summary == "mixed — PSCs 6.7 U3 (2/2 at target), vCenters 6.7 U1 (0/2 at target)"

"""Linked embedded hops on a full lab twin (examples/linked-7.0.yml: two sites, an embedded vCenter each,
linked at 7.0 U3), through the production commands: 7.0 U3 -> 8.0 U3 by the 8.0 installer, and a patch within
8.0 by the appliance update API, the method from version data. One vCenter at a time (the second only once the
first is verified), after a cold snapshot set of all linked vCenters and a file backup of each (KB 313886);
each vCenter keeps its identity; finalize after the major removes the kept 7.0 appliances and writes the next
inventory.

Needs the vcsim binary: FAILS when it is unavailable with CI=true, skipped otherwise. Full sweep only
(each case runs a lab for 10-30 s).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import require_vcsim
from tests.engine.labkit import events, failed_vcenter_wave_rolled_back, lab_domain

from lab import manage
from orchestrator.commands import finalize as finalize_cmd
from orchestrator.commands import waves
from orchestrator.core.plan import load_plan

EX = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def vcsim_ok():
    return require_vcsim()


@pytest.mark.full
@pytest.mark.parametrize("source, target, method", [("7.0 U3", "8.0 U3", "installer"),
                                                    ("8.0 U1", "8.0 U3", "update")])
def test_linked_vcenters_go_one_at_a_time_after_a_cold_set(vcsim_ok, tmp_path, monkeypatch, source, target, method):
    inv = tmp_path / "linked.yml"
    inv.write_text((EX / "linked-7.0.yml").read_text().replace('version: "7.0 U3"', f'version: "{source}"'))
    with lab_domain(tmp_path, monkeypatch, inv, target) as d:
        before = manage.control(d.lab_dir, "/lab/state")["nodes"]
        waves.precheck(d.flags)
        waves.backup(d.flags, "pre")
        waves.stage(d.flags)
        waves.upgrade(d.flags, "vcenter")
        waves.verify(d.flags)
        waves.backup(d.flags, "post")
        after = manage.control(d.lab_dir, "/lab/state")["nodes"]
        steps = [(e.step, e.status, e.data) for e in events(d, kind="step")]
        finalized = finalize_cmd.run(d.flags, yes=True) if method == "installer" else ""
    for vc in ("vc-a", "vc-b"):
        assert after[vc]["version"] == target and after[vc]["instance_uuid"] == before[vc]["instance_uuid"]
    order = [s for s, status, _ in steps]
    started = {s: i for i, (s, status, _) in enumerate(steps) if status == "started"}
    done = {s: i for i, (s, status, _) in enumerate(steps) if status == "succeeded"}
    assert done["vcenter/verify/vc-a"] < started["vcenter/upgrade/vc-b"]  # one vCenter at a time
    cold = [done[f"pre/snapshot-set/{vc}"] for vc in ("vc-a", "vc-b")]
    assert max(cold) < started["vcenter/upgrade/vc-a"] and {"pre/backup/vc-a", "pre/backup/vc-b"} <= set(order)
    assert {s.method for s in load_plan(d.flags.plan).steps() if s.action == "upgrade"} == {method}
    if method == "installer":
        nxt = yaml.safe_load((Path(d.flags.state_dir) / d.domain / "next-inventory.yml").read_text())
        assert {n["version"] for n in nxt["nodes"]} == {target} and "vc-a on mgmt-vc (vc-a at 7.0 U3)" in finalized


@pytest.mark.full
def test_a_failed_linked_major_rolls_every_linked_vcenter_back_together(vcsim_ok, tmp_path, monkeypatch):
    """vc-b's 8.0 install fails after vc-a went to 8.0: `invoke rollback` brings both back to 7.0 U3 with their
    own instance UUIDs, from the cold snapshot set taken together (never one linked node reverted alone)."""
    before, mid, after, out = failed_vcenter_wave_rolled_back(tmp_path, monkeypatch, EX / "linked-7.0.yml", "8.0 U3")
    assert (mid["vc-a"]["version"], mid["vc-b"]["version"]) == ("8.0 U3", "7.0 U3")
    assert "every node answers at its rollback version with its instance UUID" in out
    for n in ("vc-a", "vc-b"):
        assert (after[n]["version"], after[n]["instance_uuid"], after[n]["down"]) == (
            "7.0 U3", before[n]["instance_uuid"], False), n

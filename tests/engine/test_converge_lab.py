"""The converge hop on a full lab twin (6.7 U1 external PSCs -> 7.0 U3), through the production commands.

The vCenters converge one at a time (the second only once the first is verified at 7.0), keep their
identity, embed SSO; the PSCs are never touched; the window opens at the first converge and closes when
both vCenters are verified; the domain version says the PSCs still carry SSO next to the converged vCenters.
A failed converge is rolled back with the whole domain (PSCs included), every node with its own identity.

Needs the vcsim binary: FAILS when it is unavailable with CI=true, skipped otherwise.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_vcsim
from tests.engine.labkit import failed_vcenter_wave_rolled_back, lab_domain

from lab import manage
from orchestrator.commands import finalize as finalize_cmd
from orchestrator.commands import rollback as rollback_cmd
from orchestrator.commands import status as status_cmd
from orchestrator.commands import waves
from orchestrator.commands.session import session
from orchestrator.engine.journal import Journal, journal_path
from orchestrator.core.campaign import domain_route
from orchestrator.core.inventory import load_inventory
from orchestrator.core.route import describe
from orchestrator.core.versions import parse_version
from orchestrator.errors import RefusedError

EX = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def vcsim_ok():
    return require_vcsim()


def test_two_site_converges_one_vcenter_at_a_time(vcsim_ok, tmp_path, monkeypatch):
    with lab_domain(tmp_path, monkeypatch, EX / "two-site.yml", "7.0 U3") as d:
        before = manage.control(d.lab_dir, "/lab/state")["nodes"]
        waves.precheck(d.flags)
        waves.backup(d.flags, "pre")
        assert "0 step(s) done" in waves.upgrade(d.flags, "psc")  # a PSC cannot go to 7.0: nothing to do
        waves.upgrade(d.flags, "vcenter")
        waves.verify(d.flags)
        waves.backup(d.flags, "post")
        after = manage.control(d.lab_dir, "/lab/state")["nodes"]
        st = status_cmd.status_data(d.flags)
        finalized = finalize_cmd.run(d.flags, yes=True)
        gone = manage.control(d.lab_dir, "/lab/state")
        with session(d.flags, "test", mutate=False) as engine:
            mgmt_vms = engine.conns.management("mgmt-vc").vm_power_states()
        st_after = status_cmd.status_data(d.flags)
        with pytest.raises(RefusedError) as no_rollback:
            rollback_cmd.run(d.flags)
        next_inv = Path(d.flags.state_dir) / d.domain / "next-inventory.yml"
        hop2 = domain_route(load_inventory(next_inv), parse_version("8.0 U3"))
    for vc in ("vc-a", "vc-b"):
        assert (after[vc]["version"], after[vc]["psc"]) == ("7.0 U3", None)
        assert after[vc]["instance_uuid"] == before[vc]["instance_uuid"]
    for psc in ("psc-a", "psc-b"):
        assert after[psc]["version"] == before[psc]["version"] == "6.7 U1"
    j = Journal.open(journal_path(d.flags.state_dir, d.domain))
    try:
        steps = [(e.seq, e.step, e.status) for e in j.events(kind="step")]
        windows = j.events(kind="window")
        sets = j.events(kind="step", step=[f"pre/snapshot-set/{n}" for n in after], status="succeeded")
    finally:
        j.close()
    seq = {(s, st_): n for n, s, st_ in steps}
    assert seq[("vcenter/verify/vc-a", "succeeded")] < seq[("vcenter/upgrade/vc-b", "started")]
    assert [w.status for w in windows] == ["opened", "closed"] and windows[0].data["by"] == "vcenter/upgrade/vc-a"
    assert len(sets) == 4  # the cold snapshot set of all nodes (KB 313886) before the window
    assert st.domain_version == "6.7 U1+7.0 U3"
    assert "decommission the external PSCs psc-a, psc-b" in st.next_command  # not "nothing to do"
    assert st.failover == ()  # converged vCenters have no PSC to fail over from
    # finalize: each PSC backed up, then decommissioned through a converged vCenter of its site (the lab's
    # 7.0 topology API); the kept 6.7 vCenter appliances removed; the next hop's inventory written
    for psc, vc in (("psc-a", "vc-a"), ("psc-b", "vc-b")):
        assert gone["nodes"][psc]["decommissioned"] and gone["nodes"][psc]["down"], psc
        assert mgmt_vms[psc] == "poweredOff"
        assert f"  {psc} (through {vc})" in finalized
        assert [e["on"] for e in gone["ledger"] if e["node"] == psc and e["event"] == "decommissioned"
                ] == [vc]
    assert not {"vc-a", "vc-b"} & set(mgmt_vms)  # the kept 6.7 sources are deleted
    j = Journal.open(journal_path(d.flags.state_dir, d.domain))
    try:
        order = [e.step for e in j.events(kind="step", status="succeeded") if e.phase == "finalize"]
    finally:
        j.close()
    assert order.index("finalize/backup/psc-a") < order.index("finalize/decommission-psc/psc-a")
    assert no_rollback.value.rule == "rollback-finalized"
    assert "psc-a, psc-b decommissioned" in st_after.next_command and st_after.problems == ()
    assert st_after.domain_version == "7.0 U3"  # the PSCs no longer carry SSO
    assert describe(hop2) == "7.0 U3 -> 8.0 U3 (linked-major)"  # read from the written inventory, no hand edit


def test_a_failed_converge_rolls_the_whole_domain_back_with_the_same_identities(vcsim_ok, tmp_path, monkeypatch):
    """vc-b's converge fails after vc-a converged: `invoke rollback` brings every node back to 6.7 U1, vc-a
    with its own instance UUID and its PSC pointer again (the kept source appliance answers)."""
    before, mid, after, _ = failed_vcenter_wave_rolled_back(tmp_path, monkeypatch, EX / "two-site.yml", "7.0 U3")
    assert (mid["vc-a"]["version"], mid["vc-b"]["version"]) == ("7.0 U3", "6.7 U1")
    for n in before:
        assert (after[n]["version"], after[n]["instance_uuid"], after[n]["psc"], after[n]["down"]) == (
            before[n]["version"], before[n]["instance_uuid"], before[n]["psc"], False), n

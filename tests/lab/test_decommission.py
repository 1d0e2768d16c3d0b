"""The lab's PSC decommission refuses what vCenter 7.0's `topology/pscs` decommission refuses (no lab
processes: the state alone, on a clock the test moves): a vCenter still pointing at the PSC, a vCenter that
is not converged, wrong SSO credentials; a precheck changes nothing; the task ends with the PSC shut down
and out of the domain, its VM off."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.state import LabError, LabState
from orchestrator.core.versions import catalogue, parse_version

EX = Path(__file__).resolve().parents[2] / "examples"
USER, PW = "administrator@vsphere.local", "Sso-Pass1!"


@pytest.fixture
def lab(tmp_path):
    """two-site.yml with vc-a converged to 7.0 U3 (first instance); vc-b still uses psc-b."""
    now = [1000.0]
    st = LabState.create(tmp_path / "state.json", yaml.safe_load((EX / "two-site.yml").read_text()), USER, PW,
                         "Root-Pass1!", clock=lambda: now[0])
    st.apply_major_upgrade("vc-a", catalogue().resolve(parse_version("7.0 U3")), "vc-a-70", False,
                           {"first_instance": True})
    st.tick_to = lambda t: now.__setitem__(0, t)
    return st


def refused(fn) -> LabError:
    with pytest.raises(LabError) as info:
        fn()
    return info.value


def test_a_psc_a_vcenter_still_points_at_is_not_decommissioned(lab):
    e = refused(lambda: lab.start_decommission("vc-a", "psc-b", USER, PW, False))
    assert e.kind == "not_allowed_in_current_state" and "vc-b" in e.message


def test_only_a_converged_vcenter_decommissions_and_only_with_the_sso_administrator(lab):
    assert refused(lambda: lab.start_decommission("vc-b", "psc-a", USER, PW, False)).kind == "unsupported"
    assert refused(lambda: lab.start_decommission("vc-a", "psc-a", USER, "wrong", False)).status == 401
    assert refused(lambda: lab.start_decommission("vc-a", None, USER, PW, False)).kind == "invalid_argument"


def test_the_decommission_task_shuts_the_psc_down_and_removes_it_from_the_domain(lab):
    assert [(n["node"], n["type"], n.get("client_affinity")) for n in lab.topology_nodes(lambda name: name)] == [
        ("psc-a", "PSC_EXTERNAL", None), ("psc-b", "PSC_EXTERNAL", None), ("vc-a", "VCSA_EMBEDDED", None),
        ("vc-b", "VCSA_EXTERNAL", "psc-b")]
    pre = lab.start_decommission("vc-a", "psc-a", USER, PW, True)
    assert lab.topology_task(pre)["status"] == "SUCCEEDED" and not lab.nodes["psc-a"]["down"]  # a precheck only
    task = lab.start_decommission("vc-a", "psc-a", USER, PW, False)
    assert task.endswith(":com.vmware.vcenter.topology.pscs") and lab.topology_task(task)["status"] == "RUNNING"
    lab.tick_to(1000.0 + 301)
    assert lab.topology_task(task)["status"] == "SUCCEEDED"
    psc = lab.nodes["psc-a"]
    assert psc["decommissioned"] and psc["down"] and lab.data["vms"]["mgmt-vc"]["psc-a"] == "poweredOff"
    assert {n["node"] for n in lab.topology_nodes(lambda name: name)} == {"vc-a", "vc-b", "psc-b"}  # psc-a left
    assert "already decommissioned" in refused(lambda: lab.start_decommission("vc-a", "psc-a", USER, PW, False)).message
    assert refused(lambda: lab.topology_task("nope")).status == 404

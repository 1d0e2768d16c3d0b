"""The lab's linked vCenters replicate vmdir (VMware KB 313886): a change on one reaches all of them, so a
linked vCenter reverted alone boots unable to replicate (broken, health red), while the whole set reverted
before any power-on comes back healthy. The state alone, on a clock the test moves (no lab processes)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.state import POWERED_OFF, LabState
from lab.vmevents import persona_of
from orchestrator.core.versions import catalogue, parse_version

EX = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def lab(tmp_path):
    """examples/linked-7.0.yml, snapshotted (cold set), then vc-a upgraded to 8.0 U3 (vc-b replicates)."""
    now = [1000.0]
    st = LabState.create(tmp_path / "state.json", yaml.safe_load((EX / "linked-7.0.yml").read_text()),
                         "administrator@vsphere.local", "Sso-Pass1!", "Root-Pass1!", clock=lambda: now[0])
    st.personas = {n: persona_of(st.nodes[n], "current") for n in ("vc-a", "vc-b")}
    st.apply_major_upgrade("vc-a", catalogue().resolve(parse_version("8.0 U3")), "vc-a-80", False)
    st.later = lambda: now.__setitem__(0, now[0] + 10_000)
    return st


def revert_and_boot(lab, names):
    for n in names:
        lab.set_down(n, True, POWERED_OFF)
    for n in names:
        lab.apply_persona(n, "current", lab.personas[n])
    for n in names:
        lab.set_down(n, False, event="power_on")
    lab.later()
    lab.tick()


def test_a_linked_vcenter_reverted_alone_cannot_replicate(lab):
    revert_and_boot(lab, ["vc-b"])
    vc_b = lab.nodes["vc-b"]
    assert vc_b["health"] == "red" and "vmdir replication with vc-a fails" in vc_b["broken"]


def test_the_whole_set_reverted_before_any_power_on_comes_back_healthy(lab):
    revert_and_boot(lab, ["vc-a", "vc-b"])
    for n in ("vc-a", "vc-b"):
        assert (lab.nodes[n]["version"], lab.nodes[n]["health"], lab.nodes[n]["broken"]) == ("7.0 U3", "green", "")

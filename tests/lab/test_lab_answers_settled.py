"""The lab follows its appliance VMs as each task ends, not when a watcher gets to it (issue 18's flakes).

`/lab/installer/rollback` powers the new appliance off and the kept source on. The lab once learned of VM
tasks from a watcher thread reading the management vCenter's recent tasks: it woke between the two tasks and
applied "the source VM is off" late (the node went down, its vcsim was stopped after the answer), and it
missed a snapshot set's quick off-and-on cycle altogether (reading the VM's state after the cycle, it saw
"on": no power-off in the record, no boot; the harness's `lab:power_off` kill point was never reached). Now
the management vcsim tells the lab of each change while the task runs (lab/vcsim/main.go's vm hook,
lab/vmevents.py): when a task returns, the node already follows its VM.
"""
from __future__ import annotations

import time

import pytest

from lab import mgmt
from lab.daemon import Lab


@pytest.fixture
def lab(vcsim_binary, make_lab, labkit, tmp_path) -> Lab:
    return make_lab(labkit.inventory(tmp_path, "d65", labkit.domain_yaml("6.5 U1")), vcsim=True)


@pytest.fixture
def lab65(lab) -> Lab:
    """Its PSCs and v1-1 upgraded by the installer: the sources kept, powered off."""
    for node in ("p1-1", "p2-1", "v1-1"):
        lab.installer_upgrade(node, "6.7 U1", None, None, False)
    return lab


def test_rollback_answers_with_the_source_up(lab65):
    out = lab65.installer_rollback("v1-1")
    assert out["version"] == "6.5 U1"
    node = lab65.state.nodes["v1-1"]
    assert not node["down"], node["down_reason"]  # booting (lab/boot.py: a powered-on source boots), not down
    # Its boot is the lab's model of a real power-on; once it is over, the daemon (not the test) starts the
    # node's vcsim with the source's spec.
    end = time.monotonic() + 30
    while not ("v1-1" in lab65.vcsims and lab65.state.reachability("v1-1") == "up") and time.monotonic() < end:
        time.sleep(0.05)
    assert lab65.state.reachability("v1-1") == "up" and not node["down"]
    assert "v1-1" in lab65.vcsims and lab65.vcsims["v1-1"].spec == lab65.spec_for("v1-1")


def test_upgrade_and_rollback_leave_the_lab_with_the_vms_power(lab65):
    lab65.installer_rollback("v1-1")
    lab65.installer_upgrade("v2-1", "6.7 U1", None, None, True)
    live = lab65._mgmt_call("mgmt", "vm_power_states")
    assert {vm: live[vm] for vm in lab65.state.data["vms"]["mgmt"]} == lab65.state.data["vms"]["mgmt"]
    assert {n: lab65.state.nodes[n]["down"] for n in ("v1-1", "v2-1")} == {"v1-1": False, "v2-1": False}
    assert {"v1-1", "v2-1"} <= set(lab65.vcsims)


def test_a_quick_power_cycle_is_followed_as_each_task_ends(lab):
    """The product's cold snapshot set, against the management vCenter itself: when the power-off task
    returns the node refuses, when the power-on task returns it boots, and the record has both, in order."""
    vm = lab.state.nodes["p1-1"]["vm"]["name"]
    seq = len(lab.state.ledger_view()["events"])
    lab._mgmt_call("mgmt", "power_off", vm)
    assert lab.state.reachability("p1-1") == "refused" and not lab.servers["p1-1"].listening
    lab._mgmt_call("mgmt", "power_on", vm)
    # its boot began as the task returned (the lab's tiny clock may have ended it already on a loaded machine)
    events = [e["event"] for e in lab.state.ledger_view(seq)["events"] if e["node"] == "p1-1"]
    assert events[:3] == ["power_off", "power_on", "boot_started"], events


def test_a_snapshot_and_its_revert_are_followed_as_each_task_ends(lab):
    """Taken at 6.7 U1, the PSC is changed, then reverted: when the revert task returns the node is back at
    what the snapshot kept, before anything else looks at it."""
    _, si = lab._mgmt("mgmt")
    vm = mgmt.find_vm(si, lab.state.nodes["p1-1"]["vm"]["name"])
    seq = len(lab.state.ledger_view()["events"])
    mgmt.wait_task(si, vm.CreateSnapshot_Task(name="s1", description="", memory=False, quiesce=False))
    snap = vm.snapshot.currentSnapshot
    lab.state.set_data("p1-1", {"changed": True})
    mgmt.wait_task(si, snap.RevertToSnapshot_Task())
    assert "changed" not in lab.state.nodes["p1-1"]["data"]
    events = [e["event"] for e in lab.state.ledger_view(seq)["events"] if e["node"] == "p1-1"]
    assert events == ["snapshot", "revert"], events
    mgmt.wait_task(si, snap.RemoveSnapshot_Task(removeChildren=False))  # removing the current one: no revert
    assert [e["event"] for e in lab.state.ledger_view(seq)["events"] if e["node"] == "p1-1"] == events

"""The lab's control operations answer only once the node's processes match the node (issue 18's flake).

`/lab/installer/rollback` powers the new appliance off and the kept source on; the VM watcher, on its own
thread, follows those power tasks. It once woke between the two and applied "the source VM is off" (the
upgrade's own power-off, seen late): the node went down, its vcsim was stopped, and the answer went out
before the power-on brought it back, so a caller reading `lab.vcsims[node]` right after got a KeyError.
Here the watcher's thread is parked and its poll is run exactly in that gap, every time.
"""
from __future__ import annotations

import time

import pytest

from lab.daemon import Lab


@pytest.fixture
def lab65(vcsim_binary, make_lab, labkit, tmp_path) -> Lab:
    inv = labkit.inventory(tmp_path, "d65", labkit.domain_yaml("6.5 U1"))
    lab = make_lab(inv, vcsim=True)
    for node in ("p1-1", "p2-1", "v1-1"):
        lab.installer_upgrade(node, "6.7 U1", None, None, False)
    (watcher,) = lab.watchers
    watcher.park()  # the thread finishes the poll it may be in, then polls no more: polls happen only here
    watcher.poll()
    return lab


def test_rollback_answers_with_the_source_up_even_if_the_watcher_wakes_between_the_power_tasks(lab65,
                                                                                               monkeypatch):
    (watcher,) = lab65.watchers
    real = lab65._mgmt_call

    def power_then_watch(mgmt_name, op, *args):
        out = real(mgmt_name, op, *args)
        if op == "power_off":  # the new appliance is off, the source not yet on: the watcher wakes now
            watcher.poll()
        return out

    monkeypatch.setattr(lab65, "_mgmt_call", power_then_watch)
    out = lab65.installer_rollback("v1-1")
    assert out["version"] == "6.5 U1"
    node = lab65.state.nodes["v1-1"]
    assert not node["down"], node["down_reason"]  # booting (lab/boot.py: a powered-on source boots), not down
    # Its boot is the lab's model of a real power-on; once it is over, the daemon (not the test) starts the
    # node's vcsim with the source's spec. The stale watcher poll above must not have stopped it for good.
    end = time.monotonic() + 30
    while not ("v1-1" in lab65.vcsims and lab65.state.reachability("v1-1") == "up") and time.monotonic() < end:
        time.sleep(0.05)
    assert lab65.state.reachability("v1-1") == "up" and not node["down"]
    assert "v1-1" in lab65.vcsims and lab65.vcsims["v1-1"].spec == lab65.spec_for("v1-1")


def test_upgrade_and_rollback_leave_no_power_task_unapplied(lab65):
    (watcher,) = lab65.watchers
    lab65.installer_rollback("v1-1")
    lab65.installer_upgrade("v2-1", "6.7 U1", None, None, True)
    with lab65._mgmt_lock:
        pending = [t for t in watcher._si().content.taskManager.recentTask or () if t._moId not in watcher.seen]
    assert pending == []
    assert {n: lab65.state.nodes[n]["down"] for n in ("v1-1", "v2-1")} == {"v1-1": False, "v2-1": False}
    assert {"v1-1", "v2-1"} <= set(lab65.vcsims)

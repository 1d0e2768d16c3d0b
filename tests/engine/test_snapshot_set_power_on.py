"""The cold snapshot set brings the domain back in VMware's order and only calls itself done once every node
answers (no lab: the order and the decisions, with the power and facts calls recorded)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator.errors import StepFailed
from orchestrator.steps import backup


def _nodes():
    return [SimpleNamespace(name=n, role=r) for n, r in
            (("vc-a", "vcenter"), ("psc-a", "psc"), ("vc-b", "vcenter"), ("psc-b", "psc"))]


def test_pscs_on_and_answering_before_any_vcenter_is_powered_on(monkeypatch):
    calls = []
    monkeypatch.setattr(backup.SnapshotSetBackup, "_power",
                        staticmethod(lambda ctx, n, vm, on: calls.append(("on" if on else "off", vm))))
    monkeypatch.setattr(backup, "wait_answering",
                        lambda ctx, nodes, minutes: calls.append(("wait", tuple(n.name for n in nodes))) or [])
    vms = {"psc-a": "psc-a-65", "psc-b": "psc-b-65", "vc-a": "vc-a", "vc-b": "vc-b"}  # PSCs migrated
    assert backup.SnapshotSetBackup()._bring_back(None, _nodes(), vms) == []
    assert calls == [("on", "psc-a-65"), ("on", "psc-b-65"), ("wait", ("psc-a", "psc-b")),
                     ("on", "vc-a"), ("on", "vc-b"), ("wait", ("vc-a", "vc-b"))]


def test_a_node_that_stays_silent_is_reported(monkeypatch):
    monkeypatch.setattr(backup.SnapshotSetBackup, "_power", staticmethod(lambda ctx, n, vm, on: None))
    monkeypatch.setattr(backup, "wait_answering",
                        lambda ctx, nodes, minutes: [n.name for n in nodes if n.name == "vc-b"])
    assert backup.SnapshotSetBackup()._bring_back(None, _nodes(), {n.name: n.name for n in _nodes()}) == ["vc-b"]


def test_wait_answering_asks_until_every_node_answers(monkeypatch):
    from orchestrator.steps import common
    answers = {"psc-a": [["down"], []], "psc-b": [[]]}
    asked = []

    def gather(conns, node, fingerprint, health):
        asked.append(node.name)
        errs = answers[node.name]
        return SimpleNamespace(errors=errs.pop(0) if len(errs) > 1 else errs[0])

    monkeypatch.setattr(common, "gather", gather)
    ctx = SimpleNamespace(conns=None, options=SimpleNamespace(poll_interval=0.001, deadline_scale=0.001),
                          log=SimpleNamespace(info=lambda *a, **k: None))
    nodes = [SimpleNamespace(name="psc-a"), SimpleNamespace(name="psc-b")]
    assert common.wait_answering(ctx, nodes, minutes=1) == []
    assert asked == ["psc-a", "psc-b", "psc-a"]  # a node that answered is not asked again


def test_a_silent_node_fails_the_set_step_with_what_to_do(monkeypatch):
    monkeypatch.setattr(backup.SnapshotSetBackup, "_bring_back", lambda self, ctx, nodes, vms: ["vc-b"])
    monkeypatch.setattr(backup.SnapshotSetBackup, "_power", staticmethod(lambda ctx, n, vm, on: None))
    monkeypatch.setattr(backup, "serving", lambda ctx, name: name)
    mg = SimpleNamespace(vm_by_name=lambda name: name, create_snapshot=lambda vm, name, desc: None,
                         snapshots=lambda vm: [])
    nodes = {n: SimpleNamespace(name=n, role="vcenter", vm=SimpleNamespace(vcenter="mgmt", name=n))
             for n in ("vc-a", "vc-b")}
    ctx = SimpleNamespace(inv=SimpleNamespace(node=lambda name: nodes[name]), step=SimpleNamespace(tag="pre"),
                          progress=lambda data: None, conns=SimpleNamespace(management=lambda vc: mg))
    with pytest.raises(StepFailed, match="taken, but vc-b did not answer after power-on"):
        backup.SnapshotSetBackup().run_set(ctx, [SimpleNamespace(node="vc-a"), SimpleNamespace(node="vc-b")])

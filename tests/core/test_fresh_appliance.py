"""Which file restores need a freshly deployed appliance before a rollback can go on (pure): asked of the
live domain, every such node named with its address and version, the same words in `status`; a node that
answers as a running appliance or is gone (silent, no VM holding its identity) is never restored into."""
from __future__ import annotations

from dataclasses import asdict

from orchestrator.core.history import fold, rollback_step_id
from orchestrator.core.live import NodeSeen, Observation, VmSeen, fold_live
from orchestrator.core.rollback import fresh_appliance_advice, fresh_appliances_due, plan_domain_rollback
from orchestrator.core.status import compute_status
from orchestrator.core.versions import parse_version
from tests.core.test_history import Script
from tests.core.test_live import ALL_AFTER_PSC, after_psc_wave, inv, plan  # noqa: F401

GONE = NodeSeen("psc-b", False, "connection refused", vms=(VmSeen("psc-b", "source", "absent"),))


def _rollback_saved(inv) -> tuple[Script, dict[str, str]]:  # noqa: F811
    """After the PSC wave: the domain rollback's plan saved (file restores of psc-a and psc-b) and its
    vCenter stops done. Returns the script and node -> its restore step id."""
    s = after_psc_wave()
    rb = plan_domain_rollback(inv, fold(inv, s.events), "pre")
    s.add("note", phase="rollback", status="rollback-plan",
          data={"scope": rb.scope, "to": rb.to, "actions": [asdict(a) for a in rb.actions]})
    ids = {(a.node, a.action): rollback_step_id(rb.id, a.order, a.action, a.node) for a in rb.actions}
    for vc in ("vc-a", "vc-b"):
        s.step(vc, "rollback", "succeeded", ids[vc, "stop"], "rollback")
    return s, {n: ids[n, "restore"] for n in ("psc-a", "psc-b")}


def _observed(**over: NodeSeen) -> Observation:
    """vCenters stopped by the rollback (silent, VM powered off), PSCs at 6.7 U3, `over` replacing nodes."""
    nodes = {n: NodeSeen(n, True, "", parse_version(v)) for n, v in ALL_AFTER_PSC.items() if n.startswith("psc")}
    nodes |= {vc: NodeSeen(vc, False, "connection refused", vms=(VmSeen(vc, "source", "poweredOff"),))
              for vc in ("vc-a", "vc-b")}
    return Observation(5000.0, {**nodes, **over})


def _due(inv, s: Script, obs: Observation):  # noqa: F811
    hist = fold(inv, s.events)
    return fresh_appliances_due(inv, hist.restores_due, fold_live(inv, hist, obs).nodes)


def test_the_saved_plan_names_its_file_restores_until_each_succeeds(inv):  # noqa: F811
    s, ids = _rollback_saved(inv)
    assert [(d.node, d.version, d.begun) for d in fold(inv, s.events).restores_due] == [
        ("psc-a", "6.7 U1", False), ("psc-b", "6.7 U1", False)]
    s.step("psc-a", "rollback", "started", ids["psc-a"], "rollback")
    assert fold(inv, s.events).restores_due[0].begun  # killed mid-restore: the step asks the node's job
    s.step("psc-a", "rollback", "failed", ids["psc-a"], "rollback", manual=True)
    assert not fold(inv, s.events).restores_due[0].begun  # paused before any restore was started
    s.step("psc-a", "rollback", "succeeded", ids["psc-a"], "rollback", version_after="6.7 U1")
    assert [d.node for d in fold(inv, s.events).restores_due] == ["psc-b"]
    s.add("note", phase="rollback", status="rollback-done", data={"scope": "domain", "to": "pre"})
    assert fold(inv, s.events).restores_due == ()


def test_a_running_appliance_and_a_deleted_one_are_both_named(inv):  # noqa: F811
    s, _ = _rollback_saved(inv)
    fresh = _due(inv, s, _observed(**{"psc-b": GONE}))
    assert [(f.node, f.address, f.version) for f in fresh] == [("psc-a", "psc-a.corp.example", "6.7 U1"),
                                                           ("psc-b", "psc-b.corp.example", "6.7 U1")]
    assert fresh[0].why == "answers as a running 6.7 U3 appliance"
    assert fresh[1].why == "does not answer (connection refused) and no VM holds its identity"
    text = fresh_appliance_advice(fresh)
    assert ("deploy a 6.7 U1 appliance at psc-a.corp.example for psc-a, a 6.7 U1 appliance at psc-b.corp.example "
            "for psc-b with VMware's installer (Restore, stage 1)") in text


def test_fresh_appliances_in_restore_mode_let_the_rollback_go_on(inv):  # noqa: F811
    s, _ = _rollback_saved(inv)
    waiting = {p: NodeSeen(p, True, "", parse_version("6.7 U1"), restore_mode=True) for p in ("psc-a", "psc-b")}
    assert _due(inv, s, _observed(**waiting)) == ()


def test_a_silent_node_whose_vm_exists_is_left_to_the_restore_to_power_on_and_wait_for(inv):  # noqa: F811
    """It may be the fresh appliance the rollback's own stop powered off, or a node still booting: unknown,
    not gone."""
    s, _ = _rollback_saved(inv)
    off = NodeSeen("psc-b", False, "connection refused", vms=(VmSeen("psc-b", "source", "poweredOff"),))
    assert [f.node for f in _due(inv, s, _observed(**{"psc-b": off}))] == ["psc-a"]


def test_a_node_whose_restore_began_is_not_named_while_it_answers(inv):  # noqa: F811
    """Killed after its restore succeeded: it answers as a running appliance, and that is the restore's work."""
    s, ids = _rollback_saved(inv)
    s.step("psc-a", "rollback", "started", ids["psc-a"], "rollback")
    assert [f.node for f in _due(inv, s, _observed())] == ["psc-b"]
    assert [f.node for f in _due(inv, s, _observed(**{"psc-a": NodeSeen("psc-a", False, "refused")}))] == [
        "psc-a", "psc-b"]  # gone (no VM known) even though it began: nothing to restore into


def test_status_names_every_node_and_the_deploys_like_the_pause(inv, plan):  # noqa: F811
    s, ids = _rollback_saved(inv)
    s.step("psc-a", "rollback", "failed", ids["psc-a"], "rollback", manual=True)
    hist = fold(inv, s.events)
    obs = _observed(**{"psc-b": GONE})
    st = compute_status(inv, plan, hist, {}, 5000.0, fold_live(inv, hist, obs))
    fresh = fresh_appliances_due(inv, hist.restores_due, fold_live(inv, hist, obs).nodes)
    assert st.next_command == (f"the rollback is paused before its file restores of psc-a, psc-b: "
                               f"{fresh_appliance_advice(fresh)}; then re-run `invoke rollback` (it resumes the "
                               f"same plan and asks every node first)")

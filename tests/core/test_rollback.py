"""The rollback planner (pure): --to pre/during, missing assets, snapshot sets reverted whole, and the order
invariants as a hypothesis property over generated histories."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.conftest import examples

from orchestrator.core.history import fold
from orchestrator.core.inventory import loads_inventory
from orchestrator.core.rollback import plan_domain_rollback, render
from orchestrator.errors import RefusedError
from tests.core import strategies
from tests.core.test_history import Script, inv60

NODES = ["psc-a", "psc-b", "vc-a", "vc-b"]
OLD, NEW = "6.0 U3", "6.5 U1"


def plan_of(s: Script, to: str = "pre"):
    inv = inv60()
    return plan_domain_rollback(inv, fold(inv, s.events), to)


def pairs(plan):
    return [(a.action, a.node) for a in plan.actions]


def core_pairs(plan):
    """The restore actions, stops and verifies of restored nodes: what the rollback does to the nodes that
    moved (every node is verified; `test_every_node_is_verified...` checks the others)."""
    restored = {a.node for a in plan.actions if a.action == "restore"}
    return [(a.action, a.node) for a in plan.actions
            if a.action == "restore" or (a.action in ("stop", "verify") and a.node in restored)]


def psc_wave(s: Script) -> Script:
    return s.window("opened").upgrade("psc-a", NEW, "psc").verify("psc-a", "psc") \
        .upgrade("psc-b", NEW, "psc").verify("psc-b", "psc")


def test_to_during_uses_the_during_backups():
    s = Script()
    for n in NODES:
        s.backup(n, "external", "pre", OLD, OLD, bid=f"pre-{n}")
    psc_wave(s)
    for n in NODES:
        s.backup(n, "external", "during", NEW if n.startswith("psc") else OLD, NEW, bid=f"during-{n}")
    s.upgrade("vc-a", NEW, "vcenter").upgrade("vc-b", NEW, "vcenter", status="failed")
    plan = plan_of(s, "during")
    assert plan.to == "during" and plan.id == "rollback-domain-during"
    assert core_pairs(plan) == [("stop", "vc-a"), ("restore", "vc-a"), ("verify", "vc-a")]
    assert ("stop", "vc-b") in pairs(plan) and ("start", "vc-b") in pairs(plan)  # stopped while vc-a is restored
    restore = next(a for a in plan.actions if a.action == "restore")
    assert restore.asset == "during-vc-a" and restore.to_version == OLD and restore.method == "external-restore"
    # --to pre from the same history takes every moved node back with the pre assets
    pre = plan_of(s, "pre")
    assert {a.asset for a in pre.actions if a.action == "restore"} == {"pre-psc-a", "pre-psc-b", "pre-vc-a"}


def test_to_during_without_during_backups_is_refused():
    s = psc_wave(Script().backup("psc-a", "external", "pre", OLD, OLD))
    with pytest.raises(RefusedError) as exc:
        plan_of(s, "during")
    assert exc.value.rule == "rollback-target" and "--to pre" in str(exc.value)


def test_bad_target_is_refused():
    with pytest.raises(RefusedError, match="pre or during"):
        plan_of(Script(), "yesterday")


def test_missing_assets_are_refused_naming_the_nodes():
    s = psc_wave(Script().backup("psc-a", "external", "pre", OLD, OLD)).upgrade("vc-b", NEW, "vcenter")
    with pytest.raises(RefusedError) as exc:
        plan_of(s)
    msg = str(exc.value)
    assert exc.value.rule == "rollback-assets"
    assert "psc-b (at 6.5 U1, must return to 6.0 U3)" in msg and "vc-b (at 6.5 U1, must return to 6.0 U3)" in msg
    assert "psc-a (" not in msg
    assert "new instance UUID" in msg


def test_backup_taken_at_the_new_domain_is_no_asset_for_pre():
    s = psc_wave(Script())
    for n in ("psc-a", "psc-b"):
        s.backup(n, "external", "during", NEW, NEW)
    with pytest.raises(RefusedError, match="psc-a .*psc-b"):
        plan_of(s)


def test_nothing_to_roll_back():
    with pytest.raises(RefusedError) as exc:
        plan_of(Script().backup("psc-a", "external", "pre", OLD, OLD))
    assert exc.value.rule == "rollback-nothing"


def test_snapshot_set_is_reverted_whole_even_members_that_did_not_move():
    s = Script().snapshot_set(NODES, "pre", dict.fromkeys(NODES, OLD), OLD, set_id="vcwave-pre-1")
    s.window("opened").upgrade("psc-a", NEW, "psc", status="failed").upgrade("psc-a", NEW, "psc")
    plan = plan_of(s)
    restores = [a for a in plan.actions if a.action == "restore"]
    assert {a.node for a in restores} == set(NODES)  # only psc-a moved
    assert {(a.method, a.asset) for a in restores} == {("snapshot-revert", "vcwave-pre-1")}
    assert pairs(plan)[:2] == [("stop", "vc-a"), ("stop", "vc-b")]
    assert [a.node for a in restores] == ["psc-a", "psc-b", "vc-a", "vc-b"]
    assert all(a.to_version == OLD for a in restores)
    assert "vcwave-pre-1" in render(plan)


def test_snapshot_set_preferred_over_other_assets():
    s = Script()
    for n in NODES:
        s.backup(n, "external", "pre", OLD, OLD)
    s.snapshot_set(NODES, "pre", dict.fromkeys(NODES, OLD), OLD, set_id="vcwave-pre-9")
    psc_wave(s)
    assert {a.method for a in plan_of(s).actions if a.action == "restore"} == {"snapshot-revert"}


def test_source_appliances_bring_the_pscs_back():
    """BUG (reported): the installer journals each kept source with the domain version at power-off. The
    second PSC is powered off while the first already runs 6.5 U1, so its source says domain
    '6.0 U3+6.5 U1'; `_asset_for(to='pre')` demands exactly '6.0 U3' and drops it, so a domain whose only
    way back is its kept sources (KB 322065) is refused."""
    s = Script().window("opened")
    s.source("psc-a", OLD, OLD).upgrade("psc-a", NEW, "psc")
    s.source("psc-b", OLD, f"{OLD}+{NEW}").upgrade("psc-b", NEW, "psc")  # what the engine really journals
    plan = plan_of(s)
    assert core_pairs(plan) == [("restore", "psc-a"), ("restore", "psc-b"), ("verify", "psc-a"), ("verify", "psc-b")]
    # vCenters that did not move still stop first and start again after the PSCs are back
    stops = [a for a in plan.actions if a.action == "stop"]
    starts = [a for a in plan.actions if a.action == "start"]
    assert {a.node for a in stops} == {a.node for a in starts} == {"vc-a", "vc-b"}
    first_restore = min(a.order for a in plan.actions if a.action == "restore")
    assert all(a.order < first_restore for a in stops) and all(a.order > first_restore for a in starts)
    assert {a.method for a in plan.actions if a.action == "restore"} == {"source-appliance"}


def test_source_appliance_of_the_first_psc_is_an_asset():
    s = Script().window("opened").source("psc-a", OLD, OLD).upgrade("psc-a", NEW, "psc")
    plan = plan_of(s)
    assert core_pairs(plan) == [("restore", "psc-a"), ("verify", "psc-a")]
    restore = next(a for a in plan.actions if a.action == "restore")
    assert restore.method == "source-appliance" and restore.asset == "psc-a"


def test_vcenter_source_appliance_is_an_asset_of_the_pre_rollback():
    """BUG (reported): an installer upgrade of a vCenter keeps its 6.0 U3 source appliance, journaled with the
    domain version at power-off — already 6.5 U1, since every PSC goes first. KB 322065 rolls an
    external-PSC domain back by bringing ALL kept sources back together, PSCs first, so that source is a
    valid asset for `--to pre`; `_asset_for` filters it out (domain_version != 6.0 U3) and the plan is
    refused for lack of assets."""
    s = Script().window("opened")
    for p in ("psc-a", "psc-b"):
        s.source(p, OLD, OLD).upgrade(p, NEW, "psc").verify(p, "psc")
    s.source("vc-a", OLD, NEW).upgrade("vc-a", NEW, "vcenter")
    plan = plan_of(s)
    restores = {a.node: a.method for a in plan.actions if a.action == "restore"}
    assert restores == {"psc-a": "source-appliance", "psc-b": "source-appliance", "vc-a": "source-appliance"}


def test_source_appliance_of_a_second_upgrade_is_not_the_way_to_pre():
    """A source kept at the NEW version (a node upgraded twice) cannot take it back to the old one."""
    s = Script().window("opened").source("psc-a", NEW, NEW).upgrade("psc-a", NEW, "psc")
    with pytest.raises(RefusedError, match="psc-a"):
        plan_of(s)


def test_unverified_backup_is_no_asset():
    s = Script().backup("psc-a", "external", "pre", OLD, OLD, verified=False).window("opened") \
        .upgrade("psc-a", NEW, "psc")
    with pytest.raises(RefusedError, match="psc-a"):
        plan_of(s)


# ------------------------------------------------------------------ order invariants (property)

@st.composite
def histories(draw):
    """A generated domain, part of its upgrade done in the documented order (a prefix of: every PSC, then
    vCenters), and assets: a pre snapshot set, pre/during backups, kept sources, in any mix."""
    dom = draw(strategies.domains(max_sites=3, max_pscs=2, max_vcs=2))
    inv = loads_inventory(dom.text)
    src, tgt = dom.source.release, dom.target.release
    order = list(dom.pscs) + list(dom.vcenters)
    done = draw(st.integers(1, len(order)))
    s = Script()
    versions = {n: src for n in order}
    if draw(st.booleans()):
        s.snapshot_set(order, "pre", versions, src, set_id="vcwave-pre-gen")
    for n in order:
        if draw(st.booleans()):
            s.backup(n, draw(st.sampled_from(["file", "external"])), "pre", src, src)
    s.window("opened")
    domain_now = src
    for i, n in enumerate(order[:done]):
        if draw(st.booleans()):
            s.source(n, src, domain_now)
        s.upgrade(n, tgt, "psc" if n in dom.pscs else "vcenter")
        versions[n] = tgt
        if i == len(dom.pscs) - 1:
            domain_now = tgt
            if draw(st.booleans()):
                for m in order:
                    s.backup(m, "external", "during", versions[m], tgt)
    return inv, s, dom


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.sampled_from(["pre", "during"]))
def test_order_invariants(h, to):
    inv, s, dom = h
    hist = fold(inv, s.events)
    try:
        plan = plan_domain_rollback(inv, hist, to)
    except RefusedError as exc:
        assert exc.rule in ("rollback-assets", "rollback-nothing", "rollback-target")
        assume(False)
    roles = {n.name: n.role for n in inv.nodes}
    acts = plan.actions
    assert [a.order for a in acts] == list(range(1, len(acts) + 1))
    kinds = [a.action for a in acts]
    # vCenter stops come before any PSC restore (in fact before any restore)
    psc_restores = [i for i, a in enumerate(acts) if a.action == "restore" and roles[a.node] == "psc"]
    vc_restores = [i for i, a in enumerate(acts) if a.action == "restore" and roles[a.node] == "vcenter"]
    stops = [i for i, a in enumerate(acts) if a.action == "stop"]
    assert all(roles[acts[i].node] == "vcenter" for i in stops)
    if psc_restores:
        assert all(i < min(psc_restores) for i in stops)
    # every PSC restore before any vCenter restore
    if psc_restores and vc_restores:
        assert max(psc_restores) < min(vc_restores)
    # verify actions last, one per node of the domain (done only when every node answers at its version)
    first_verify = kinds.index("verify")
    assert all(k == "verify" for k in kinds[first_verify:]) and "verify" not in kinds[:first_verify]
    restored = [a.node for a in acts if a.action == "restore"]
    assert sorted(a.node for a in acts if a.action == "verify") == sorted(roles)
    assert len(set(restored)) == len(restored)
    # every vCenter restored was stopped first
    stopped = {a.node for a in acts if a.action == "stop"}
    assert stopped >= {n for n in restored if roles[n] == "vcenter"}
    assert {a.node for a in acts if a.action == "start"} == stopped - set(restored)
    # every node that moved is restored
    want_old = {n.name: n.version.release for n in inv.nodes}
    moved = {n for n, h in hist.nodes.items() if h.version.release != want_old[n]}
    if to == "pre":
        assert moved <= set(restored)
    # a snapshot set is all-or-nothing
    set_members = {a.node for a in acts if a.method == "snapshot-revert"}
    if set_members:
        assert set_members == {b.node for b in hist.backups if b.set_id == "vcwave-pre-gen"}


# ------------------------------------------------------------------ everything not known good (issue 14)

def _pre_backups(s: Script) -> Script:
    for n in NODES:
        s.backup(n, "external", "pre", OLD, OLD, bid=f"pre-{n}")
    return s


def NodeSeen(answering: bool, version: str = "", why: str = ""):
    """A live node as core.live folds it (only what the rollback reads)."""
    from orchestrator.core.live import LiveNode
    from orchestrator.core.versions import parse_version
    return LiveNode("n", "", "answering" if answering else "unknown", parse_version(version) if version else None,
                    parse_version(OLD), why)


def _live(**seen):
    out = {n: NodeSeen(True, NEW if n.startswith("psc") else OLD) for n in NODES}
    out.update(seen)
    return out


def test_a_vcenter_whose_install_failed_is_restored_and_verified_not_just_powered_on():
    """The journal still has vc-b at the old version after its failed install: it is touched, so it is
    restored (not only stopped and started) and verified."""
    from orchestrator.core.rollback import not_known_good
    s = psc_wave(_pre_backups(Script())).upgrade("vc-b", NEW, "vcenter", status="failed")
    inv = inv60()
    hist = fold(inv, s.events)
    plan = plan_domain_rollback(inv, hist, live=_live(), touched={"vc-b"}, target=NEW)
    acts = pairs(plan)
    assert ("restore", "vc-b") in acts and ("start", "vc-b") not in acts
    assert [n for a, n in acts if a == "verify"] == NODES
    assert "failed or was interrupted" in next(a.reason for a in plan.actions if a.node == "vc-b"
                                              and a.action == "restore")
    assert "vc-a" not in not_known_good(inv, hist, {n: OLD for n in NODES}, _live(), {"vc-b"})


def test_a_lost_node_and_a_vcenter_the_journal_never_saw_move_are_restored():
    s = psc_wave(_pre_backups(Script()))
    live = _live(**{"vc-a": NodeSeen(False, why="connection refused"), "vc-b": NodeSeen(True, NEW)})
    plan = plan_domain_rollback(inv60(), fold(inv60(), s.events), live=live)
    restores = {a.node: a.reason for a in plan.actions if a.action == "restore"}
    assert set(restores) == set(NODES)
    assert "not answering (connection refused)" in restores["vc-a"]
    assert "never saw it move" in restores["vc-b"]


def test_a_domain_that_answers_at_its_old_version_untouched_has_nothing_to_roll_back():
    s = _pre_backups(Script())
    with pytest.raises(RefusedError) as exc:
        plan_domain_rollback(inv60(), fold(inv60(), s.events), live={n: NodeSeen(True, OLD) for n in NODES})
    assert exc.value.rule == "rollback-nothing"


def test_the_forward_way_out_is_offered_only_when_every_psc_is_at_the_target():
    s = psc_wave(_pre_backups(Script())).upgrade("vc-b", NEW, "vcenter", status="failed")
    plan = plan_domain_rollback(inv60(), fold(inv60(), s.events), live=_live(), touched={"vc-b"}, target=NEW)
    assert "upgrade --wave vcenter" in plan.alternative and "vc-b" in plan.alternative
    # a command that runs: the wave limited to the vCenter that remains (the whole wave is refused while
    # vc-b is silent), and no restore offered for vc-b, which has no backup taken in the upgraded domain
    assert "`invoke upgrade --wave vcenter --node vc-a`" in plan.alternative
    assert "vc-b has no backup taken in the upgraded domain" in plan.alternative
    assert "rollback --node" not in plan.alternative
    assert plan.alternative in render(plan)
    half = _pre_backups(Script()).window("opened").upgrade("psc-a", NEW, "psc")
    plan = plan_domain_rollback(inv60(), fold(inv60(), half.events), target=NEW)
    assert plan.alternative == ""

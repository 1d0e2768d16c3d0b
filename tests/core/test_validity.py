"""Which backups can still bring a node back (validity) — the seed's scenarios, one test each.

The domain is the seed's own: two sites, one external PSC and one vCenter each, at 6.0 U3, upgraded to
6.5 U1. 6.0 has no file-based backup, so single-node backups here are image-level ("external", e.g. VADP).
"""
from __future__ import annotations

import pytest

from orchestrator.core.history import fold
from orchestrator.core.rollback import plan_domain_rollback, plan_node_rollback
from orchestrator.core.validity import (
    WHOLE_DOMAIN,
    judge,
    judge_all,
    nodes_without_usable_backup,
    usable_single,
)
from orchestrator.errors import RefusedError
from tests.core.test_history import Script, inv60

NODES = ["psc-a", "psc-b", "vc-a", "vc-b"]
OLD, NEW = "6.0 U3", "6.5 U1"


def pre_backups(s: Script, method: str = "external") -> Script:
    for n in NODES:
        s.backup(n, method, "pre", OLD, OLD, bid=f"{method}-pre-{n}")
    return s


def psc_wave(s: Script) -> Script:
    return s.window("opened").upgrade("psc-a", NEW, "psc").verify("psc-a", "psc") \
        .upgrade("psc-b", NEW, "psc").verify("psc-b", "psc")


def verdict_of(s: Script, node: str):
    inv = inv60()
    return usable_single(judge_all(inv, fold(inv, s.events))[node]), judge_all(inv, fold(inv, s.events))[node]


# ------------------------------------------------------------------ the seed's scenarios

def test_vcenter_lost_after_psc_wave_pre_backup_cannot_restore_it_alone():
    """'If the backup you need to restore from was taken prior to the start of the vSphere Domain upgrade,
    you would not be able to use it to restore.'"""
    s = psc_wave(pre_backups(Script()))
    usable, verdicts = verdict_of(s, "vc-a")
    assert usable is None
    (v,) = verdicts
    assert not v.single_node and v.whole_domain
    assert "taken at domain 6.0 U3, domain is now 6.5 U1" in v.reason
    assert "whole-domain rollback" in v.reason and WHOLE_DOMAIN in v.reason


def test_vcenter_lost_after_psc_wave_single_node_rollback_is_refused_naming_the_domain_rollback():
    s = psc_wave(pre_backups(Script()))
    inv = inv60()
    with pytest.raises(RefusedError) as exc:
        plan_node_rollback(inv, fold(inv, s.events), "vc-a")
    assert exc.value.rule == "single-node-rollback" and exc.value.node == "vc-a"
    msg = str(exc.value)
    assert "vc-a cannot be restored alone" in msg
    assert "taken at domain 6.0 U3, domain is now 6.5 U1" in msg
    assert "`invoke rollback`" in msg


def test_vcenter_lost_after_psc_wave_the_domain_rollback_is_proposed():
    """'An alternative to this would be to rollback the entire vSphere Domain and any other vCenter Servers
    that were upgraded': here vc-b was upgraded too."""
    s = psc_wave(pre_backups(Script())).upgrade("vc-b", NEW, "vcenter")
    inv = inv60()
    plan = plan_domain_rollback(inv, fold(inv, s.events))
    assert plan.scope == "domain" and plan.to == "pre"
    acts = [(a.action, a.node) for a in plan.actions]
    # every vCenter stops first (vc-a did not move: it starts again once the PSCs are back)
    assert acts == [("stop", "vc-a"), ("stop", "vc-b"), ("restore", "psc-a"), ("restore", "psc-b"),
                    ("restore", "vc-b"), ("start", "vc-a"), ("verify", "psc-a"), ("verify", "psc-b"),
                    ("verify", "vc-a"), ("verify", "vc-b")]
    assert all(a.to_version == OLD for a in plan.actions if a.action in ("restore", "verify"))
    assert [a.order for a in plan.actions] == list(range(1, len(plan.actions) + 1))
    restores = {a.node: a for a in plan.actions if a.action == "restore"}
    assert restores["psc-a"].asset == "external-pre-psc-a" and "PSCs first" in restores["psc-a"].reason
    assert "then vCenters" in restores["vc-b"].reason


def test_backup_taken_during_restores_that_vcenter_alone():
    """'Take full backups before, during, and after': a vCenter backup taken once every PSC runs 6.5 U1
    matches the domain, so it can bring that vCenter back by itself."""
    s = psc_wave(pre_backups(Script())).backup("vc-a", "external", "during", OLD, NEW, bid="vadp-during-vc-a")
    usable, verdicts = verdict_of(s, "vc-a")
    assert usable is not None and usable.backup.backup_id == "vadp-during-vc-a"
    assert usable.single_node and "current domain version 6.5 U1" in usable.reason
    assert not usable.whole_domain  # taken in the 6.5 domain: no use to a rollback to 6.0 U3
    assert [v.backup.tag for v in verdicts] == ["during", "pre"]  # newest first
    inv = inv60()
    plan = plan_node_rollback(inv, fold(inv, s.events), "vc-a")
    assert plan.scope == "vc-a"
    assert [(a.action, a.node, a.asset, a.to_version) for a in plan.actions] == [
        ("restore", "vc-a", "vadp-during-vc-a", OLD), ("verify", "vc-a", "", OLD)]


def test_single_node_restore_of_an_external_backup_uses_the_external_method():
    """BUG (reported): plan_node_rollback always says `file-restore`, so an image-level (external) backup
    would be 'restored' through the appliance REST restore job — which a 6.0 node does not have. The domain
    planner maps external -> external-restore; the single-node planner must do the same."""
    s = psc_wave(pre_backups(Script())).backup("vc-a", "external", "during", OLD, NEW, bid="vadp-during-vc-a")
    inv = inv60()
    plan = plan_node_rollback(inv, fold(inv, s.events), "vc-a")
    assert plan.actions[0].method == "external-restore"


def test_snapshot_set_member_is_never_restored_alone():
    """'A single reverted PSC breaks replication': even a set taken at the current domain version."""
    s = Script().snapshot_set(NODES, "pre", dict.fromkeys(NODES, OLD), OLD, set_id="vcwave-pre-1")
    for n in NODES:
        usable, (v,) = verdict_of(s, n)
        assert usable is None and not v.single_node and v.whole_domain
        assert "snapshot set" in v.reason and WHOLE_DOMAIN in v.reason
    inv = inv60()
    with pytest.raises(RefusedError, match="snapshot set"):
        plan_node_rollback(inv, fold(inv, s.events), "psc-a")


def test_source_appliance_only_in_a_domain_rollback():
    """KB 322065: the kept source comes back only with the whole domain, PSCs first."""
    s = Script().window("opened").source("psc-a", OLD, OLD).upgrade("psc-a", NEW, "psc")
    inv = inv60()
    (v,) = judge_all(inv, fold(inv, s.events))["psc-a"]
    assert v.backup.method == "source-appliance"
    assert not v.single_node and v.whole_domain and "KB 322065" in v.reason
    with pytest.raises(RefusedError, match="source appliance"):
        plan_node_rollback(inv, fold(inv, s.events), "psc-a")
    plan = plan_domain_rollback(inv, fold(inv, s.events))
    (restore,) = [a for a in plan.actions if a.action == "restore"]
    assert (restore.node, restore.method, restore.asset) == ("psc-a", "source-appliance", "psc-a")


def test_mid_psc_wave_no_single_restore_for_anyone():
    """While the PSCs differ (6.0 U3 + 6.5 U1), no node is restored alone, not even with a backup that
    matches the PSC it uses."""
    s = pre_backups(Script()).window("opened").upgrade("psc-a", NEW, "psc")
    inv = inv60()
    hist = fold(inv, s.events)
    for n in NODES:
        (v,) = judge_all(inv, hist)[n]
        assert not v.single_node
        assert "mid-upgrade (6.0 U3+6.5 U1)" in v.reason and WHOLE_DOMAIN in v.reason
        assert v.whole_domain  # taken at the original domain: fine for the domain rollback
    assert sorted(nodes_without_usable_backup(inv, hist)) == sorted(NODES)
    with pytest.raises(RefusedError, match="mid-upgrade"):
        plan_node_rollback(inv, hist, "vc-b")


def test_before_the_window_the_pre_backup_restores_alone():
    s = pre_backups(Script())
    inv = inv60()
    hist = fold(inv, s.events)
    assert nodes_without_usable_backup(inv, hist) == []
    usable, _ = verdict_of(s, "psc-a")
    assert usable.single_node and usable.whole_domain


def test_unverified_backup_counts_for_nothing():
    s = Script().backup("vc-a", "external", "pre", OLD, OLD, verified=False)
    usable, (v,) = verdict_of(s, "vc-a")
    assert usable is None and not v.whole_domain and "not verified" in v.reason


def test_psc_backup_older_than_its_partners_is_refused():
    """After the psc wave a PSC backup must be at the domain's version (its replication partners)."""
    s = psc_wave(Script()).backup("psc-a", "external", "during", OLD, NEW, bid="odd")
    inv = inv60()
    (v,) = judge_all(inv, fold(inv, s.events))["psc-a"]
    assert not v.single_node and "replication partners run 6.5 U1" in v.reason


def test_no_backup_at_all():
    inv = inv60()
    with pytest.raises(RefusedError, match="no backup recorded"):
        plan_node_rollback(inv, fold(inv, []), "vc-a")
    with pytest.raises(RefusedError, match="no node 'nope'"):
        plan_node_rollback(inv, fold(inv, []), "nope")


def test_judge_is_against_the_current_domain_not_the_backups_age():
    """After a whole-domain rollback to 6.0 U3 the old pre backup is usable alone again."""
    s = psc_wave(pre_backups(Script()))
    s.restore("psc-a", OLD).restore("psc-b", OLD)
    inv = inv60()
    hist = fold(inv, s.events)
    v = judge(next(b for b in hist.backups if b.node == "vc-a"), inv, hist)
    assert v.single_node and v.whole_domain


def test_after_finalize_nothing_before_it_is_offered_but_a_backup_at_the_target_still_restores_alone():
    """Status after `finalize` said 'whole domain can be restored from: the pre backups' and every backup line
    said 'use invoke rollback', which `rollback` then refused (a new user): the point of no return is in the
    verdicts."""
    from dataclasses import replace

    s = pre_backups(Script())
    psc_wave(s).window("opened")
    for vc in ("vc-a", "vc-b"):
        s.upgrade(vc, NEW, "vcenter").verify(vc, "vcenter")
    s.source("vc-a", OLD, OLD)
    for n in NODES:
        s.backup(n, "external", "post", NEW, NEW, bid=f"post-{n}")
    inv = inv60()
    before = judge_all(inv, fold(inv, s.events))
    assert any(v.whole_domain for v in before["vc-a"] if v.backup.tag == "pre")
    after = judge_all(inv, replace(fold(inv, s.events), finalized=1.0))
    for n in NODES:
        for v in after[n]:
            assert not v.whole_domain, (n, v)
            if v.backup.domain_version == OLD or v.backup.method == "source-appliance":
                assert not v.single_node and "point of no return" in v.reason, (n, v)
        assert usable_single(after[n]).backup.backup_id == f"post-{n}"

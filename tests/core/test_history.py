"""history.fold: the journal's events folded into versions, backups, the window and step states (pure).

Events are built with a tiny frozen dataclass matching `EventLike`, and once through a real Journal, so the
fold is checked against exactly what the engine writes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.core.history import EventLike, domain_version, fold
from orchestrator.core.inventory import load_inventory
from orchestrator.core.versions import parse_version
from orchestrator.engine.journal import Journal

REPO = Path(__file__).resolve().parents[2]
EX = REPO / "examples"


@dataclass(frozen=True)
class Ev:
    seq: int
    ts: float
    kind: str
    run_id: str = "run1"
    phase: str = ""
    node: str = ""
    step: str = ""
    action: str = ""
    status: str = ""
    data: dict = field(default_factory=dict)


class Script:
    """Builds an event list the way the engine journals it (seq and ts increase by one per event)."""

    def __init__(self) -> None:
        self.events: list[Ev] = []

    def add(self, kind: str, **kw) -> "Script":
        n = len(self.events) + 1
        self.events.append(Ev(seq=n, ts=1000.0 + n, kind=kind, **kw))
        return self

    def step(self, node: str, action: str, status: str, step: str = "", phase: str = "", **data) -> "Script":
        return self.add("step", node=node, action=action, status=status, phase=phase,
                        step=step or f"{phase or 'x'}/{action}/{node}", data=data)

    def upgrade(self, node: str, to: str, phase: str = "", build: int | None = None, status: str = "succeeded",
                started: bool = True) -> "Script":
        sid = f"{phase or 'wave'}/upgrade/{node}"
        if started:
            self.step(node, "upgrade", "started", sid, phase)
        data = {"version_after": to, **({"build_after": build} if build else {})} if status == "succeeded" else {}
        return self.step(node, "upgrade", status, sid, phase, **data)

    def verify(self, node: str, phase: str = "", version: str = "") -> "Script":
        sid = f"{phase or 'wave'}/verify/{node}"
        self.step(node, "verify", "started", sid, phase)
        return self.step(node, "verify", "succeeded", sid, phase, **({"version_after": version} if version else {}))

    def restore(self, node: str, to: str, sid: str = "") -> "Script":
        sid = sid or f"rollback-domain-pre/restore/{node}"
        self.step(node, "rollback", "started", sid, "rollback")
        return self.step(node, "rollback", "succeeded", sid, "rollback", version_after=to)

    def backup(self, node: str, method: str, tag: str, node_version: str, domain: str, bid: str = "",
               set_id: str = "", verified: bool = True, location: str = "") -> "Script":
        data = {"backup_id": bid or f"{method}-{tag}-{node}-{len(self.events)}", "method": method,
                "location": location, "node_version": node_version, "domain_version": domain, "tag": tag,
                "verified": verified}
        if set_id:
            data["set_id"] = set_id
        return self.add("backup", node=node, status="recorded", data=data)

    def snapshot_set(self, nodes: list[str], tag: str, versions: dict[str, str], domain: str,
                     set_id: str = "") -> "Script":
        set_id = set_id or f"vcwave-{tag}-{len(self.events):04d}"
        for n in nodes:
            self.backup(n, "snapshot-set", tag, versions[n], domain, bid=f"{set_id}:{n}", set_id=set_id)
        return self

    def source(self, node: str, node_version: str, domain: str, vm: str = "") -> "Script":
        return self.add("source_appliance", node=node, status="kept",
                        data={"vm_name": vm or node, "vm_moref": "", "node_version": node_version,
                              "domain_version": domain, "new_vm_name": f"{node}-new"})

    def window(self, status: str) -> "Script":
        return self.add("window", status=status)


def inv60():
    return load_inventory(EX / "two-site-6.0.yml")


def test_ev_matches_the_protocol():
    e: EventLike = Ev(1, 1.0, "step")  # type-checks structurally; attributes present at runtime
    for name in EventLike.__annotations__:
        assert hasattr(e, name)


def test_fold_of_nothing_is_the_inventory():
    inv = inv60()
    h = fold(inv, [])
    assert {n: v.release for n, v in h.versions().items()} == {n.name: "6.0 U3" for n in inv.nodes}
    assert h.backups == () and h.window_opened is None and h.window_closed is None
    assert h.failed_steps == () and h.running_steps == () and h.events == 0 and h.rollbacks == 0
    assert domain_version(inv, h.versions()) == "6.0 U3"


def test_succeeded_upgrade_moves_the_version_and_counts_once():
    s = Script().upgrade("psc-a", "6.5 U1", "psc", build=5973321)
    h = fold(inv60(), s.events)
    a = h.nodes["psc-a"]
    assert a.version.release == "6.5 U1" and a.version.build == 5973321
    assert a.upgraded == 1 and (a.last_step, a.last_status) == ("psc/upgrade/psc-a", "succeeded")
    assert h.nodes["psc-b"].version.release == "6.0 U3" and h.nodes["psc-b"].upgraded == 0
    assert h.events == 2


def test_failed_or_started_upgrade_does_not_move_the_version():
    s = Script().upgrade("psc-a", "6.5 U1", "psc", status="failed")
    s.step("psc-b", "upgrade", "started", "psc/upgrade/psc-b", "psc")
    h = fold(inv60(), s.events)
    assert h.nodes["psc-a"].version.release == "6.0 U3" and h.nodes["psc-a"].upgraded == 0
    assert h.failed_steps == ("psc/upgrade/psc-a",)
    assert h.running_steps == ("psc/upgrade/psc-b",)
    assert h.nodes["psc-b"].last_status == "started"


def test_a_retried_step_clears_its_failure():
    s = Script().upgrade("psc-a", "6.5 U1", "psc", status="failed").upgrade("psc-a", "6.5 U1", "psc")
    h = fold(inv60(), s.events)
    assert h.failed_steps == () and h.running_steps == ()
    assert h.nodes["psc-a"].upgraded == 1


def test_reconciled_outcome_counts_as_that_outcome():
    s = Script()
    s.step("psc-a", "upgrade", "started", "psc/upgrade/psc-a", "psc")
    s.step("psc-a", "upgrade", "reconciled", "psc/upgrade/psc-a", "psc", outcome="succeeded",
           version_after="6.5 U1")
    h = fold(inv60(), s.events)
    assert h.nodes["psc-a"].version.release == "6.5 U1" and h.nodes["psc-a"].upgraded == 1
    assert h.nodes["psc-a"].last_status == "succeeded" and h.running_steps == ()


def test_reconciled_not_done_leaves_the_version_and_is_not_running():
    s = Script()
    s.step("psc-a", "upgrade", "started", "psc/upgrade/psc-a", "psc")
    s.step("psc-a", "upgrade", "reconciled", "psc/upgrade/psc-a", "psc", outcome="not_done")
    h = fold(inv60(), s.events)
    assert h.nodes["psc-a"].version.release == "6.0 U3" and h.nodes["psc-a"].upgraded == 0
    assert h.nodes["psc-a"].last_status == "not_done"
    assert h.running_steps == () and h.failed_steps == ()


def test_reconciled_failed_is_a_failure():
    s = Script()
    s.step("vc-a", "upgrade", "started", "vcenter/upgrade/vc-a", "vcenter")
    s.step("vc-a", "upgrade", "reconciled", "vcenter/upgrade/vc-a", "vcenter", outcome="failed")
    assert fold(inv60(), s.events).failed_steps == ("vcenter/upgrade/vc-a",)


def test_restore_moves_the_version_back_without_counting_an_upgrade():
    s = Script().upgrade("psc-a", "6.5 U1", "psc").restore("psc-a", "6.0 U3")
    h = fold(inv60(), s.events)
    assert h.nodes["psc-a"].version.release == "6.0 U3"
    assert h.nodes["psc-a"].upgraded == 1  # the upgrade happened once; the restore is not an upgrade
    assert h.rollbacks == 0  # per-node rollback actions are not the domain rollback


def test_domain_rollback_marker_is_counted():
    s = Script().add("step", node="", step="rollback-domain-pre", action="rollback", status="succeeded",
                     phase="rollback", data={"scope": "domain"})
    assert fold(inv60(), s.events).rollbacks == 1


def test_upgraded_twice_is_counted_twice():
    s = Script().upgrade("vc-a", "6.5 U1", "vcenter").upgrade("vc-a", "6.5 U1", "vcenter")
    assert fold(inv60(), s.events).nodes["vc-a"].upgraded == 2


def test_verify_records_the_release_it_was_verified_at():
    s = Script().upgrade("psc-a", "6.5 U1", "psc").verify("psc-a", "psc")
    h = fold(inv60(), s.events)
    assert h.nodes["psc-a"].verified_at == "6.5 U1" and h.nodes["psc-b"].verified_at == ""


def test_verify_before_upgrade_is_at_the_old_release():
    s = Script().verify("psc-a", "pre")
    assert fold(inv60(), s.events).nodes["psc-a"].verified_at == "6.0 U3"


def test_window_opens_once_and_closes():
    s = Script().window("closed").window("opened").window("opened").window("closed")
    h = fold(inv60(), s.events)
    assert h.window_opened == 1002.0  # the first 'closed' (nothing open) is ignored; re-open ignored
    assert h.window_closed == 1004.0


def test_window_open_while_running():
    h = fold(inv60(), Script().window("opened").events)
    assert h.window_opened == 1001.0 and h.window_closed is None


def test_backups_carry_tag_and_domain_version():
    s = Script()
    s.backup("vc-a", "external", "pre", "6.0 U3", "6.0 U3", bid="vadp-1", location="/opt/bk")
    s.upgrade("psc-a", "6.5 U1").upgrade("psc-b", "6.5 U1")
    s.backup("vc-a", "external", "during", "6.0 U3", "6.5 U1", bid="vadp-2", verified=False)
    h = fold(inv60(), s.events)
    pre, during = h.backups
    assert (pre.node, pre.method, pre.backup_id, pre.location, pre.tag) == ("vc-a", "external", "vadp-1", "/opt/bk", "pre")
    assert (pre.node_version, pre.domain_version, pre.verified) == ("6.0 U3", "6.0 U3", True)
    assert (during.tag, during.domain_version, during.verified) == ("during", "6.5 U1", False)
    assert pre.ts < during.ts


def test_snapshot_set_members_share_the_set_id():
    s = Script().snapshot_set(["psc-a", "psc-b", "vc-a", "vc-b"], "pre", dict.fromkeys(
        ["psc-a", "psc-b", "vc-a", "vc-b"], "6.0 U3"), "6.0 U3", set_id="vcwave-pre-1")
    h = fold(inv60(), s.events)
    assert {b.set_id for b in h.backups} == {"vcwave-pre-1"} and len(h.backups) == 4
    assert all(b.method == "snapshot-set" for b in h.backups)


def test_source_appliance_is_an_asset():
    s = Script().upgrade("psc-a", "6.5 U1", "psc").source("psc-a", "6.0 U3", "6.0 U3", vm="psc-a-vm")
    s.add("source_appliance", node="psc-b", status="discarded", data={})  # only 'kept' counts
    (b,) = fold(inv60(), s.events).backups
    assert (b.node, b.method, b.backup_id, b.node_version, b.domain_version, b.tag) == (
        "psc-a", "source-appliance", "psc-a-vm", "6.0 U3", "6.0 U3", "during")


def test_events_of_unknown_nodes_are_ignored_for_versions():
    s = Script().upgrade("ghost", "6.5 U1")
    h = fold(inv60(), s.events)
    assert "ghost" not in h.nodes and h.events == 2


def test_domain_version_mixed_during_psc_wave():
    inv = inv60()
    v = {n.name: n.version for n in inv.nodes}
    v["psc-a"] = parse_version("6.5 U1")
    assert domain_version(inv, v) == "6.0 U3+6.5 U1"
    v["psc-b"] = parse_version("6.5 U1")
    v["vc-a"] = parse_version("6.5 U1")
    assert domain_version(inv, v) == "6.5 U1"  # the domain is its PSCs


def test_fold_of_a_real_journal(tmp_path):
    """The same fold over events read back from a real journal (what the engine writes)."""
    inv = inv60()
    j = Journal.open(tmp_path / "journal.sqlite")
    try:
        j.append("backup", node="vc-a", status="recorded", data={
            "backup_id": "vadp-1", "method": "external", "location": "", "node_version": "6.0 U3",
            "domain_version": "6.0 U3", "tag": "pre"})
        j.append("window", status="opened")
        for sid, node in (("psc/upgrade/psc-a", "psc-a"), ("psc/upgrade/psc-b", "psc-b")):
            j.append("step", node=node, step=sid, action="upgrade", status="started", phase="psc")
            j.append("step", node=node, step=sid, action="upgrade", status="succeeded", phase="psc",
                     data={"version_after": "6.5 U1", "build_after": 5973321})
        j.append("source_appliance", node="psc-a", status="kept",
                 data={"vm_name": "psc-a", "node_version": "6.0 U3", "domain_version": "6.0 U3"})
        j.append("step", node="vc-a", step="vcenter/upgrade/vc-a", action="upgrade", status="started")
        events = j.events()
    finally:
        j.close()
    h = fold(inv, events)
    assert h.versions()["psc-a"].release == "6.5 U1" and h.versions()["psc-b"].build == 5973321
    assert domain_version(inv, h.versions()) == "6.5 U1"
    assert [b.method for b in h.backups] == ["external", "source-appliance"]
    assert h.window_opened == events[1].ts and h.window_closed is None
    assert h.running_steps == ("vcenter/upgrade/vc-a",)
    assert h.events == len(events)

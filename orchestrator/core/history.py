"""Fold the journal's events into what the domain looks like now (pure).

Why here and not in the engine: status, backup validity, rollback planning and the report all need the
same answer to "which version does each node run, which backups exist, is the window open?". Computing
it once, as a pure function of the journal's events (duck-typed: kind, node, step, action, status, ts,
data), keeps the journal the single source of truth and this logic testable without I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

from orchestrator.core.interop import supports_external_psc
from orchestrator.core.inventory import Inventory
from orchestrator.core.versions import Version, parse_version


class EventLike(Protocol):
    seq: int
    ts: float
    kind: str
    run_id: str
    phase: str
    node: str
    step: str
    action: str
    status: str
    data: dict


# Journal notes written by `invoke finalize` (the journal's own event kinds stay as they are).
FINALIZE_REMOVED = "finalize-removed"
FINALIZED = "finalized"
FINALIZE_DECOMMISSIONED = "finalize-decommissioned"  # an external PSC left the SSO domain (converge hop)
ROLLBACK_PLAN, ROLLBACK_DONE = "rollback-plan", "rollback-done"  # written by `invoke rollback`
REFUSED = "refused"  # a guard refused a command on a domain with a journal (data: rule, reason); the report shows it


@dataclass(frozen=True)
class Backup:
    """A recorded way back for one node: a file backup, a member of a snapshot set, an external backup, or
    a powered-off source appliance kept by the installer."""

    node: str
    method: str  # file | snapshot-set | external | source-appliance
    backup_id: str
    location: str
    node_version: str
    domain_version: str
    ts: float
    tag: str = ""  # pre | during | post
    set_id: str = ""
    verified: bool = True


@dataclass(frozen=True)
class RestoreDue:
    """A file restore of the open rollback plan that has not succeeded yet. `begun`: its step ran before
    (a restore it started may have brought the node back already: the step asks the node's restore job)."""

    node: str
    version: str
    begun: bool = False


def rollback_plan_id(scope: str, to: str) -> str:
    """A rollback plan's id, the prefix of its steps' ids (`rollback_step_id`)."""
    return f"rollback-{scope}-{to}"


def rollback_step_id(plan_id: str, order: int, action: str, node: str) -> str:
    """The journal step id of one rollback action: the command runs it under this id, the fold follows it."""
    return f"{plan_id}/{order:02d}-{action}/{node}"


def _restores_due(plan: dict) -> dict[str, RestoreDue]:
    """step id -> the file restores a saved rollback plan (a ROLLBACK_PLAN note's data) will run."""
    pid = rollback_plan_id(plan["scope"], plan["to"])
    return {rollback_step_id(pid, a["order"], a["action"], a["node"]): RestoreDue(a["node"], a["to_version"])
            for a in plan.get("actions", ()) if a.get("method") == "file-restore"}


@dataclass(frozen=True)
class NodeHistory:
    name: str
    version: Version
    last_step: str = ""
    last_status: str = ""
    upgraded: int = 0  # how many upgrade steps succeeded (exactly-once check)
    verified_at: str = ""  # release at which the last verify succeeded


@dataclass(frozen=True)
class DomainHistory:
    nodes: dict[str, NodeHistory]
    backups: tuple[Backup, ...]
    window_opened: float | None
    window_closed: float | None
    failed_steps: tuple[str, ...]
    running_steps: tuple[str, ...]
    rollbacks: int = 0
    events: int = 0
    prechecks: dict[str, tuple[str, float]] = field(default_factory=dict)  # node -> newest (outcome, ts)
    paused: tuple[str, ...] = ()  # steps paused for a manual change (`invoke verify --node N` confirms it)
    finalized: float | None = None  # `invoke finalize` passed the point of no return (kept sources removed)
    decommissioned: tuple[str, ...] = ()  # external PSCs `invoke finalize` decommissioned (converge hop)
    rollback_open: bool = False  # a domain rollback's plan is saved and not done: `invoke rollback` resumes it
    restores_due: tuple[RestoreDue, ...] = ()  # the open rollback's file restores not yet done

    def versions(self) -> dict[str, Version]:
        return {n: h.version for n, h in self.nodes.items()}


def domain_version(inv: Inventory, versions: dict[str, Version], decommissioned: Iterable[str] = ()) -> str:
    """The SSO domain's version = the version of the nodes that carry SSO: its external PSCs (until they are
    decommissioned) and, once converged (7.0+), its vCenters. During a wave it is a mix, e.g. '6.0 U3+6.5 U1',
    or '6.7 U1+7.0 U3' while the vCenters converge and until the PSCs are decommissioned."""
    gone = set(decommissioned)
    carriers = [p.name for p in inv.pscs if p.name not in gone] + [v.name for v in inv.vcenters
                                              if not supports_external_psc(versions[v.name])]
    rels = sorted({versions[n].without_build() for n in carriers})
    return "+".join(v.release for v in rels)


def fold(inv: Inventory, events: Iterable[EventLike]) -> DomainHistory:
    """Replay events in order. Versions start from the inventory and move with every successful upgrade,
    restore or rollback step (`data["version_after"]`)."""
    versions = {n.name: n.version for n in inv.nodes}
    last: dict[str, tuple[str, str]] = {n.name: ("", "") for n in inv.nodes}
    upgraded = {n.name: 0 for n in inv.nodes}
    verified = {n.name: "" for n in inv.nodes}
    backups: list[Backup] = []
    opened = closed = None
    failed: dict[str, str] = {}
    running: dict[str, str] = {}
    rollbacks = 0
    count = 0
    prechecks: dict[str, tuple[str, float]] = {}
    paused: dict[str, str] = {}
    finalized = None
    decommissioned: list[str] = []
    rollback_open = False
    due: dict[str, RestoreDue] = {}
    for e in events:
        count += 1
        if e.kind == "step":
            key = f"{e.node}:{e.step}"
            status = e.data.get("outcome", e.status) if e.status == "reconciled" else e.status
            if e.node in last:
                last[e.node] = (e.step, status)
            if status == "started":
                running[key] = e.step
            else:
                running.pop(key, None)
            if e.step in due:  # a restore began unless the step stopped at its pause, before any restore
                due[e.step] = RestoreDue(due[e.step].node, due[e.step].version,
                                         not (status == "failed" and e.data.get("manual")))
                if status in ("succeeded", "skipped"):
                    del due[e.step]
            if e.action == "precheck" and status in ("succeeded", "failed"):
                prechecks[e.node] = (status, e.ts)
            if status == "failed":
                failed[key] = e.step
                if e.data.get("manual"):
                    paused[key] = e.step
            elif status in ("succeeded", "skipped"):
                failed.pop(key, None)
                paused.pop(key, None)
            if status == "succeeded" and e.data.get("version_after") and e.node in versions:
                versions[e.node] = parse_version(e.data["version_after"], e.data.get("build_after"))
                if e.action == "upgrade":
                    upgraded[e.node] += 1
            if status == "succeeded" and e.action == "verify" and e.node in versions:
                verified[e.node] = versions[e.node].release
            if status == "succeeded" and e.action == "rollback" and e.node == "":
                rollbacks += 1
        elif e.kind == "backup":
            d = e.data
            backups.append(Backup(e.node, d["method"], str(d["backup_id"]), str(d.get("location", "")),
                                  d["node_version"], d["domain_version"], e.ts, d.get("tag", ""),
                                  d.get("set_id", ""), bool(d.get("verified", True))))
        elif e.kind == "source_appliance" and e.status == "kept":
            d = e.data
            backups.append(Backup(e.node, "source-appliance", d["vm_name"], d.get("vm_moref", ""),
                                  d["node_version"], d["domain_version"], e.ts, "during"))
        elif e.kind == "note" and e.status == FINALIZE_REMOVED:  # a kept source appliance is gone
            backups = [b for b in backups if not (b.node == e.node and b.method == "source-appliance")]
        elif e.kind == "note" and e.status == FINALIZED:
            finalized = e.ts
        elif e.kind == "note" and e.status == FINALIZE_DECOMMISSIONED and e.node not in decommissioned:
            decommissioned.append(e.node)
        elif e.kind == "note" and e.status in (ROLLBACK_PLAN, ROLLBACK_DONE):
            rollback_open = e.status == ROLLBACK_PLAN
            due = _restores_due(e.data) if rollback_open else {}
        elif e.kind == "window":
            if e.status == "opened" and opened is None:
                opened, closed = e.ts, None
            elif e.status == "closed" and opened is not None:
                closed = e.ts
    nodes = {n.name: NodeHistory(n.name, versions[n.name], *last[n.name], upgraded[n.name], verified[n.name])
             for n in inv.nodes}
    return DomainHistory(nodes, tuple(backups), opened, closed, tuple(failed.values()), tuple(running.values()),
                         rollbacks, count, prechecks, tuple(paused.values()), finalized,
                         tuple(decommissioned), rollback_open, tuple(due.values()))

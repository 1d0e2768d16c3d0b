"""Journal + observation -> the one DomainState that status, guards, steps, rollback and the report read (pure).

Why: the journal says what vcwave did, not what the domain is. A vCenter that failed after the psc wave is
"upgraded and verified" in the journal and refuses connections in reality; a decision taken from the
journal alone upgrades a vCenter beside a dead PSC. So every command first asks every node (facts/domain.py),
and this fold lays that observation over the journal's history: where they disagree, the live answer wins
and the disagreement becomes a value (`Disagreement`) that the engine journals and status shows. A node
that does not answer is "unknown": never "not done", never "fine".
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Mapping

from orchestrator.core.history import DomainHistory, EventLike, NodeHistory
from orchestrator.core.inventory import Inventory, Node
from orchestrator.core.versions import Version

ANSWERING, UNKNOWN, RESTORE_MODE = "answering", "unknown", "restore-mode"
DISAGREEMENT_KIND = "disagreement"  # the journal event kind the engine writes (status: open | resolved)


@dataclass(frozen=True)
class VmSeen:
    """One appliance VM on a management vCenter: the source appliance or the installer's new one."""

    name: str
    role: str  # source | new
    power: str  # poweredOn | poweredOff | suspended | absent | unknown


@dataclass(frozen=True)
class NodeSeen:
    """What one node said about itself just now (built by orchestrator.facts.domain; no client types)."""

    node: str
    answering: bool
    why: str = ""  # when not answering: "connection refused", "no answer within 5 s"...
    version: Version | None = None
    services_down: tuple[str, ...] = ()
    psc_host: str = ""
    restore_mode: bool = False
    vms: tuple[VmSeen, ...] = ()


@dataclass(frozen=True)
class Observation:
    """Every node of the domain, asked at once, at `ts`."""

    ts: float
    nodes: Mapping[str, NodeSeen]


@dataclass(frozen=True)
class Disagreement:
    """Journal and live differ about one node: the live answer wins, this value says how they differ."""

    node: str
    field: str  # answering | version | restore-mode | identity
    journal: str
    live: str
    since: float

    def __str__(self) -> str:
        live = self.live + (f" since {clock(self.since)}" if self.field in ("answering", "restore-mode") else "")
        return f"{self.node}: journal says {self.journal}; live: {live}"

    def key(self) -> tuple[str, str]:
        return self.node, self.field


@dataclass(frozen=True)
class LiveNode:
    """One node as the domain shows it, with what the journal remembers beside it."""

    name: str
    role: str
    state: str  # answering | unknown | restore-mode
    version: Version | None  # the live version; None when it does not answer (unknown, not "old")
    journal_version: Version
    why: str = ""
    services_down: tuple[str, ...] = ()
    psc_host: str = ""
    identity: str = ""  # which VM holds the node's identity: source | new | both | none | "" (no VM known)
    vms: tuple[VmSeen, ...] = ()

    @property
    def answering(self) -> bool:
        return self.state == ANSWERING


@dataclass(frozen=True)
class DomainState:
    """History (what vcwave did) + live nodes (what is) + their disagreements, at `observed_at`."""

    history: DomainHistory
    nodes: Mapping[str, LiveNode]
    disagreements: tuple[Disagreement, ...]
    observed_at: float

    def lost(self) -> tuple[str, ...]:
        """Nodes that do not answer (unknown) or wait for a restore: no decision may assume them fine."""
        return tuple(n for n, s in self.nodes.items() if not s.answering)


def clock(ts: float) -> str:
    """'10:42 UTC': how a disagreement's start is shown (an administrator compares it with other logs)."""
    return time.strftime("%H:%M UTC", time.gmtime(ts))


def journal_says(h: NodeHistory) -> str:
    """The journal's view of a node in words: 'upgraded and verified at 6.7 U3', 'at 6.7 U1', or, when no step
    of it was ever journaled, that the version is only the inventory's word."""
    if not h.last_step:
        return f"nothing yet (the inventory declares {h.version.release})"
    done = []
    if h.upgraded:
        done.append("upgraded")
    if h.verified_at and h.verified_at == h.version.release:
        done.append("verified")
    words = " and ".join(done)
    return f"{words} at {h.version.release}" if words else f"at {h.version.release}"


def identity_holder(vms: Iterable[VmSeen]) -> str:
    """Which of a node's VMs holds its identity. Two powered on is a fault: two appliances, one identity."""
    on = {v.role for v in vms if v.power == "poweredOn"}
    known = [v for v in vms if v.power != "unknown"]
    if not known:
        return ""
    if on == {"source", "new"}:
        return "both"
    return next(iter(on)) if on else "none"


def installer_vm_names(events: Iterable[EventLike]) -> dict[str, str]:
    """node -> the VM the installer deployed for it (journaled by the installer step as it starts), so the
    observation can ask for it beside the source appliance."""
    out: dict[str, str] = {}
    for e in events:
        name = (e.data.get("new_vm") or e.data.get("new_vm_name")) if e.kind in ("step", "source_appliance") else ""
        if name:
            out[e.node] = str(name)
    return out


def open_disagreements(events: Iterable[EventLike]) -> dict[tuple[str, str], EventLike]:
    """The journaled disagreements still open, by (node, field): the first event of each open run, so a node
    lost at 10:42 stays 'not answering since 10:42' however often it is observed again."""
    out: dict[tuple[str, str], EventLike] = {}
    for e in events:
        if e.kind != DISAGREEMENT_KIND:
            continue
        key = (e.node, str(e.data.get("field", "")))
        if e.status == "resolved":
            out.pop(key, None)
        elif key not in out or out[key].data.get("live") != e.data.get("live"):
            out[key] = e
    return out


def _live_node(node: Node, h: NodeHistory, seen: NodeSeen | None) -> LiveNode:
    if seen is None:
        return LiveNode(node.name, node.role, UNKNOWN, None, h.version, "not observed")
    state = RESTORE_MODE if seen.restore_mode else ANSWERING if seen.answering else UNKNOWN
    return LiveNode(node.name, node.role, state, seen.version if state == ANSWERING else None, h.version,
                    seen.why, seen.services_down, seen.psc_host, identity_holder(seen.vms), seen.vms)


def _disagreements(live: LiveNode, h: NodeHistory, since: float) -> list[Disagreement]:
    says = journal_says(h)
    out = []
    if live.state == UNKNOWN:
        out.append(Disagreement(live.name, "answering", says, f"not answering ({live.why})" if live.why
                                else "not answering", since))
    elif live.state == RESTORE_MODE:
        out.append(Disagreement(live.name, "restore-mode", says, "a fresh appliance waiting for a restore", since))
    elif live.version is not None and not live.version.same_release(h.version):
        out.append(Disagreement(live.name, "version", says, f"runs {live.version.release}", since))
    if live.identity == "both":
        out.append(Disagreement(live.name, "identity", "one appliance holds its identity",
                                "source and new appliance VMs both powered on", since))
    return out


def fold_live(inv: Inventory, hist: DomainHistory, obs: Observation,
              journaled: Iterable[EventLike] = ()) -> DomainState:
    """Lay the observation over the history. `journaled`: the journal's events (its disagreement events
    give each still-open disagreement the moment it was first seen)."""
    opened = open_disagreements(journaled)
    nodes, found = {}, []
    for n in inv.nodes:
        live = _live_node(n, hist.nodes[n.name], obs.nodes.get(n.name))
        nodes[n.name] = live
        if n.name in hist.decommissioned:  # silent by design: finalize took it out of the SSO domain
            continue
        for d in _disagreements(live, hist.nodes[n.name], obs.ts):
            prev = opened.get(d.key())
            if prev is not None and prev.data.get("live") == d.live:
                d = Disagreement(d.node, d.field, d.journal, d.live, prev.ts)
            found.append(d)
    return DomainState(hist, nodes, tuple(found), obs.ts)


def journal_changes(state: DomainState, journaled: Iterable[EventLike]) -> tuple[list[Disagreement],
                                                                                 list[tuple[str, str]]]:
    """What the engine must journal after an observation: new (or changed) disagreements, and the
    (node, field) of open ones that no longer hold (resolved). Unchanged ones are not written again."""
    opened = open_disagreements(journaled)
    new = [d for d in state.disagreements
           if d.key() not in opened or opened[d.key()].data.get("live") != d.live]
    now = {d.key() for d in state.disagreements}
    return new, [k for k in opened if k not in now]

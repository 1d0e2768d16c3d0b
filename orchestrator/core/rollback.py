"""The rollback planner (pure): how the whole domain, or one node when that is provably safe, goes back.

VMware's guidance shapes it: once PSCs are upgraded an old vCenter backup cannot bring that vCenter back
alone — "an alternative to this would be to rollback the entire vSphere Domain and any other vCenter
Servers that were upgraded"; installer upgrades roll back by powering the new appliance off and the kept
source on, all nodes together, PSCs first (KB 322065); a snapshot set is only ever reverted whole.
Order: vCenters stopped first, then PSCs brought back, then vCenters, then every node verified at its
old version with its original instance UUID.

Which nodes are restored is decided from the domain as it is, not from the journal alone: every node that
is not *known good* - moved in the journal, seen live at another version (a vCenter the journal never saw
move), not answering (lost), or touched by an upgrade that failed or was interrupted - is restored and
verified. A rollback is done only when every node answers at its rollback version with its instance UUID.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from orchestrator.core.history import Backup, DomainHistory, RestoreDue, domain_version, rollback_plan_id
from orchestrator.core.inventory import Inventory
from orchestrator.core.live import ANSWERING, RESTORE_MODE, LiveNode
from orchestrator.core.validity import judge_all, usable_single
from orchestrator.errors import RefusedError


RESTORE_METHOD = {"snapshot-set": "snapshot-revert", "source-appliance": "source-appliance",
                  "file": "file-restore", "external": "external-restore"}


@dataclass(frozen=True)
class RollbackAction:
    order: int
    node: str
    role: str
    action: str  # stop | restore | start | verify
    method: str  # snapshot-revert | source-appliance | file-restore | power-off | verify-old
    asset: str  # backup id / snapshot set id / source VM name
    to_version: str
    reason: str


@dataclass(frozen=True)
class RollbackPlan:
    scope: str  # "domain" or a node name
    to: str  # pre | during
    actions: tuple[RollbackAction, ...]
    alternative: str = ""  # VMware's other way out, when it applies (shown, never run)

    @property
    def id(self) -> str:
        return rollback_plan_id(self.scope, self.to)


def _original(inv: Inventory) -> dict[str, str]:
    return {n.name: n.version.release for n in inv.nodes}


def _asset_for(node: str, hist: DomainHistory, inv: Inventory, to: str, target_domain: str) -> Backup | None:
    """The newest asset of `node` usable in a whole-domain rollback to `to`."""
    cands = [b for b in hist.backups if b.node == node and b.verified]
    if to == "pre":
        # A kept installer source is judged by the version it runs (KB 322065 brings every source back together,
        # PSCs first), not by the domain version at its power-off, which is mixed for all but the first PSC.
        cands = [b for b in cands
                 if (b.method == "source-appliance" and b.node_version == _original(inv)[node])
                 or (b.method != "source-appliance" and b.domain_version == target_domain
                     and b.tag in ("pre", "during"))]
    else:
        cands = [b for b in cands if b.tag == "during" and b.domain_version == target_domain
                 and b.method != "source-appliance"]
    order = {"snapshot-set": 0, "source-appliance": 1, "file": 2, "external": 3}
    cands.sort(key=lambda b: (order.get(b.method, 9), -b.ts))
    return cands[0] if cands else None


def not_known_good(inv: Inventory, hist: DomainHistory, want: Mapping[str, str], live: Mapping[str, LiveNode],
                   touched: frozenset[str] | set[str]) -> dict[str, str]:
    """The nodes a rollback must restore, with why: moved in the journal, not answering, seen live at a
    version other than `want`, or touched by an upgrade step that did not succeed (its state is unknown:
    a failed install may have left half a patch). A node missing from `live` was not observed."""
    out: dict[str, str] = {}
    for n in inv.nodes:
        journal, seen = hist.nodes[n.name].version.release, live.get(n.name)
        if journal != want[n.name]:
            out[n.name] = f"at {journal}"
        elif seen is not None and not seen.answering:
            out[n.name] = f"not answering ({seen.why or seen.state})"
        elif seen is not None and seen.version and seen.version.release != want[n.name]:
            out[n.name] = f"answers at {seen.version.release} (the journal never saw it move)"
        elif n.name in touched:
            out[n.name] = "its upgrade failed or was interrupted: its state is not known good"
    return out


def forward_alternative(inv: Inventory, hist: DomainHistory, target: str, restore: Mapping[str, str]) -> str:
    """VMware's other way out, when every PSC is already at the target and a vCenter is not known good:
    go forward instead of back (upgrade the remaining vCenters, then repoint or restore the failed one in
    the upgraded domain)."""
    if not target or any(hist.nodes[p.name].version.release != target for p in inv.pscs):
        return ""
    vcs = sorted(n for n in restore if not inv.node(n).is_psc and hist.nodes[n].version.release != target)
    if not vcs:
        return ""
    rest = sorted(n.name for n in inv.vcenters if n.name not in restore and hist.nodes[n.name].version.release != target)
    verdicts = judge_all(inv, hist)
    restorable = [n for n in vcs if usable_single(verdicts[n])]
    stuck = [n for n in vcs if n not in restorable]
    steps = [f"`invoke upgrade --wave vcenter --node {','.join(rest)}` for the vCenters that remain"] if rest else []
    if restorable:
        steps.append(f"restore {', '.join(restorable)} alone from its backup taken in the upgraded domain "
                     f"(`invoke rollback --node N`), or repoint it to a PSC of its site at the same version "
                     f"(`invoke repoint --vcenter N --psc P --check`)")
    if stuck:
        steps.append(f"{', '.join(stuck)} has no backup taken in the upgraded domain: it can only rejoin once "
                     f"repaired (or rebuilt and restored by hand); until then only the domain rollback above "
                     f"brings it back with vcwave")
    return (f"VMware's other way out: every PSC already runs {target}; instead of rolling the domain back you may "
            f"go forward: " + "; then ".join(steps))


@dataclass(frozen=True)
class FreshAppliance:
    """A node a file restore cannot go on without: a freshly deployed appliance in restore mode must be
    deployed for it (at its address, at the version of its backup) before the rollback can restore it."""

    node: str
    address: str  # host, with its port when not 443 (where the fresh appliance must answer)
    version: str
    why: str


EXISTING_VM = ("poweredOn", "poweredOff", "suspended")


def fresh_appliances_due(inv: Inventory, due: Iterable[RestoreDue],
                         live: Mapping[str, LiveNode]) -> tuple[FreshAppliance, ...]:
    """Which pending file restores need a fresh appliance first, asked of the live domain (never the journal):
    a file restore runs only on a freshly deployed appliance in restore mode, so a node that answers as a
    running appliance (and whose restore never began: one that did may be the restore's own result) would
    refuse it, and a node that does not answer while no VM holds its identity (deleted, or none known) has
    nothing to restore into. A silent node whose VM exists is not named: it may be the fresh appliance the
    rollback's own stop powered off; the restore powers it on and waits for it up to the boot deadline."""
    out = []
    for d in due:
        seen = live.get(d.node)
        if seen is None or seen.state == RESTORE_MODE:
            continue
        if seen.state == ANSWERING and not d.begun:
            why = f"answers as a running{f' {seen.version.release}' if seen.version else ''} appliance"
        elif seen.state != ANSWERING and not any(v.power in EXISTING_VM for v in seen.vms):
            why = f"does not answer ({seen.why or 'no answer'}) and no VM holds its identity"
        else:
            continue
        n = inv.node(d.node)
        out.append(FreshAppliance(d.node, n.host if n.port == 443 else f"{n.host}:{n.port}", d.version, why))
    return tuple(out)


def fresh_appliance_advice(fresh: Iterable[FreshAppliance]) -> str:
    """The exact manual action before a paused rollback can go on, every node named (the same words in the
    rollback's output, its log and `status`)."""
    fresh = tuple(fresh)
    nodes = " and ".join(f"{f.node} {f.why}" for f in fresh)
    deploy = ", ".join(f"a {f.version} appliance at {f.address} for {f.node}" for f in fresh)
    return (f"{nodes}; a file restore runs only on a freshly deployed appliance in restore mode: deploy {deploy} "
            f"with VMware's installer (Restore, stage 1), each left waiting for its restore")


def check_rollback_target(to: str) -> None:
    """`--to` names a backup generation: before the window (pre) or inside it (during)."""
    if to not in ("pre", "during"):
        raise RefusedError(f"--to must be pre or during, got {to!r}", rule="rollback-target")


def plan_domain_rollback(inv: Inventory, hist: DomainHistory, to: str = "pre", *,
                         live: Mapping[str, LiveNode] | None = None, touched: frozenset[str] | set[str] = frozenset(),
                         target: str = "") -> RollbackPlan:
    """Every node not known good goes back together (`not_known_good`), every node is verified at the end.
    Refused (with the reason) when an asset is missing."""
    check_rollback_target(to)
    originals = {n.name: n.version for n in inv.nodes}
    if to == "pre":
        want = {n: v.release for n, v in originals.items()}
        target_domain = domain_version(inv, originals)
    else:
        during = [b for b in hist.backups if b.tag == "during"]
        if not during:
            raise RefusedError("no 'during' backups recorded: only `--to pre` is possible", rule="rollback-target")
        target_domain = during[-1].domain_version
        want = {n.name: (target_domain if n.is_psc else originals[n.name].release) for n in inv.nodes}
    current = {n: h.version.release for n, h in hist.nodes.items()}
    why = not_known_good(inv, hist, want, live or {}, touched)
    moved = [n for n in inv.nodes if n.name in why]
    if not moved:
        raise RefusedError(f"nothing to roll back: every node already runs its {to}-upgrade version",
                           rule="rollback-nothing")
    assets: dict[str, Backup] = {}
    missing = []
    for n in moved:
        a = _asset_for(n.name, hist, inv, to, target_domain)
        if a is None:
            missing.append(f"{n.name} ({why[n.name]}, must return to {want[n.name]})")
        else:
            assets[n.name] = a
    # A snapshot set is reverted whole: every member of it goes back, moved or not.
    set_ids = {a.set_id for a in assets.values() if a.method == "snapshot-set"}
    for b in hist.backups:
        if b.set_id in set_ids and b.node not in assets:
            assets[b.node] = b
    if missing:
        raise RefusedError("no way back recorded for: " + "; ".join(missing) +
                           ". Take backups before upgrading (invoke backup); a rebuilt vCenter would get a new "
                           "instance UUID and new moref IDs", rule="rollback-assets")
    actions: list[RollbackAction] = []
    k = 0
    vcs = [n for n in inv.vcenters if n.name in assets]
    pscs = [n for n in inv.pscs if n.name in assets]
    # Every vCenter with a known VM stops, restored or not, so none talks to a PSC being restored.
    stopped = [n for n in inv.vcenters if n.vm is not None or n.name in assets]
    for n in stopped:
        k += 1
        actions.append(RollbackAction(k, n.name, n.role, "stop", "power-off", "", current[n.name],
                                      "vCenters stop first so none talks to a PSC being restored"))
    for n in pscs + vcs:
        a = assets[n.name]
        method = RESTORE_METHOD[a.method]
        k += 1
        actions.append(RollbackAction(k, n.name, n.role, "restore", method, a.set_id or a.backup_id,
                                      want[n.name], f"{'PSCs first' if n.is_psc else 'then vCenters'}: "
                                      f"{a.method} {a.backup_id} taken at domain {a.domain_version}"
                                      + (f"; {why[n.name]}" if n.name in why else "")))
    for n in stopped:
        if n.name not in assets:
            k += 1
            actions.append(RollbackAction(k, n.name, n.role, "start", "power-on", "", current[n.name],
                                          "not restored: started again once its PSC is back"))
    for n in [*inv.pscs, *inv.vcenters]:  # done only when EVERY node answers at its rollback version
        k += 1
        actions.append(RollbackAction(k, n.name, n.role, "verify", "verify-old", "", want[n.name],
                                      "old version/build and the original instance UUID"
                                      + (f" ({why[n.name]})" if n.name in why else "")))
    alternative = forward_alternative(inv, hist, target, why) if to == "pre" else ""
    return RollbackPlan("domain", to, tuple(actions), alternative)


def plan_node_rollback(inv: Inventory, hist: DomainHistory, node: str) -> RollbackPlan:
    """One node alone: only when the validity rules prove it safe; otherwise refused with the way out."""
    try:
        n = inv.node(node)
    except KeyError:
        raise RefusedError(f"no node '{node}' in the inventory", rule="rollback-node") from None
    verdicts = judge_all(inv, hist)[node]
    usable = usable_single(verdicts)
    if usable is None:
        why = verdicts[0].reason if verdicts else "no backup recorded for it"
        raise RefusedError(f"{node} cannot be restored alone: {why}. Roll back the whole domain instead: "
                           f"`invoke rollback`", rule="single-node-rollback", node=node)
    b = usable.backup
    return RollbackPlan(node, "pre", (
        RollbackAction(1, node, n.role, "restore", RESTORE_METHOD[b.method], b.backup_id, b.node_version,
                       usable.reason),
        RollbackAction(2, node, n.role, "verify", "verify-old", "", b.node_version, "version and instance UUID")))


def render(plan: RollbackPlan, alternative: bool = True) -> str:
    """The plan as a table; with `alternative`, VMware's other way out below it (shown with --plan-only,
    where the operator chooses; a running or paused rollback names only its own next command)."""
    lines = [f"rollback of {plan.scope} to {plan.to}-upgrade state:"]
    for a in plan.actions:
        lines.append(f"  {a.order:>2}. {a.action:<8} {a.node:<12} {a.method:<16} {a.asset:<28} -> {a.to_version}"
                     f"   ({a.reason})")
    fresh = [f"{a.node} ({a.to_version})" for a in plan.actions if a.method == "file-restore"]
    if fresh:  # said up front: the rollback stops before the first until every appliance is deployed
        lines.append(f"  a file restore runs only on a freshly deployed appliance in restore mode "
                     f"({', '.join(fresh)}): before the first, the rollback asks the domain and pauses once, naming "
                     f"every node that still needs one (VMware's installer, Restore, stage 1); then `invoke rollback` "
                     f"resumes")
    if alternative and plan.alternative:
        lines.append(plan.alternative)
    return "\n".join(lines)

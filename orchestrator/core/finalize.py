"""`finalize` decided (pure): the point of no return of a hop, and why it may or may not be passed now.

Why explicit: the kept source appliances of an installer hop are what a whole-domain rollback brings back
(VMware KB 322065: power the new appliance off, the source on). Removing them frees the space but ends the
way back, so it is its own command, refused while the window is open or a node of the hop is not verified,
and confirmed by the administrator. After a converge hop, finalize also decommissions the external PSCs
(VMware: "Decommissioning a Platform Services Controller shuts it down and removes it from the single sign-on
domain"): each PSC only once no vCenter points at it (asked live: a vCenter that does not answer is unknown,
and refuses), after a file backup of it, through a converged vCenter of its site (vCenter 7.0's
`topology/pscs` decommission task; docs/vsphere-facts-7-8.md). Neither can be undone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from orchestrator.core import interop
from orchestrator.core.history import DomainHistory
from orchestrator.core.inventory import Inventory, Node
from orchestrator.core.plan import Plan, converges
from orchestrator.core.versions import parse_version
from orchestrator.errors import RefusedError


@dataclass(frozen=True)
class Removal:
    """One kept source appliance to delete from its management vCenter."""

    node: str
    vm_name: str
    vcenter: str
    node_version: str


@dataclass(frozen=True)
class Finalize:
    """What finalize does, in order: back up and decommission each PSC of a converge hop (`decommissions`:
    (PSC, the converged vCenter it is decommissioned through)), then remove the kept source appliances."""

    decommissions: tuple[tuple[str, str], ...]
    removals: tuple[Removal, ...]


def upgraded_nodes(plan: Plan) -> list[str]:
    return list(dict.fromkeys(s.node for s in plan.steps() if s.action == "upgrade" and s.method != "none"))


def decommission_partner(inv: Inventory, psc: str) -> str:
    """The converged vCenter a PSC is decommissioned through: one of its own site first (the vCenter that
    used it replicated with it last), else the first vCenter of the domain."""
    site = inv.node(psc).site
    same = [v.name for v in inv.vcenters if v.site == site]
    return (same or [v.name for v in inv.vcenters])[0]


def address(host: str, port: int) -> str:
    """How a node is named to another node's API: its host, with the port only when it is not 443."""
    return host.lower() if port == 443 else f"{host.lower()}:{port}"


def decommission_blockers(psc_address: str, pointers: Mapping[str, str | None]) -> list[str]:
    """vCenters that stop a PSC's decommission: those pointing at it (VMware: "no vCenter Server Appliance
    instances [may be] pointing to the Platform Services Controller"), and those that do not answer (unknown,
    never "not pointing"). `pointers`: vCenter -> the address its `config.vpxd.sso.admin.uri` names ("" when
    it has none: embedded SSO), None when it did not answer."""
    out = []
    for vc, ptr in sorted(pointers.items()):
        if ptr is None:
            out.append(f"{vc} does not answer (unknown: it may still point at the PSC)")
        elif ptr == psc_address.lower():
            out.append(f"{vc} still points at it")
    return out


def _check_psc_backup(psc: Node, hist: DomainHistory) -> None:
    """VMware asks for a backup of a PSC before it is decommissioned: refuse now (exit 2, nothing changed) when
    the inventory gives none that can work for it, naming the node and the field."""
    b = psc.backup
    problem = ("no backup declared ('backup:')" if b is None else
               interop.backup_method_problem(hist.nodes[psc.name].version, psc.platform, psc.vm is not None,
                                             b.method, b.location_type))
    if problem:
        raise RefusedError(f"{psc.name}: {problem}: a backup of the PSC comes before its decommission, and none can "
                           f"be taken", rule="finalize-psc-backup")


def psc_left_domain(listed: bool, answering: bool) -> bool | None:
    """Whether a PSC is decommissioned, from the domain: True once a converged vCenter no longer lists it among
    the SSO domain's nodes AND it does not answer (decommissioning shuts it down); False while it is listed and
    answers; None (unknown) otherwise — a name the topology spells differently must never read as "gone"."""
    if not listed and not answering:
        return True
    if listed and answering:
        return False
    return None


def plan_finalize(inv: Inventory, plan: Plan, hist: DomainHistory) -> Finalize:
    """What finalize does, or RefusedError (exit 2) saying why not now."""
    if hist.finalized is not None:
        raise RefusedError("this hop is already finalized: its kept source appliances are gone and a rollback is "
                           "no longer offered", rule="finalize-done")
    if hist.window_opened is None:
        raise RefusedError("nothing of this hop was upgraded yet: there is nothing to finalize", rule="finalize-window")
    if hist.window_closed is None:
        raise RefusedError("the mixed-version window is still open: finish the hop (`invoke verify`) first; "
                           "finalize ends the way back", rule="finalize-window")
    unverified = [n for n in upgraded_nodes(plan) if hist.nodes[n].verified_at != plan.target]
    if unverified:
        raise RefusedError(f"not verified at {plan.target}: {', '.join(unverified)}; run `invoke verify` first",
                           rule="finalize-unverified")
    decommissions: tuple[tuple[str, str], ...] = ()
    if converges(inv, parse_version(plan.target)):
        for p in inv.pscs:
            _check_psc_backup(p, hist)
        decommissions = tuple((p.name, decommission_partner(inv, p.name)) for p in inv.pscs)
    out = []
    for b in hist.backups:
        node = inv.node(b.node)
        if b.method == "source-appliance" and node.vm is not None:
            out.append(Removal(b.node, b.backup_id, node.vm.vcenter, b.node_version))
    if not out and not decommissions:
        raise RefusedError("no kept source appliance is recorded for this hop: nothing to remove",
                           rule="finalize-nothing")
    return Finalize(decommissions, tuple(out))


def render(work: Finalize, target: str) -> str:
    lines = [f"finalize: the point of no return of the hop to {target}; a whole-domain rollback will no longer be "
             f"offered for this hop."]
    if work.decommissions:
        lines.append("These external PSCs will be backed up, then decommissioned (shut down and removed from the "
                     "SSO domain):")
        lines += [f"  {psc} (through {partner})" for psc, partner in work.decommissions]
    if work.removals:
        lines.append("These kept source appliances will be deleted:")
        lines += [f"  {r.vm_name} on {r.vcenter} ({r.node} at {r.node_version})" for r in work.removals]
    return "\n".join(lines)


def rollback_after_finalize(hist: DomainHistory) -> None:
    """Refuse a rollback once the hop is finalized, or once a PSC is decommissioned by an interrupted finalize:
    what it would bring back was removed on purpose, and a decommissioned PSC has left the SSO domain."""
    if hist.finalized is not None:
        raise RefusedError("this hop was finalized (`invoke finalize`): its kept source appliances were removed "
                           "and a rollback is no longer offered", rule="rollback-finalized")
    if hist.decommissioned:
        raise RefusedError(f"{', '.join(hist.decommissioned)} decommissioned by `invoke finalize` (out of the SSO "
                           f"domain): a rollback is no longer offered; run `invoke finalize` again to finish",
                           rule="rollback-finalized")

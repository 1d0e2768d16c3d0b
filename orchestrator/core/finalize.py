"""`finalize` decided (pure): the point of no return of a hop, and why it may or may not be passed now.

Why explicit: the kept source appliances of an installer hop are what a whole-domain rollback brings back
(VMware KB 322065: power the new appliance off, the source on). Removing them frees the space but ends the
way back, so it is its own command, refused while the window is open or a node of the hop is not verified,
and confirmed by the administrator. After a converge hop, finalize is where the external PSCs would be
decommissioned; vcwave cannot do that yet (VMware's procedure runs `cmsso-util unregister` in a vCenter's
appliance shell), so it refuses and says how, rather than half-finalize.
"""
from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.history import DomainHistory
from orchestrator.core.inventory import Inventory
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


def upgraded_nodes(plan: Plan) -> list[str]:
    return list(dict.fromkeys(s.node for s in plan.steps() if s.action == "upgrade" and s.method != "none"))


def plan_finalize(inv: Inventory, plan: Plan, hist: DomainHistory) -> tuple[Removal, ...]:
    """What finalize removes, or RefusedError (exit 2) saying why not now."""
    if hist.finalized is not None:
        raise RefusedError("this hop is already finalized: its kept source appliances are gone and a rollback is "
                           "no longer offered", rule="finalize-done")
    if converges(inv, parse_version(plan.target)):
        raise RefusedError(f"finalizing a converge hop decommissions the external PSCs "
                           f"{', '.join(p.name for p in inv.pscs)}, which this vcwave cannot do yet. VMware's "
                           f"'Decommission the Platform Services Controller': check that no vCenter points at the "
                           f"PSC, back it up, shut it down, run `cmsso-util unregister --node-pnid <PSC FQDN>` on a "
                           f"converged vCenter, then delete its VM", rule="hop-not-built")
    if hist.window_opened is None:
        raise RefusedError("nothing of this hop was upgraded yet: there is nothing to finalize", rule="finalize-window")
    if hist.window_closed is None:
        raise RefusedError("the mixed-version window is still open: finish the hop (`invoke verify`) first; "
                           "finalize ends the way back", rule="finalize-window")
    unverified = [n for n in upgraded_nodes(plan) if hist.nodes[n].verified_at != plan.target]
    if unverified:
        raise RefusedError(f"not verified at {plan.target}: {', '.join(unverified)}; run `invoke verify` first",
                           rule="finalize-unverified")
    out = []
    for b in hist.backups:
        node = inv.node(b.node)
        if b.method == "source-appliance" and node.vm is not None:
            out.append(Removal(b.node, b.backup_id, node.vm.vcenter, b.node_version))
    if not out:
        raise RefusedError("no kept source appliance is recorded for this hop: nothing to remove",
                           rule="finalize-nothing")
    return tuple(out)


def render(removals: tuple[Removal, ...], target: str) -> str:
    lines = [f"finalize: the point of no return of the hop to {target}. These kept source appliances will be "
             f"deleted; a whole-domain rollback will no longer be offered for this hop:"]
    lines += [f"  {r.vm_name} on {r.vcenter} ({r.node} at {r.node_version})" for r in removals]
    return "\n".join(lines)


def rollback_after_finalize(hist: DomainHistory) -> None:
    """Refuse a rollback once the hop is finalized: the assets it would bring back were removed on purpose."""
    if hist.finalized is not None:
        raise RefusedError("this hop was finalized (`invoke finalize`): its kept source appliances were removed "
                           "and a rollback is no longer offered", rule="rollback-finalized")

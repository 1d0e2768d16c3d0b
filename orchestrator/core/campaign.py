"""A campaign plan: the route to the target, its first hop planned in full, the later hops estimated. Pure.

Why the first hop only: a hop is planned from what the domain is when it starts (versions, topology, the
backups it has). The next hop is planned by running `plan` again once this one is finished (verified at its
target, post backups taken), so the saved plan never guesses a state the domain has not reached. The later
hops are still shown with their kind, method, order and expected window, so the whole road and its cost
are known before the first change.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from orchestrator.core import interop, rules
from orchestrator.core.inventory import Inventory
from orchestrator.core.next_inventory import FILENAME as NEXT_INVENTORY
from orchestrator.core.plan import Plan, build_plan, check_target, with_route
from orchestrator.core.playbook import Playbook
from orchestrator.core.route import EMBEDDED, EXTERNAL, Hop, Route, find_route
from orchestrator.core.versions import Version, catalogue
from orchestrator.errors import RefusedError


def domain_route(inv: Inventory, target: Version) -> Route:
    """The route from the domain's oldest node to the target, for the domain's topology.

    When there is none, the node-by-node check of a direct upgrade speaks first when it refuses too: it
    names every node and why (an unknown release, a downgrade)."""
    oldest = min(n.version.without_build() for n in inv.nodes)
    try:
        return find_route(oldest, bool(inv.pscs), target)
    except RefusedError:
        check_target(inv, target)
        raise


def _at_release(inv: Inventory, release: Version) -> Inventory:
    """The inventory as it will be once every node runs `release` (what a later hop starts from)."""
    v = catalogue().resolve(release)
    return replace(inv, nodes=tuple(replace(n, version=v) for n in inv.nodes))


def hop_window(inv: Inventory, playbook: Playbook, hop: Hop, concurrency: int | None = None) -> float:
    """Expected mixed-version window of one hop (minutes), from the same estimates the planner uses.

    A hop that starts from the inventory's own topology is planned on the inventory as it will be (the plan's
    own window); a hop after a converge (linked vCenters, not yet described by this inventory) upgrades the
    vCenters one at a time (VMware: "you cannot perform parallel upgrades"), so its window is the sum of each
    vCenter's upgrade and verification."""
    if hop.topology_before == (EXTERNAL if inv.pscs else EMBEDDED):
        projected = _at_release(inv, hop.source)
        if not rules.vcenters_in_parallel_allowed(interop.supports_external_psc(hop.target)):
            concurrency = None  # --concurrency is for this plan's hop; a converge runs one vCenter at a time anyway
        return build_plan(projected, playbook, hop.target, concurrency=concurrency).window_estimate_min
    method = "update" if hop.kind == "linked-patch" else "installer"
    per_vcenter = interop.estimate_minutes("upgrade", method, "vcenter") + interop.estimate_minutes("verify")
    return round(len(inv.vcenters) * per_vcenter, 1)


def route_entries(inv: Inventory, playbook: Playbook, route: Route, first_window: float | None,
                  concurrency: int | None = None) -> list[dict[str, Any]]:
    """Each hop as JSON with its expected window; `first_window` is the saved plan's own figure."""
    out = []
    for hop in route.hops:
        window = first_window if hop.number == 1 and first_window is not None else hop_window(
            inv, playbook, hop, concurrency)
        out.append({**hop.to_json(), "window_estimate_min": window})
    return out


def next_step_text(route: Route, inventory: str) -> str:
    """What the administrator does once this hop is finished."""
    first, final = route.first, route.final
    done = "the PSCs decommissioned, " if first.kind == "converge" else ""
    return (f"after hop 1 is finished (every node verified at {first.target.release}, post backups taken, "
            f"{done}`invoke finalize` done), run `invoke plan --inventory <state-dir>/<domain>/{NEXT_INVENTORY} "
            f"--target \"{final.release}\"` for hop 2 ({first.target.release} -> {route.hops[1].target.release}, "
            f"{route.hops[1].kind}): finalize writes that inventory from {inventory} and the versions the nodes "
            f"answer with")


def route_lines(entries: list[dict[str, Any]]) -> list[str]:
    """Human view of a route: one line per hop, then its order."""
    lines = [f"{'hop':>3}  {'from':<8} -> {'to':<8} {'kind':<13} {'method':<10} {'window':>9}  order"]
    for e in entries:
        lines.append(f"{e['hop']:>3}  {e['from']:<8} -> {e['to']:<8} {e['kind']:<13} {e['method']:<10} "
                     f"{e['window_estimate_min']:>5.0f} min  {e['order']}")
    return lines


def plan_campaign(inv: Inventory, playbook: Playbook, target: Version, *, inventory_sha256: str = "",
                  playbook_sha256: str = "", concurrency: int | None = None) -> Plan:
    """The saved plan for the route's first hop, carrying the whole route when there is more than one hop."""
    route = domain_route(inv, target)
    first = route.first
    plan = build_plan(inv, playbook, first.target, inventory_sha256=inventory_sha256,
                      playbook_sha256=playbook_sha256, concurrency=concurrency)
    if len(route.hops) == 1:
        return plan
    entries = route_entries(inv, playbook, route, plan.window_estimate_min, concurrency)
    return with_route(plan, {"final_target": route.final.release, "hops": entries,
                             "next": next_step_text(route, inv.path)})

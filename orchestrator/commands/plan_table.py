"""The human view of a saved plan (`vcwave plan`): what a change board reads before approving a window.

Why this shape: a flat list of 30 steps hides the three things that matter: the order (each phase in one
sentence: who, how many at a time, why), the method of every node and the reason it was chosen, and the
expected window. The step table is kept, aligned to its content so that no long value shifts a column.
`--json` is the machine view and does not change.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from orchestrator.core.campaign import route_lines
from orchestrator.core.plan import Phase, Plan, Step, lane_minutes

PHASE_TITLES = {
    "pre": "before the window (nothing changes version)",
    "psc": "the window opens: every PSC of every site",
    "vcenter": "the vCenters, once every PSC is at the target",
    "post": "after the window",
}


def aligned(headers: Sequence[str], rows: Iterable[Sequence[object]], indent: str = "  ") -> list[str]:
    """Columns as wide as their widest cell (header included); the last column is not padded."""
    table = [list(map(str, headers)), *[[("-" if c in (None, "") else str(c)) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in table]


def _names(nodes: Sequence[str], limit: int = 6) -> str:
    """`nyc-1, nyc-2, nyc-3, …` (all of them when few)."""
    return ", ".join(nodes) if len(nodes) <= limit else ", ".join(nodes[:limit]) + f", … ({len(nodes)} in all)"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _minutes(m: float) -> str:
    return f"{m:.0f} min" if m < 120 else f"{m / 60:.1f} h"


def _action(s: Step) -> str:
    if s.action == "backup" and s.method == "snapshot-set":
        return f"backup/{s.tag} (cold snapshot set)"  # not a second file backup of the same nodes
    return f"{s.action}/{s.tag}" if s.action == "backup" and s.tag else s.action


def _batch_line(phase: Phase, batch: int, steps: Sequence[Step]) -> str:
    """One batch in words: what runs, on whom, and how long it should take (its longest node lane)."""
    lanes: dict[str, list[Step]] = {}
    for s in steps:
        lanes.setdefault(s.node, []).append(s)
    tasks = " + ".join(_unique(_action(s) for s in steps))
    together = "together" if len(lanes) > 1 else "alone"
    longest = max(lane_minutes(l) for l in lanes.values())
    return f"    batch {batch}: {tasks} on {_names(list(lanes))} ({together}, ~{_minutes(longest)})"


def phase_summary(plan: Plan, phase: Phase) -> list[str]:
    """"psc: 6 PSCs, one at a time — nyc-1, nyc-2, …" and then each batch in one line."""
    upgrades = [s for s in phase.steps if s.action == "upgrade"]
    batches = phase.batches()
    title = PHASE_TITLES.get(phase.name, "")
    if phase.name == "psc" and not upgrades:  # embedded vCenters, or a converge: the vCenters take SSO along
        return ["psc: no PSC is upgraded in this hop (the vCenters embed SSO, or converge the PSCs into them)"] + \
            [_batch_line(phase, b, steps) for b, steps in batches]
    if phase.name == "psc":
        head = f"{len(upgrades)} PSCs, one at a time — {_names([s.node for s in upgrades])}"
    elif phase.name == "vcenter":
        per_batch = max((len({s.node for s in b if s.action == 'upgrade'}) for _, b in batches), default=0)
        head = (f"{len(upgrades)} vCenters in {sum(1 for _, b in batches if any(s.action == 'upgrade' for s in b))} "
                f"batch(es), up to {per_batch} at once — {plan.concurrency_rule}")
    else:
        head = f"{len(_unique(s.node for s in phase.steps))} nodes, each task over all of them before the next"
    if phase.name == "vcenter" and not any(s.action == "upgrade" for s in plan.phase("psc").steps):
        title = "the vCenters"
    lines = [f"{phase.name}: {title}", f"  {head}"]
    lines += [_batch_line(phase, b, steps) for b, steps in batches]
    return lines


def method_lines(plan: Plan) -> list[str]:
    """Every node's upgrade method and backup method, each with the reason it was chosen."""
    per_node: dict[str, dict[str, Step]] = {}
    for s in plan.steps():
        if s.action == "upgrade" or (s.action == "backup" and s.tag == "pre"):
            per_node.setdefault(s.node, {})[s.action] = s
    rows = []
    for node, steps in per_node.items():
        up, bk = steps.get("upgrade"), steps.get("backup")
        why = "; ".join(f"{label}: {s.reason}" for label, s in (("upgrade", up), ("backup", bk)) if s and s.reason)
        rows.append((node, up.method if up else "-", bk.method if bk else "-", why))
    return ["methods (every node, and why):", *aligned(("node", "upgrade", "backup", "why"), rows)]


def step_table(plan: Plan) -> list[str]:
    rows = [(p.name, s.batch, s.node, s.role, s.site, _action(s), s.method or "-", f"{s.from_} -> {s.to}")
            for p in plan.phases for s in p.steps]
    return ["steps:", *aligned(("phase", "batch", "node", "role", "site", "action", "method", "from -> to"), rows)]


def render_table(plan: Plan) -> str:
    """The whole human view: header, phases in words, methods with reasons, the step table, the window."""
    sites = _unique(s.site for s in plan.steps())
    nodes = _unique(s.node for s in plan.steps())
    lines = [f"plan: domain {plan.domain} -> {plan.target}, playbook {Path(plan.playbook).name} "
             f"({len(nodes)} nodes in {len(sites)} site(s))", ""]
    for phase in plan.phases:
        lines += phase_summary(plan, phase)
    lines += ["", *method_lines(plan), "", *step_table(plan), ""]
    first = "PSC install" if plan.phase("psc").steps else "vCenter upgrade"
    lines.append(f"expected mixed-version window: {_minutes(plan.window_estimate_min)} "
                 f"({plan.window_estimate_min:.0f} min), from the first {first} to the last vCenter verified")
    lines += [f"warning: {w}" for w in plan.warnings]
    if plan.route:
        hops = plan.route["hops"]
        lines += ["", f"route to {plan.route['final_target']}: {len(hops)} hops, each its own campaign (backups "
                      f"before and after, its own window); this plan is hop 1 ({plan.target})"]
        lines += route_lines(hops) + [plan.route["next"]]
    return "\n".join(lines)

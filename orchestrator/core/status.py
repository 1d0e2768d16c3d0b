"""Where the domain stands, computed from the plan and the journal's history (pure): each node's version
and last step, which phases are done, the mixed-version window clock, which backups can still be used,
and the next safe command."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.core.history import DomainHistory, domain_version
from orchestrator.core.inventory import Inventory
from orchestrator.core.plan import Plan, converges
from orchestrator.core.repoint import failover_options
from orchestrator.core.validity import judge_all, usable_single
from orchestrator.core.versions import parse_version

PHASE_COMMAND = {"pre": "invoke backup --phase pre", "psc": "invoke upgrade --wave psc",
                 "vcenter": "invoke upgrade --wave vcenter", "post": "invoke verify && invoke backup --phase post"}


@dataclass(frozen=True)
class Status:
    domain: str
    target: str
    domain_version: str
    nodes: tuple[dict[str, Any], ...]
    phases: dict[str, str]  # pending | partial | done | failed
    window: dict[str, Any]
    next_command: str
    problems: tuple[str, ...]
    failover: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "target": self.target, "domain_version": self.domain_version,
                "nodes": list(self.nodes), "phases": self.phases, "window": self.window,
                "next_command": self.next_command, "problems": list(self.problems),
                "if_a_psc_fails": list(self.failover)}


def phase_states(plan: Plan, step_state: dict[str, str]) -> dict[str, str]:
    out = {}
    for ph in plan.phases:
        states = [step_state.get(s.id) for s in ph.steps]
        if any(s == "failed" for s in states):
            out[ph.name] = "failed"
        elif all(s in ("succeeded", "skipped") for s in states):
            out[ph.name] = "done"
        elif any(states):
            out[ph.name] = "partial"
        else:
            out[ph.name] = "pending"
    return out


def window_info(hist: DomainHistory, now: float) -> dict[str, Any]:
    if hist.window_opened is None:
        return {"state": "not opened", "length_s": 0.0}
    end = hist.window_closed if hist.window_closed is not None else now
    return {"state": "closed" if hist.window_closed is not None else "OPEN", "opened": hist.window_opened,
            "closed": hist.window_closed, "length_s": round(end - hist.window_opened, 3)}


def compute_status(inv: Inventory, plan: Plan, hist: DomainHistory, step_state: dict[str, str],
                   now: float) -> Status:
    phases = phase_states(plan, step_state)
    verdicts = judge_all(inv, hist)
    nodes = []
    problems = []
    for n in inv.nodes:
        h = hist.nodes[n.name]
        usable = usable_single(verdicts[n.name])
        nodes.append({"node": n.name, "role": n.role, "site": n.site, "version": h.version.release,
                      "last_step": h.last_step, "last_status": h.last_status, "upgrades": h.upgraded,
                      "verified_at": h.verified_at,
                      "single_restore": usable.backup.backup_id if usable else None,
                      "backups": [{"id": v.backup.backup_id, "method": v.backup.method, "tag": v.backup.tag,
                                   "single_node": v.single_node, "whole_domain": v.whole_domain,
                                   "reason": v.reason} for v in verdicts[n.name]]})
        if h.upgraded > 1:
            problems.append(f"{n.name} was upgraded {h.upgraded} times (expected once)")
    nxt = "nothing: every phase is done"
    for name in ("pre", "psc", "vcenter", "post"):
        st = phases.get(name)
        if st == "failed":
            nxt = (f"look at the failed step above, then re-run `{PHASE_COMMAND[name]}` (resumes; nothing done is "
                   f"redone) or `invoke rollback --plan-only` to see the way back")
            break
        if st != "done":
            nxt = PHASE_COMMAND[name] if name != "pre" else "invoke precheck && invoke backup --phase pre && invoke stage"
            break
    if phases and all(st == "done" for st in phases.values()):
        nxt = after_the_hop(inv, plan, hist) or nxt
    failover = tuple(f"{o.psc} fails -> {o.vcenter}: {o.advice}" for o in failover_options(inv, hist.versions()))
    return Status(inv.domain, plan.target, domain_version(inv, hist.versions()), tuple(nodes), phases,
                  window_info(hist, now), nxt, tuple(problems), failover)


def after_the_hop(inv: Inventory, plan: Plan, hist: DomainHistory) -> str:
    """What is left once every phase of the hop is done: `invoke finalize` (the kept source appliances a
    whole-domain rollback can still use), or the PSCs a converge left in the SSO domain; then the next hop of
    a longer route."""
    out = []
    kept = sorted(b.backup_id for b in hist.backups if b.method == "source-appliance")
    if hist.finalized is not None:
        out.append("finalized: the kept source appliances are removed and a rollback is no longer offered for "
                   "this hop")
    elif kept and not converges(inv, parse_version(plan.target)):
        out.append(f"when the domain has run well long enough: `invoke finalize` (the point of no return) removes "
                   f"the kept source appliances {', '.join(kept)} that a whole-domain rollback can still use")
    if converges(inv, parse_version(plan.target)):
        out.append(f"decommission the external PSCs {', '.join(p.name for p in inv.pscs)} (they still belong to the "
                   f"SSO domain; vcwave does not decommission yet): VMware's 'Decommission the Platform Services "
                   f"Controller' — check that no vCenter points at it, back it up, shut it down, run `cmsso-util "
                   f"unregister --node-pnid <PSC FQDN>` on a converged vCenter, then delete its VM")
    if plan.route:
        out.append(plan.route["next"])
    return "; then ".join(out)


def render(status: Status) -> str:
    w = status.window
    lines = [f"domain {status.domain}: domain version {status.domain_version}, target {status.target}",
             "phases: " + ", ".join(f"{k} {v}" for k, v in status.phases.items()),
             f"mixed-version window: {w['state']}" + (f", {w['length_s'] / 60:.1f} min" if w.get('opened') else ""),
             f"{'node':<14} {'role':<8} {'site':<10} {'version':<9} {'verified':<9} last step"]
    for n in status.nodes:
        lines.append(f"{n['node']:<14} {n['role']:<8} {n['site']:<10} {n['version']:<9} {n['verified_at'] or '-':<9} "
                     f"{n['last_step'] or '-'} {n['last_status']}")
        usable = n["single_restore"]
        lines.append(f"{'':<14} backup usable alone: {usable or 'NONE — ' + (n['backups'][0]['reason'] if n['backups'] else 'no backup recorded')}")
    lines += [f"if a PSC fails: {f}" for f in status.failover]
    lines += [f"problem: {p}" for p in status.problems]
    lines.append(f"next safe command: {status.next_command}")
    return "\n".join(lines)

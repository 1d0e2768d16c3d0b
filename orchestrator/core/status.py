"""Where the domain stands, computed from the plan, the journal's history and the live observation (pure):
live problems first, each node's live and recorded version and last step, which phases are done, the
mixed-version window clock, which backups can still restore what, and the next safe command."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.core.domain_line import domain_summary
from orchestrator.core.history import DomainHistory, domain_version
from orchestrator.core.inventory import Inventory
from orchestrator.core.live import RESTORE_MODE, DomainState
from orchestrator.core.next_inventory import FILENAME as NEXT_INVENTORY
from orchestrator.core.plan import Plan, converges
from orchestrator.core.repoint import failover_options
from orchestrator.core.rollback import fresh_appliance_advice, fresh_appliances_due
from orchestrator.core.validity import judge_all, usable_single
from orchestrator.core.versions import parse_version

UNDONE_BY_ROLLBACK = ("psc", "vcenter", "post")  # a completed domain rollback undid what these phases did

PHASE_COMMAND = {"pre": "invoke backup --phase pre", "psc": "invoke upgrade --wave psc",
                 "vcenter": "invoke upgrade --wave vcenter", "post": "invoke verify && invoke backup --phase post"}


@dataclass(frozen=True)
class Status:
    domain: str
    target: str
    domain_version: str
    nodes: tuple[dict[str, Any], ...]
    phases: dict[str, str]  # pending | partial | done | failed | paused (manual step) | rolled back | not needed
    window: dict[str, Any]
    next_command: str
    problems: tuple[str, ...]
    failover: tuple[str, ...] = ()
    whole_domain: tuple[str, ...] = ()  # backup sets (tags) that can bring the whole domain back
    summary: str = ""  # every node's version by role, live where observed (see `domain_summary`)

    def to_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "target": self.target, "domain_version": self.domain_version,
                "versions": self.summary,
                "problems": list(self.problems), "nodes": list(self.nodes), "phases": self.phases,
                "window": self.window, "next_command": self.next_command,
                "if_a_psc_fails": list(self.failover), "whole_domain_restore_from": list(self.whole_domain)}


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


def _next_after_trouble(inv: Inventory, plan: Plan, hist: DomainHistory, live: DomainState | None,
                        lock: tuple[str, str], verdicts: dict) -> str:
    """The next command when something is wrong (a lock, a lost node, a crash, a pause), or "" when nothing
    is: trouble is answered before any phase is proposed, so a lost node never gets `upgrade --wave vcenter`."""
    kind, who = lock
    if kind == "stale":
        return f"a vcwave command was killed holding the domain lock ({who}): re-run it with --break-stale-lock"
    if kind == "held":
        return f"wait: {who} is acting on the domain; run `invoke status` again when it ends"
    if hist.rollback_open:  # its own power-offs and restores leave nodes silent on purpose: it goes first
        return rollback_next(inv, hist, live)
    interrupted = {s.node for s in plan.steps() if s.id in hist.running_steps}
    lost = [n for n in live.lost() if n not in interrupted and n not in hist.decommissioned] if live else []
    if lost:
        waiting = [n for n in lost if live.nodes[n].state == RESTORE_MODE]
        if waiting:
            single = [n for n in waiting if usable_single(verdicts[n])]
            return (f"invoke rollback --node {single[0]}" if single else "invoke rollback --plan-only") + \
                f" ({', '.join(waiting)}: a fresh appliance waits for a restore)"
        return (f"bring {', '.join(lost)} back (not answering: {live.nodes[lost[0]].why or 'unknown'}), then "
                f"`invoke status`; if it cannot come back: `invoke rollback --plan-only` shows the way back")
    if hist.running_steps:  # a node silent mid-step (rebooting?) is the interrupted step's to reconcile
        phases = sorted({s.phase for s in plan.steps() if s.id in hist.running_steps})
        cmd = PHASE_COMMAND.get(phases[0], "the interrupted command") if phases else "the interrupted command"
        return (f"re-run `{cmd}`: a command stopped during {', '.join(hist.running_steps)}; it first asks the "
                f"nodes whether that step is done")
    if hist.paused:
        nodes = sorted({s.node for s in plan.steps() if s.id in hist.paused})
        return f"do the manual step shown in the log on {', '.join(nodes)}, then `invoke verify --node {nodes[0]}`"
    return ""


def _failed_beside(plan: Plan, hist: DomainHistory, phase: str) -> bool:
    """Did a step of `phase` fail outright, beside the ones paused for a manual change?"""
    return any(s.id in hist.failed_steps and s.id not in hist.paused for s in plan.phase(phase).steps)


def rollback_next(inv: Inventory, hist: DomainHistory, live: DomainState | None) -> str:
    """The one next command after a domain rollback stopped half-way (paused for a manual step, failed, or
    killed) — `invoke rollback` prints it as it stops and `status` shows it after: `invoke rollback`
    resumes the same saved plan and asks every node first; what must happen before it is named (a node that
    does not answer cannot be restored from a file onto itself)."""
    again = "re-run `invoke rollback` (it resumes the same plan and asks every node first)"
    fresh = fresh_appliances_due(inv, hist.restores_due, live.nodes) if live is not None else ()
    if fresh:
        return (f"the rollback is paused before its file restores of {', '.join(f.node for f in fresh)}: "
                f"{fresh_appliance_advice(fresh)}; then {again}")
    paused = sorted(n for n, h in hist.nodes.items() if h.last_step in hist.paused)
    if paused:
        return (f"the rollback is paused at {', '.join(paused)}: do the manual step it named (a file restore needs "
                f"a freshly deployed appliance in restore mode), then {again}")
    failed = sorted(n for n, h in hist.nodes.items() if h.last_step in hist.failed_steps)
    silent = [n for n in failed if live is not None and live.nodes[n].state != RESTORE_MODE
              and not live.nodes[n].answering]
    if silent:
        fresh = ", ".join(f"{n} ({inv.node(n).version.release})" for n in silent)
        return (f"the rollback stopped at {', '.join(silent)}, which does not answer: bring it back, or, if it cannot "
                f"come back, deploy a fresh appliance in restore mode for {fresh} with VMware's installer (Restore, "
                f"stage 1); then {again}")
    if failed:
        return f"the rollback stopped at {', '.join(failed)}: fix what its failed step names, then {again}"
    return f"a domain rollback is not finished: {again}"


def _rolled_back(inv: Inventory, hist: DomainHistory, live: DomainState | None) -> bool:
    """A domain rollback completed and every node runs its source version again (live, when observed)."""
    if not hist.rollbacks:
        return False
    now = {n: (live.nodes[n].version if live else hist.nodes[n].version) for n in hist.nodes}
    return all(v is not None and v.same_release(inv.node(n).version) for n, v in now.items())


def _node_row(n: Any, hist: DomainHistory, live: DomainState | None, verdicts: dict) -> dict[str, Any]:
    h = hist.nodes[n.name]
    seen = live.nodes[n.name] if live else None
    usable = usable_single(verdicts[n.name])
    version = h.version.release if seen is None else (seen.version.release if seen.version else "unknown")
    state = "decommissioned" if n.name in hist.decommissioned else seen.state if seen else "not observed"
    return {"node": n.name, "role": n.role, "site": n.site, "version": version,
            "journal_version": h.version.release, "live": state,
            "why": seen.why if seen else "", "identity_vm": seen.identity if seen else "",
            "last_step": h.last_step, "last_status": h.last_status, "upgrades": h.upgraded,
            "verified_at": h.verified_at,
            "single_restore": usable.backup.backup_id if usable else None,
            "backups": [{"id": v.backup.backup_id, "method": v.backup.method, "tag": v.backup.tag,
                         "single_node": v.single_node, "whole_domain": v.whole_domain,
                         "reason": v.reason} for v in verdicts[n.name]]}


def _at_target(inv: Inventory, plan: Plan, live: DomainState | None) -> bool:
    """Every node answers, live, at the plan's target release (the journal is not asked: a new state folder
    on an upgraded domain has nothing to say, and the domain is what counts); decommissioned PSCs are gone."""
    target = parse_version(plan.target)
    return live is not None and all(s.answering and s.version is not None and s.version.same_release(target)
                                    for n, s in live.nodes.items() if n not in live.history.decommissioned)


def _nothing_to_do(inv: Inventory, plan: Plan, gone: tuple[str, ...]) -> str:
    """The next command on a domain that already runs the target: the route's next hop, or how to go further;
    and the inventory's stale versions named, since the next plan starts from what it declares."""
    target = parse_version(plan.target)
    stale = [n.name for n in inv.nodes if not n.version.same_release(target) and n.name not in gone]
    fix = (f"; the inventory still declares another version for {', '.join(stale)}: set `version: \"{plan.target}\"` "
           f"there first" if stale else "")
    more = (plan.route["next"] if plan.route
            else f"to go further, `invoke plan --target <a release newer than {plan.target}>`")
    return f"nothing to do: every node answers at {plan.target}; {more}{fix}"


def whole_domain_sets(inv: Inventory, verdicts: dict) -> tuple[str, ...]:
    """Backup tags (pre, during...) from which every node can be brought back together."""
    tags = {v.backup.tag for vs in verdicts.values() for v in vs if v.whole_domain}
    return tuple(sorted(t for t in tags if all(any(v.whole_domain and v.backup.tag == t for v in verdicts[n.name])
                                               for n in inv.nodes)))


def compute_status(inv: Inventory, plan: Plan, hist: DomainHistory, step_state: dict[str, str],
                   now: float, live: DomainState | None = None, lock: tuple[str, str] = ("", "")) -> Status:
    """`live`: the domain as observed now (its disagreements come first among the problems and its lost
    nodes decide the next command); without it, the journal's view alone (tests, the report)."""
    phases = phase_states(plan, step_state)
    verdicts = judge_all(inv, hist)
    nodes = [_node_row(n, hist, live, verdicts) for n in inv.nodes]
    problems = [str(d) for d in live.disagreements if d.node not in hist.decommissioned] if live else []
    if lock[0] == "stale":
        problems.append(f"stale lock: {lock[1]} died without releasing the domain lock")
    problems += [f"{n} was upgraded {h.upgraded} times (expected once)" for n, h in hist.nodes.items()
                 if h.upgraded > 1]
    versions = {n: (live.nodes[n].version or h.version) if live else h.version for n, h in hist.nodes.items()}
    nxt = _next_after_trouble(inv, plan, hist, live, lock, verdicts)
    if not nxt and _at_target(inv, plan, live) and set(phases.values()) == {"pending"}:
        nxt = _nothing_to_do(inv, plan, hist.decommissioned)  # nothing journaled, but the domain already runs the target
        phases = dict.fromkeys(phases, "not needed")
    if not nxt and _rolled_back(inv, hist, live):
        nxt = f"domain back at {domain_version(inv, versions)}; run `invoke plan` to try again"
        phases = {k: "rolled back" if k in UNDONE_BY_ROLLBACK and v != "pending" else v for k, v in phases.items()}
    for name in ("pre", "psc", "vcenter", "post") if not nxt else ():
        st = phases.get(name)
        if st == "failed":
            nxt = (f"look at the failed step above, then re-run `{PHASE_COMMAND[name]}` (resumes; nothing done is "
                   f"redone) or `invoke rollback --plan-only` to see the way back")
            break
        if st != "done":
            nxt = PHASE_COMMAND[name] if name != "pre" else "invoke precheck && invoke backup --phase pre && invoke stage"
            break
    nxt = nxt or after_the_hop(inv, plan, hist) or (_nothing_to_do(inv, plan, hist.decommissioned) if _at_target(inv, plan, live)
                                                     else "nothing: every phase is done")
    waiting = {s.phase for s in plan.steps() if s.id in hist.paused}  # a manual step is a pause, not a failure
    phases = {k: "paused" if v == "failed" and k in waiting and not _failed_beside(plan, hist, k) else v
              for k, v in phases.items()}
    seen = {n: live.nodes[n].version for n in hist.nodes} if live else dict(hist.versions())
    down = frozenset(live.lost()) if live else frozenset()
    failover = tuple(f"{o.psc} {'does not answer now' if o.psc in down else 'fails'} -> {o.vcenter}: {o.advice}"
                     for o in failover_options(inv, seen, down))
    return Status(inv.domain, plan.target, domain_version(inv, versions, hist.decommissioned), tuple(nodes), phases,
                  window_info(hist, now), nxt, tuple(problems), failover, whole_domain_sets(inv, verdicts),
                  domain_summary(inv, seen, plan.target, hist.decommissioned))


def after_the_hop(inv: Inventory, plan: Plan, hist: DomainHistory) -> str:
    """What is left once every phase of the hop is done: `invoke finalize` (the PSCs a converge left in the
    SSO domain, the kept source appliances a whole-domain rollback can still use); then the next hop of a
    longer route."""
    out = []
    kept = sorted(b.backup_id for b in hist.backups if b.method == "source-appliance")
    pscs = [p.name for p in inv.pscs if p.name not in hist.decommissioned]
    converge = converges(inv, parse_version(plan.target))
    if hist.finalized is not None:
        out.append("finalized: the kept source appliances are removed"
                   + (f", the external PSCs {', '.join(hist.decommissioned)} decommissioned" if hist.decommissioned
                      else "")
                   + " and a rollback is no longer offered for this hop; the next hop's inventory is "
                     f"{NEXT_INVENTORY} next to the journal")
    elif (converge and pscs) or kept:
        work = []
        if converge and pscs:
            work.append(f"back up and decommission the external PSCs {', '.join(pscs)} (they still belong to the "
                        f"SSO domain)")
        if kept:
            work.append(f"remove the kept source appliances {', '.join(kept)} that a whole-domain rollback can "
                        f"still use")
        out.append(f"when the domain has run well long enough: `invoke finalize` (the point of no return): "
                   f"{'; '.join(work)}")
    if plan.route:
        out.append(plan.route["next"])
    return "; then ".join(out)


def render(status: Status) -> str:
    """Problems first (what is wrong now), then where the domain stands, then the next safe command."""
    w = status.window
    lines = [f"domain {status.domain}: {status.summary}; target {status.target}"]
    lines += [f"problem: {p}" for p in status.problems]
    lines += ["phases: " + ", ".join(f"{k} {v}" for k, v in status.phases.items()),
              f"mixed-version window: {w['state']}" + (f", {w['length_s'] / 60:.1f} min" if w.get('opened') else ""),
              f"{'node':<14} {'role':<8} {'site':<10} {'live':<13} {'version':<9} {'verified':<9} last step"]
    for n in status.nodes:
        lines.append(f"{n['node']:<14} {n['role']:<8} {n['site']:<10} {n['live']:<13} {n['version']:<9} "
                     f"{n['verified_at'] or '-':<9} {n['last_step'] or '-'} {n['last_status']}")
        usable = n["single_restore"]
        lines.append(f"{'':<14} backup usable alone: {usable or 'NONE — ' + (n['backups'][0]['reason'] if n['backups'] else 'no backup recorded')}")
    lines.append("whole domain can be restored from: " + (", ".join(f"the {t} backups" for t in status.whole_domain)
                                                          or "no complete backup set"))
    lines += [f"if a PSC fails: {f}" for f in status.failover]
    lines.append(f"next safe command: {status.next_command}")
    return "\n".join(lines)

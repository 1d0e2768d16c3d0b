"""`invoke rollback`: bring the whole domain (or one node, when provably safe) back, journaled and resumable.

The rollback plan is computed once from the journal (orchestrator.core.rollback) and saved in it, so a
re-run after a crash continues the same plan instead of recomputing it from a half-rolled-back domain.
"""
from __future__ import annotations

import time
from dataclasses import asdict

from orchestrator.commands.session import CommonFlags, session
from orchestrator.core.finalize import rollback_after_finalize
from orchestrator.core.history import ROLLBACK_DONE, ROLLBACK_PLAN, DomainHistory, rollback_step_id
from orchestrator.core.inventory import Inventory
from orchestrator.core.plan import Step
from orchestrator.core.rules import is_mixed
from orchestrator.core.status import rollback_next
from orchestrator.core.rollback import (FreshAppliance, RollbackAction, RollbackPlan, check_rollback_target,
                                        fresh_appliances_due, plan_domain_rollback, plan_node_rollback, render)
from orchestrator.engine.runner import RunResult
from orchestrator.errors import RefusedError, StepFailed
from orchestrator.steps.rollback import RollbackStep


def _saved(engine) -> RollbackPlan | None:
    """The unfinished rollback plan of an earlier run, if any."""
    notes = [e for e in engine.journal.events(kind="note", status=[ROLLBACK_PLAN, ROLLBACK_DONE])]
    if not notes or notes[-1].status != ROLLBACK_PLAN:
        return None
    d = notes[-1].data
    return RollbackPlan(d["scope"], d["to"], tuple(RollbackAction(**a) for a in d["actions"]))


def _steps(plan: RollbackPlan, engine) -> list[tuple[Step, RollbackStep]]:
    out: list[tuple[Step, RollbackStep]] = []
    seen_sets: set[str] = set()
    for a in plan.actions:
        if a.method == "snapshot-revert":
            if a.asset in seen_sets:
                continue
            seen_sets.add(a.asset)
            members = tuple(b.node for b in plan.actions if b.method == "snapshot-revert" and b.asset == a.asset)
            impl = RollbackStep(a, members)
        else:
            impl = RollbackStep(a)
        n = engine.inv.node(a.node)
        sid = rollback_step_id(plan.id, a.order, a.action, a.node)
        out.append((Step(sid, "rollback", a.order, a.node, n.role, n.site, "rollback" if a.action != "verify"
                         else "verify", a.method, "", a.to_version, a.reason), impl))
    return out


def set_vms(inv: Inventory, hist: DomainHistory, set_id: str, members: tuple[str, ...]) -> dict[str, str]:
    """node -> the VM the snapshot set holds for it (its backup id is `<set>:<vm>`; else the inventory's VM)."""
    held = {b.node: b.backup_id.split(":", 1)[-1] for b in hist.backups if b.set_id == set_id}
    return {n: held.get(n) or getattr(inv.node(n).vm, "name", "?") for n in members}


def _touched(engine) -> frozenset[str]:
    """Nodes whose upgrade step was started since the last completed rollback (a failed or interrupted
    install leaves a node whose state is not known good, whatever version the journal still gives it)."""
    since = max((e.seq for e in engine.journal.events(kind="note", status=ROLLBACK_DONE)), default=0)
    return frozenset(e.node for e in engine.journal.events(kind="step", action="upgrade", status="started",
                                                           since=since) if e.data.get("method") != "none")


def _plan(engine, to: str, node: str | None) -> RollbackPlan:
    hist = engine.history()
    if node:
        return plan_node_rollback(engine.inv, hist, node)
    return plan_domain_rollback(engine.inv, hist, to, live=(engine.state or engine.observe()).nodes,
                                touched=_touched(engine), target=engine.plan.target)


def _fresh_due(engine) -> tuple[FreshAppliance, ...]:
    """Every node whose pending file restore needs a fresh appliance first, from the domain as it is now
    (the rollback's stops have just changed it)."""
    return fresh_appliances_due(engine.inv, engine.history().restores_due, engine.observe().nodes)


NEXT = "invoke rollback"  # resumes the saved plan; every action asks its node first
DONE_ALREADY = "rollback: already done: every node answers at its rollback version (nothing moved since)"


def _completed(engine) -> bool:
    """The last rollback completed and no upgrade was started since: a re-run (e.g. after a kill at the very
    end of the rollback, once its `rollback-done` was journaled) finds the domain back, live, and says so
    (exit 0) instead of refusing "nothing to roll back"."""
    notes = engine.journal.events(kind="note", status=["rollback-plan", "rollback-done"])
    return bool(notes) and notes[-1].status == "rollback-done" and not _touched(engine)


def outcome(result: RunResult, nxt: str = f"fix what is named above, then `{NEXT}` (it resumes the same plan "
                                          f"and asks every node first)") -> str:
    """The end of a rollback run: what was done, what stopped it, and ONE next command (the same line
    goes to the log, and `status` gives it too: core.status.rollback_next), never two different ones."""
    lines = [f"rollback: {len(result.done)} action(s) done, {len(result.skipped)} already done"]
    lines += [f"  FAILED {step}: {err}" for step, err in result.failed]
    lines += [f"  PAUSED {step}: {text}" for step, text in result.manual]
    if result.untouched:
        lines.append(f"  not started: {', '.join(result.untouched)}")
    if result.ok:
        lines.append("  every node answers at its rollback version with its instance UUID")
    else:
        lines.append(f"  next: {nxt}")
    return "\n".join(lines)


def run(flags: CommonFlags, to: str = "pre", node: str | None = None, plan_only: bool = False) -> str:
    check_rollback_target(to)  # before the session: a bad flag takes no lock and writes nothing
    with session(flags, "rollback", mutate=not plan_only) as engine:
        rollback_after_finalize(engine.history())
        try:
            rb = _saved(engine) or _plan(engine, to, node)
        except RefusedError as exc:
            if exc.rule == "rollback-nothing" and _completed(engine):
                return DONE_ALREADY
            raise
        if plan_only:
            return render(rb) + "\n(plan only: nothing changed)"
        text = render(rb, alternative=False)
        if _saved(engine) is None:
            engine.journal.append("note", run_id=engine.run_id, plan_hash=engine.plan.plan_hash, phase="rollback",
                                  status=ROLLBACK_PLAN, data={"scope": rb.scope, "to": rb.to,
                                                              "actions": [asdict(a) for a in rb.actions]})
        result = RunResult("rollback")
        steps = _steps(rb, engine)
        asked = False
        for i, (step, impl) in enumerate(steps):
            if engine.journal.step_state(step.id) == "succeeded":
                result.skipped.append(step.id)
                continue
            if impl.action.method == "file-restore" and not asked:  # the domain is asked before the first one
                asked = True
                impl = RollbackStep(impl.action, impl.members, _fresh_due(engine))
            if impl.members:  # a snapshot set: the console shows one line per VM under the set's line
                engine.log.info("rollback.set", step=step.id, set_id=impl.action.asset,
                                vms=set_vms(engine.inv, engine.history(), impl.action.asset, impl.members))
            if not engine.run_step(step, result, impl):
                result.untouched += [s.id for s, _ in steps[i + 1:]]
                break
        if result.ok:
            engine.journal.append("note", run_id=engine.run_id, plan_hash=engine.plan.plan_hash, phase="rollback",
                                  status=ROLLBACK_DONE, data={"scope": rb.scope, "to": rb.to})
            engine.journal.append("step", run_id=engine.run_id, plan_hash=engine.plan.plan_hash, phase="rollback",
                                  step=rb.id, action="rollback", status="succeeded", data={"scope": rb.scope})
            hist = engine.history()
            if hist.window_opened is not None and hist.window_closed is None and not is_mixed(
                    hist.versions().values()):
                length = round(time.time() - hist.window_opened, 3)
                engine.journal.append("window", run_id=engine.run_id, plan_hash=engine.plan.plan_hash,
                                      phase="rollback", status="closed", data={"length_s": length, "by": "rollback"})
                engine.log.info("window.closed", length_s=length, by="rollback")
            return text + "\n" + outcome(result)
        nxt = rollback_next(engine.inv, engine.history(), engine.observe())  # the domain as the stop left it
        engine.log.warning("rollback.stopped", next=nxt)
        raise StepFailed(text + "\n" + outcome(result, nxt))

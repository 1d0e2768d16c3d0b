"""`invoke rollback`: bring the whole domain (or one node, when provably safe) back, journaled and resumable.

The rollback plan is computed once from the journal (orchestrator.core.rollback) and saved in it, so a
re-run after a crash continues the same plan instead of recomputing it from a half-rolled-back domain.
"""
from __future__ import annotations

import time
from dataclasses import asdict

from orchestrator.commands.session import CommonFlags, session
from orchestrator.commands.waves import render as render_result
from orchestrator.core.finalize import rollback_after_finalize
from orchestrator.core.plan import Step
from orchestrator.core.rules import is_mixed
from orchestrator.core.rollback import (RollbackAction, RollbackPlan, check_rollback_target, plan_domain_rollback,
                                        plan_node_rollback, render)
from orchestrator.engine.runner import RunResult
from orchestrator.errors import StepFailed
from orchestrator.steps.rollback import RollbackStep


def _saved(engine) -> RollbackPlan | None:
    """The unfinished rollback plan of an earlier run, if any."""
    notes = [e for e in engine.journal.events(kind="note", status=["rollback-plan", "rollback-done"])]
    if not notes or notes[-1].status != "rollback-plan":
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
        sid = f"{plan.id}/{a.order:02d}-{a.action}/{a.node}"
        out.append((Step(sid, "rollback", a.order, a.node, n.role, n.site, "rollback" if a.action != "verify"
                         else "verify", a.method, "", a.to_version, a.reason), impl))
    return out


def run(flags: CommonFlags, to: str = "pre", node: str | None = None, plan_only: bool = False) -> str:
    check_rollback_target(to)  # before the session: a bad flag takes no lock and writes nothing
    with session(flags, "rollback", mutate=not plan_only) as engine:
        hist = engine.history()
        rollback_after_finalize(hist)
        rb = _saved(engine)
        if rb is None:
            rb = plan_node_rollback(engine.inv, hist, node) if node else plan_domain_rollback(engine.inv, hist, to)
        text = render(rb)
        if plan_only:
            return text + "\n(plan only: nothing changed)"
        if _saved(engine) is None:
            engine.journal.append("note", run_id=engine.run_id, plan_hash=engine.plan.plan_hash, phase="rollback",
                                  status="rollback-plan", data={"scope": rb.scope, "to": rb.to,
                                                                "actions": [asdict(a) for a in rb.actions]})
        result = RunResult("rollback")
        for step, impl in _steps(rb, engine):
            if engine.journal.step_state(step.id) == "succeeded":
                result.skipped.append(step.id)
                continue
            engine._run_lane([step], result, impl=impl)
            if not result.ok:
                break
        if result.ok:
            engine.journal.append("note", run_id=engine.run_id, plan_hash=engine.plan.plan_hash, phase="rollback",
                                  status="rollback-done", data={"scope": rb.scope, "to": rb.to})
            engine.journal.append("step", run_id=engine.run_id, plan_hash=engine.plan.plan_hash, phase="rollback",
                                  step=rb.id, action="rollback", status="succeeded", data={"scope": rb.scope})
            hist = engine.history()
            if hist.window_opened is not None and hist.window_closed is None and not is_mixed(
                    hist.versions().values()):
                length = round(time.time() - hist.window_opened, 3)
                engine.journal.append("window", run_id=engine.run_id, plan_hash=engine.plan.plan_hash,
                                      phase="rollback", status="closed", data={"length_s": length, "by": "rollback"})
                engine.log.info("window.closed", length_s=length, by="rollback")
        out = text + "\n" + render_result(result, "rollback")
        if not result.ok:
            raise StepFailed(out)
        return out

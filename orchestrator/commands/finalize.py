"""`invoke finalize`: the point of no return of a finished hop, confirmed, journaled, resumable.

The decision is the core's (`core/finalize.py`, from the journal); before acting, every node the hop upgraded
must answer at the target now (a node that does not answer is unknown: refused). The removals run as steps
through the engine, so a crash in the middle is reconciled from the management vCenter on the next run.
"""
from __future__ import annotations

from typing import Callable

from orchestrator.commands.session import CommonFlags, session
from orchestrator.commands.waves import render as render_result
from orchestrator.core.finalize import plan_finalize, render, upgraded_nodes
from orchestrator.core.history import FINALIZED
from orchestrator.core.plan import Step
from orchestrator.engine.runner import run_adhoc
from orchestrator.errors import RefusedError, StepFailed
from orchestrator.facts.node import gather


def _not_at_target(engine) -> list[str]:
    """Upgraded nodes that do not answer at the target right now, each with what was seen."""
    out = []
    for name in upgraded_nodes(engine.plan):
        facts = gather(engine.conns, engine.inv.node(name), fingerprint=False, health=False)
        if facts.version is None or facts.version.release != engine.plan.target:
            seen = facts.version.release if facts.version else "no answer (unknown)"
            out.append(f"{name}: {seen}")
    return out


def run(flags: CommonFlags, yes: bool = False, confirm: Callable[[str], bool] | None = None) -> str:
    with session(flags, "finalize") as engine:
        removals = plan_finalize(engine.inv, engine.plan, engine.history())
        behind = _not_at_target(engine)
        if behind:
            raise RefusedError(f"not every node of the hop answers at {engine.plan.target} now: "
                               f"{'; '.join(behind)}", rule="finalize-unverified")
        text = render(removals, engine.plan.target)
        if not yes and not (confirm is not None and confirm(text)):
            raise RefusedError(text + "\nnot confirmed: nothing was removed (confirm, or pass --yes)",
                               rule="finalize-confirm")
        steps = [Step(f"finalize/remove-source/{r.node}", "finalize", 0, r.node, engine.inv.node(r.node).role,
                      engine.inv.node(r.node).site, "finalize", "remove-source", r.node_version, engine.plan.target,
                      f"remove the kept source appliance {r.vm_name}") for r in removals]
        result = run_adhoc(engine, steps, "finalize")
        out = render_result(result, "finalize")
        if not result.ok:
            raise StepFailed(out)
        engine.journal.append("note", run_id=engine.run_id, plan_hash=engine.plan.plan_hash, phase="finalize",
                              status=FINALIZED, data={"removed": [r.vm_name for r in removals]})
        return text + "\n" + out + "\nfinalized: a rollback is no longer offered for this hop"

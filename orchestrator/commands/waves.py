"""`invoke precheck | backup | stage | upgrade | verify`: thin wrappers that run parts of the saved plan."""
from __future__ import annotations


from orchestrator.commands.session import CommonFlags, session
from orchestrator.core.converge import planned_version
from orchestrator.core.plan import Step
from orchestrator.core.validity import nodes_without_usable_backup
from orchestrator.engine.runner import RunResult, run_adhoc
from orchestrator.errors import InputError, StepFailed, Where

BACKUP_PHASE = {"pre": "pre", "during": "vcenter", "post": "post"}


def render(result: RunResult, what: str) -> str:
    lines = [f"{what}: {len(result.done)} step(s) done, {len(result.skipped)} already done"]
    lines += [f"  would run: {p}" for p in result.planned]
    for step, err in result.failed:
        lines.append(f"  FAILED {step}: {err}")
    for step, text in result.manual:
        lines.append(f"  PAUSED {step}: {text}")
    if result.untouched:
        lines.append(f"  not started (nothing else was touched): {', '.join(result.untouched)}")
    elif result.failed or result.manual:
        lines.append("  nothing else was touched")
    if result.failed:
        lines.append("  next: fix what is named above, then re-run the same command (it resumes, asks every node "
                     "first and redoes nothing that is done)")
    return "\n".join(lines)


def _finish(result: RunResult, what: str) -> str:
    text = render(result, what)
    if result.failed or result.manual:
        raise StepFailed(text, exit_code=result.exit_code if not result.manual else 1)
    return text


def _nodes(node: str | None, engine) -> set[str] | None:
    if not node:
        return None
    names = {n.strip() for n in node.split(",") if n.strip()}
    if not names:
        raise InputError(f"--node {node!r} names no node", Where(field="--node"))
    unknown = sorted(names - {n.name for n in engine.inv.nodes})
    if unknown:
        raise InputError(f"unknown node(s): {', '.join(unknown)}", Where(field="--node"))
    return names


def precheck(flags: CommonFlags, node: str | None = None) -> str:
    with session(flags, "precheck", mutate=False) as engine:
        result = engine.run_phase("pre", nodes=_nodes(node, engine), actions={"precheck"}, rerun=True)
        return _finish(result, "precheck")


def backup(flags: CommonFlags, phase: str = "pre", node: str | None = None, snapshots: bool = False) -> str:
    if phase not in BACKUP_PHASE:
        raise InputError(f"--phase must be pre, during or post, got {phase!r}", Where(field="--phase"))
    with session(flags, f"backup --phase {phase}") as engine:
        nodes = _nodes(node, engine)
        result = engine.run_phase(BACKUP_PHASE[phase], nodes=nodes, actions={"backup"})
        planned = [s for s in engine.plan.phase(BACKUP_PHASE[phase]).steps if s.action == "backup"]
        already_sets = bool(planned) and all(s.method == "snapshot-set" for s in planned)
        if snapshots and result.ok and not already_sets:  # never two whole-domain outages for one backup
            members = [n for n in engine.inv.nodes if n.vm is not None]
            steps = [Step(f"{phase}/snapshot-set/{n.name}", phase, 0, n.name, n.role, n.site, "backup",
                          "snapshot-set", n.version.release, engine.plan.target, "cold snapshot set", phase)
                     for n in members]
            extra = run_adhoc(engine, steps, f"snapshots-{phase}")
            result.done += extra.done
            result.failed += extra.failed
            result.exit_codes += extra.exit_codes
        text = _finish(result, f"backup ({phase})")
        lacking = nodes_without_usable_backup(engine.inv, engine.history())
        if lacking:
            text += "\nwarning: no backup can restore these nodes alone right now: " + ", ".join(lacking)
        return text


def stage(flags: CommonFlags, node: str | None = None) -> str:
    with session(flags, "stage") as engine:
        return _finish(engine.run_phase("pre", nodes=_nodes(node, engine), actions={"stage"}), "stage")


def upgrade(flags: CommonFlags, wave: str, check: bool = False, concurrency: int | None = None,
            node: str | None = None) -> str:
    if wave not in ("psc", "vcenter"):
        raise InputError(f"--wave must be psc or vcenter, got {wave!r}", Where(field="--wave"))
    if concurrency is not None and concurrency < 1:
        raise InputError("--concurrency must be >= 1", Where(field="--concurrency"))
    if concurrency is not None and wave == "psc" and concurrency != 1:
        raise InputError("PSCs are upgraded one at a time: --concurrency applies to the vcenter wave only",
                         Where(field="--concurrency"), rule="psc-one-at-a-time")
    with session(flags, f"upgrade --wave {wave}", mutate=not check) as engine:
        result = engine.run_phase(wave, nodes=_nodes(node, engine), check=check, concurrency=concurrency)
        return _finish(result, f"upgrade --wave {wave}" + (" (check: nothing changed)" if check else ""))


def verify(flags: CommonFlags, node: str | None = None) -> str:
    """Verify nodes against the version the journal says they run; a paused manual step is confirmed here."""
    with session(flags, "verify") as engine:
        if not node and engine.journal.events(kind="run.end", phase="vcenter", status="ok"):
            return _finish(engine.run_phase("post", actions={"verify"}), "verify (post)")
        nodes = _nodes(node, engine) or {n.name for n in engine.inv.nodes}
        _confirm_manual(engine, nodes)
        steps = [Step(f"verify/{n.name}/{engine.run_id}", "verify", 0, n.name, n.role, n.site, "verify", "",
                      _expected(engine, n), _expected(engine, n))
                 for n in engine.inv.nodes if n.name in nodes]
        return _finish(run_adhoc(engine, steps, "verify"), "verify")


def _confirm_manual(engine, nodes: set[str]) -> None:
    """A manual upgrade step that paused the wave counts as done once the node answers at its target (as
    the command's observation of the domain saw it)."""
    for step in engine.plan.steps():
        if step.action != "upgrade" or step.node not in nodes or engine.journal.step_state(step.id) != "failed":
            continue
        last = engine.journal.events(kind="step", step=step.id)[-1]
        if not last.data.get("manual"):
            continue
        live = engine.state.nodes[step.node].version if engine.state else None
        if live and live.release == step.to:
            engine.step_event(step, "reconciled", {"outcome": "succeeded", "version_after": live.release,
                                                   "build_after": live.build, "manual": True})


def _expected(engine, node) -> str:
    """The node's planned version (core.converge.planned_version) from the journal's moves: started
    upgrades of the plan and saved rollback plans, in order."""
    upgrades = {s.id: s.to for s in engine.plan.steps() if s.action == "upgrade" and s.node == node.name}
    moves: list[tuple[str, str]] = []
    for e in engine.journal.events(kind=["step", "note"]):
        if e.kind == "step" and e.step in upgrades and e.node == node.name and e.status == "started":
            moves.append(("upgrade", upgrades[e.step]))
        elif e.kind == "note" and e.status == "rollback-plan":
            moves += [("rollback", a["to_version"]) for a in e.data.get("actions", ())
                      if a["node"] == node.name and a["action"] == "verify"]
    return planned_version(node.version.release, moves)

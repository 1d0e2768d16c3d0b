"""`invoke finalize`: the point of no return of a finished hop, confirmed, journaled, resumable.

The decision is the core's (`core/finalize.py`, from the journal); before acting, every node the hop upgraded
must answer at the target now (a node that does not answer is unknown: refused). A converge hop's PSCs are
backed up then decommissioned one at a time (the decommission restarts its vCenter's services), then the kept
source appliances are removed; all run as steps through the engine, so a crash in the middle is reconciled from
the domain on the next run. Last, the inventory of the next hop is written next to the journal, from the
versions the nodes answered with (`core/next_inventory.py`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import yaml

from orchestrator.commands.paths import write_atomic
from orchestrator.commands.session import CommonFlags, session
from orchestrator.commands.waves import render as render_result
from orchestrator.core.finalize import Removal, plan_finalize, render, upgraded_nodes
from orchestrator.core.history import FINALIZED
from orchestrator.core.next_inventory import FILENAME, header, next_inventory
from orchestrator.core.plan import Step
from orchestrator.core.versions import Version
from orchestrator.engine.journal import journal_path
from orchestrator.engine.runner import run_adhoc
from orchestrator.errors import RefusedError, StepFailed
from orchestrator.facts.node import gather
from orchestrator.core.yamlsrc import dump_plain


def _live(engine, names: list[str]) -> dict[str, Version | None]:
    """The version each node answers with now (None: it does not answer)."""
    return {n: gather(engine.conns, engine.inv.node(n), fingerprint=False, health=False).version for n in names}


def _step(engine, node: str, action: str, method: str, reason: str, tag: str = "") -> Step:
    n = engine.inv.node(node)
    return Step(f"finalize/{method if action == 'finalize' else action}/{node}", "finalize", 0, node, n.role, n.site,
                action, method, n.version.release, n.version.release if action == "backup" else engine.plan.target,
                reason, tag)


def _decommission_steps(engine, psc: str, partner: str) -> list[Step]:
    """A backup of the PSC by its inventory method (a snapshot set of the PSC alone: it leaves the domain, so
    no partner has to be reverted with it), then the decommission."""
    method = engine.inv.node(psc).backup.method  # core/finalize.py refused a PSC without one
    return [_step(engine, psc, "backup", method, "a backup of the PSC before it leaves the SSO domain",
                  "decommission"),
            _step(engine, psc, "finalize", "decommission-psc", f"decommission the external PSC through {partner}")]


def _run(engine, steps: list[Step]) -> str:
    result = run_adhoc(engine, steps, "finalize")
    out = render_result(result, "finalize")
    if not result.ok:
        raise StepFailed(out)
    return out


def _serving_vms(engine, removals: tuple[Removal, ...]) -> dict[str, str]:
    """The installer's new appliance of each node whose source was removed, as the management vCenter shows
    it now (powered on); a node whose new VM is not seen keeps its inventory VM (a rollback would need it)."""
    out = {}
    for r in removals:
        kept = engine.journal.events(kind="source_appliance", node=r.node, status="kept")
        new = kept[-1].data.get("new_vm_name") if kept else ""
        if new and engine.conns.management(r.vcenter).vm_power_states([new]).get(new) == "poweredOn":
            out[r.node] = new
    return out


def _write_next_inventory(engine, live: dict[str, Version | None], gone: list[str], vms: dict[str, str]) -> Path:
    raw = yaml.safe_load(Path(engine.inv.path).read_text(encoding="utf-8"))
    text = dump_plain(next_inventory(raw, {n: (v.release, v.build) for n, v in live.items() if v is not None},
                                         gone, vms), sort_keys=False, default_flow_style=None)
    path = journal_path(engine.options.state_dir, engine.inv.domain).with_name(FILENAME)
    write_atomic("--state-dir", path, header(engine.inv.path, engine.plan.target) + text)
    return path


def run(flags: CommonFlags, yes: bool = False, confirm: Callable[[str], bool] | None = None) -> str:
    with session(flags, "finalize") as engine:
        target = engine.plan.target
        work = plan_finalize(engine.inv, engine.plan, engine.history())
        gone = [psc for psc, _ in work.decommissions]
        live = _live(engine, [n.name for n in engine.inv.nodes if n.name not in gone])
        behind = [f"{n}: {live[n].release if live[n] else 'no answer (unknown)'}" for n in upgraded_nodes(engine.plan)
                  if live[n] is None or live[n].release != target]
        if behind:
            raise RefusedError(f"not every node of the hop answers at {target} now: {'; '.join(behind)}",
                               rule="finalize-unverified")
        text = render(work, target)
        if not yes and not (confirm is not None and confirm(text)):
            raise RefusedError(text + "\nnot confirmed: nothing was changed (confirm, or pass --yes)",
                               rule="finalize-confirm")
        outs = [_run(engine, _decommission_steps(engine, psc, partner)) for psc, partner in work.decommissions]
        if work.removals:
            outs.append(_run(engine, [_step(engine, r.node, "finalize", "remove-source",
                                            f"remove the kept source appliance {r.vm_name}") for r in work.removals]))
        engine.journal.append("note", run_id=engine.run_id, plan_hash=engine.plan.plan_hash, phase="finalize",
                              status=FINALIZED, data={"removed": [r.vm_name for r in work.removals],
                                                      "decommissioned": gone})
        path = _write_next_inventory(engine, live, gone, _serving_vms(engine, work.removals))
        return "\n".join([text, *outs, "finalized: a rollback is no longer offered for this hop",
                          f"the next hop's inventory: {path}"])

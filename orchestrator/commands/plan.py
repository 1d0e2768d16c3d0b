"""`invoke plan`: inventory + playbook + target -> a saved plan, shown as a table (or JSON)."""
from __future__ import annotations

import json
from pathlib import Path

from orchestrator.core.inventory import load_inventory
from orchestrator.commands.paths import check_file, write_atomic
from orchestrator.core.plan import Plan, build_plan, file_sha256, plan_text
from orchestrator.core.playbook import load_playbook
from orchestrator.core.rules import SITE_BY_SITE
from orchestrator.core.versions import VersionError, parse_version
from orchestrator.errors import InputError, RefusedError, Where

DEFAULT_PLAN = Path(".vcwave/plan.json")


def parse_target(text: str) -> "object":
    try:
        return parse_version(text)
    except VersionError as exc:
        raise InputError(str(exc), Where(field="--target")) from None


def make_plan(inventory: str, target: str, playbook: str | None = None, concurrency: int | None = None,
              site: str | None = None) -> Plan:
    """Compute (not save) the plan. `site` exists only to refuse site-by-site requests with the seed's reason."""
    if site is not None:  # even `--site ""`: there is no site-scoped plan to fall back to
        raise RefusedError(f"--site {site!r}: {SITE_BY_SITE}", rule="pscs-first")
    inv = load_inventory(inventory)
    pb = load_playbook(playbook)
    return build_plan(inv, pb, parse_target(target), inventory_sha256=file_sha256(inventory),
                      playbook_sha256=file_sha256(pb.path), concurrency=concurrency)


def run(inventory: str, target: str, out: str | None = None, as_json: bool = False, playbook: str | None = None,
        concurrency: int | None = None, site: str | None = None) -> str:
    out_path = check_file("--out", out or DEFAULT_PLAN)
    plan = make_plan(inventory, target, playbook, concurrency, site)
    write_atomic("--out", out_path, plan_text(plan))
    if as_json:
        return json.dumps(plan.to_json(), indent=2, sort_keys=True)
    return render_table(plan) + f"\nplan saved to {out_path} (plan_hash {plan.plan_hash[:12]})"


def render_table(plan: Plan) -> str:
    """Human view: phases, batches, nodes, from -> to, method, and the expected window."""
    lines = [f"domain {plan.domain} -> {plan.target}   playbook {Path(plan.playbook).name}",
             f"{'phase':<8} {'batch':>5}  {'node':<14} {'role':<8} {'site':<10} {'action':<9} {'method':<13} "
             f"{'from':<8} -> to"]
    for phase in plan.phases:
        for s in phase.steps:
            lines.append(f"{phase.name:<8} {s.batch:>5}  {s.node:<14} {s.role:<8} {s.site:<10} "
                         f"{s.action + ('/' + s.tag if s.tag and s.action == 'backup' else ''):<9} "
                         f"{s.method or '-':<13} {s.from_:<8} -> {s.to}")
    lines.append(f"vcenter concurrency: {plan.concurrency_rule}")
    lines.append(f"expected mixed-version window: {plan.window_estimate_min:.0f} min "
                 f"({plan.window_estimate_min / 60:.1f} h), from the first PSC install to the last vCenter verified")
    for s in plan.steps():
        if s.action == "upgrade" and s.method in ("installer", "manual"):
            lines.append(f"  {s.node}: {s.method} — {s.reason}")
            break
    lines += [f"warning: {w}" for w in plan.warnings]
    return "\n".join(lines)

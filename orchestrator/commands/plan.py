"""`invoke plan`: inventory + playbook + target -> a saved plan, shown as a table (or JSON)."""
from __future__ import annotations

import json
from pathlib import Path

from orchestrator.core import attempts
from orchestrator.core.campaign import plan_campaign
from orchestrator.core.inventory import load_inventory
from orchestrator.commands.paths import check_file, write_atomic
from orchestrator.core.plan import Plan, file_sha256, load_plan, plan_text
from orchestrator.core.playbook import load_playbook
from orchestrator.core.rules import SITE_BY_SITE
from orchestrator.core.versions import VersionError, parse_version, read_as
from orchestrator.errors import InputError, RefusedError, Where
from orchestrator.commands.plan_table import render_table
from orchestrator.engine.journal import Journal, journal_path
from orchestrator.log import get_logger, record_to

DEFAULT_PLAN = Path(".vcwave/plan.json")
MAX_PLAN_BYTES = 64 * 1024 * 1024  # a 1000-node plan is a few MB: a file beyond this is not one of ours


def parse_target(text: str) -> "object":
    try:
        return parse_version(text)
    except VersionError as exc:
        raise InputError(str(exc), Where(field="--target")) from None


def make_plan(inventory: str, target: str, playbook: str | None = None, concurrency: int | None = None,
              site: str | None = None) -> Plan:
    """Compute (not save) the plan: of the whole upgrade, or of the first hop of a longer route.
    `site` exists only to refuse site-by-site requests with the seed's reason."""
    if site is not None:  # even `--site ""`: there is no site-scoped plan to fall back to
        raise RefusedError(f"--site {site!r}: {SITE_BY_SITE}", rule="pscs-first")
    inv = load_inventory(inventory)
    pb = load_playbook(playbook)
    return plan_campaign(inv, pb, parse_target(target), inventory_sha256=file_sha256(inventory),
                         playbook_sha256=file_sha256(pb.path), concurrency=concurrency)


def replaced_plan(path: Path) -> Plan | None:
    """The vcwave plan `--out` would replace (None: a new file); any other existing file is refused. Why: run
    as root, `--out /etc/passwd` replaced the system's user list with a plan (exit 0); a typo must not cost a
    file vcwave did not write."""
    if not path.exists():
        return None
    try:
        if not path.is_file() or path.stat().st_size > MAX_PLAN_BYTES:
            raise ValueError
        return load_plan(path)
    except (OSError, ValueError, InputError):
        raise InputError(f"{path}: exists and is not a vcwave plan; vcwave replaces only its own plan files "
                         "(name a new file, or remove this one yourself)", Where(field="--out")) from None


def keep_running_campaigns_plan(path: Path, old: Plan | None, new: Plan) -> None:
    """The plan at `path` is the only way to finish or roll back its campaign: while that campaign changed the
    domain and has not ended (core/attempts.py, the journal beside the plan, `.vcwave/<domain>/` by default),
    a different plan may not replace it (the new one would be refused there anyway)."""
    journal_file = journal_path(path.parent, new.domain)
    if old is None or old.plan_hash == new.plan_hash or not journal_file.exists():
        return
    with Journal.open(journal_file) as journal:
        refusal = attempts.scope(journal.events(), new.plan_hash, "plan").refusal
    if refusal:
        raise RefusedError(f"{path} is the plan of a campaign in {journal_file.parent}: {refusal}; write the new "
                           "plan elsewhere (--out) until then", rule="one-campaign-at-a-time")


def run(inventory: str, target: str, out: str | None = None, as_json: bool = False, playbook: str | None = None,
        concurrency: int | None = None, site: str | None = None) -> str:
    out_path = check_file("--out", out or DEFAULT_PLAN)
    old = replaced_plan(out_path)
    plan = make_plan(inventory, target, playbook, concurrency, site)
    keep_running_campaigns_plan(out_path, old, plan)
    record_to(out_path.parent, plan.domain)  # the plan's state folder (.vcwave by default)
    write_atomic("--out", out_path, plan_text(plan))
    log = get_logger("vcwave.plan")
    note = read_as(target)
    if note:  # accepted, never silently: the output's first line says which release the plan is for
        log.info("plan.target_read_as", target=target, read_as=plan.target)
    log.info("plan.saved", domain=plan.domain, target=plan.target, path=str(out_path),
             plan_hash=plan.plan_hash, steps=sum(1 for _ in plan.steps()))
    if as_json:
        return json.dumps(plan.to_json(), indent=2, sort_keys=True)
    return (f"--target {note}\n" if note else "") + render_table(plan) + \
        f"\nplan saved to {out_path} (plan_hash {plan.plan_hash[:12]})"

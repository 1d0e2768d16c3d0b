"""Opening a command's session on a domain: inventory + saved plan (hash-checked) + journal + lock + clients.

Every command that touches the domain goes through `session()`, so the checks are never skipped: the plan
must match the inventory it was made from, and only one changing command runs per domain at a time.
"""
from __future__ import annotations

import contextlib
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from orchestrator.clients.installer import sweep_leftovers
from orchestrator.commands.paths import check_folder
from orchestrator.commands.plan import DEFAULT_PLAN
from orchestrator.connect import Connections, TlsOptions
from orchestrator.core import attempts
from orchestrator.core.inventory import Inventory, load_inventory
from orchestrator.core.plan import Plan, check_applied, check_plan_matches, file_sha256, load_plan
from orchestrator.core.playbook import load_playbook
from orchestrator.engine.journal import Journal
from orchestrator.engine.runner import Engine, EngineOptions, lock_for, open_journal
from orchestrator.errors import RefusedError
from orchestrator.log import describe_run, get_logger, record_to
from orchestrator.steps.installer import private_root
from orchestrator.steps.registry import impl_for
from orchestrator.stop import Interrupted


@dataclass(frozen=True)
class CommonFlags:
    inventory: str | None = None
    plan: str | None = None
    state_dir: str = ".vcwave"
    insecure: bool = False
    ca_bundle: str | None = None
    installer: str | None = None
    break_stale_lock: bool = False
    poll_interval: float = 2.0
    deadline_scale: float = 1.0

    def options(self) -> EngineOptions:
        return EngineOptions(state_dir=Path(self.state_dir), poll_interval=self.poll_interval,
                             installer=self.installer, break_stale_lock=self.break_stale_lock,
                             insecure=self.insecure, deadline_scale=self.deadline_scale)


def load_checked(flags: CommonFlags) -> tuple[Inventory, Plan]:
    """The saved plan, its inventory, and proof that the plan is still the one they give: a matching
    inventory hash, then the plan rebuilt from inventory + playbook and compared (an edited plan whose
    SHA-256 was recomputed is refused with the rule it breaks). And a usable --state-dir."""
    check_folder("--state-dir", flags.state_dir)
    plan_file = str(flags.plan or DEFAULT_PLAN)
    plan = load_plan(plan_file)
    inv_path = flags.inventory or plan.inventory
    inv = load_inventory(inv_path)
    check_plan_matches(plan, file_sha256(inv_path), inv.domain)
    playbook = load_playbook(plan.playbook)
    check_applied(plan, plan_file, inv, playbook, file_sha256(playbook.path))
    return inv, plan


def enter_campaign(journal: Journal, plan: Plan, command: str, record: bool) -> None:
    """Scope the journal's reads to the campaign `plan` runs in (core/attempts.py): a new attempt after a
    completed domain rollback, or after another plan's finished campaign, sees none of the old steps, backups
    or window. A command that journals is refused while another plan's campaign is still changing the domain;
    `status` and `report` (record=False) only look."""
    where = attempts.scope(journal.events(), plan.plan_hash, command)
    if where.refusal and record:
        raise RefusedError(where.refusal, rule="one-campaign-at-a-time")
    journal.floor = where.floor
    if where.starts_new and record:
        journal.floor = journal.append(attempts.CAMPAIGN_KIND, run_id="", plan_hash=plan.plan_hash,
                                       phase=command.split()[0], status="start", data={"after": where.floor}).seq


@contextlib.contextmanager
def journaled_stop(engine: Engine, command: str) -> Iterator[None]:
    """Ctrl-C / SIGTERM inside a command: journal who stopped it (the steps it left started are reconciled
    against the live nodes by the next run), log the one next command, then let the lock go."""
    try:
        yield
    except Interrupted as exc:
        nxt = f"invoke {command}"
        engine.journal.append("run.end", run_id=engine.run_id, plan_hash=engine.plan.plan_hash,
                              phase=command.split()[0], status="interrupted",
                              data={"signal": signal.Signals(exc.signum).name, "next": nxt})
        engine.log.warning("command.interrupted", signal=signal.Signals(exc.signum).name, next=nxt)
        exc.next_command = nxt
        raise


@contextlib.contextmanager
def session(flags: CommonFlags, command: str, *, mutate: bool = True, record: bool = True) -> Iterator[Engine]:
    """Every command starts here, and starts by looking at the domain (`engine.observe`): its decisions are
    taken from the nodes as they answer now. `record=False` (status) journals nothing."""
    inv, plan = load_checked(flags)
    options = flags.options()
    conns = Connections(inv, TlsOptions(insecure=flags.insecure, ca_bundle=flags.ca_bundle))
    conns.resolve_all()  # a missing env var or a 0644 password file is bad input: exit 2 before the lock is taken
    lock = lock_for(options, inv.domain, command) if mutate else contextlib.nullcontext()
    with lock:
        sweep_leftovers(private_root(options.state_dir, inv.domain))  # templates a killed run left behind
        record_to(options.state_dir, inv.domain)
        journal = open_journal(options, inv.domain)
        try:
            enter_campaign(journal, plan, command, record)
            engine = Engine(inv, plan, journal, conns, get_logger("vcwave.engine"), options, impl_for, locked=mutate)
            with journaled_stop(engine, command):
                hist = engine.observe(record=record).history
                describe_run(plan, (hist.window_opened, hist.window_closed))
                yield engine
        finally:
            conns.close()
            journal.close()

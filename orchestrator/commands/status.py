"""`invoke status`: where every node is, which waves are done, the window clock, usable backups, next command."""
from __future__ import annotations

import json
import time

from orchestrator.commands.session import CommonFlags, load_checked
from orchestrator.core.history import fold
from orchestrator.core.status import compute_status, render
from orchestrator.engine.runner import open_journal


def status_data(flags: CommonFlags):
    inv, plan = load_checked(flags)
    journal = open_journal(flags.options(), inv.domain)
    try:
        events = journal.events()
        states = {s.id: journal.step_state(s.id) for s in plan.steps()}
    finally:
        journal.close()
    return compute_status(inv, plan, fold(inv, events), {k: v for k, v in states.items() if v}, time.time())


def run(flags: CommonFlags, as_json: bool = False) -> str:
    st = status_data(flags)
    return json.dumps(st.to_json(), indent=2) if as_json else render(st)

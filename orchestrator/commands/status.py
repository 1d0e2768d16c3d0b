"""`invoke status`: live problems first, where every node is (live and recorded), the window clock, which
backups can restore what, a stale lock, and the next command. Read-only: it journals nothing, and it stays
quick when nodes are down (the observation gives each node a short deadline)."""
from __future__ import annotations

import json
import time

from orchestrator.commands.session import CommonFlags, session
from orchestrator.core.status import Status, compute_status, render
from orchestrator.engine.journal import journal_path
from orchestrator.engine.runner import lock_state


def status_data(flags: CommonFlags) -> Status:
    with session(flags, "status", mutate=False, record=False) as engine:
        states = {s.id: engine.journal.step_state(s.id) for s in engine.plan.steps()}
        return compute_status(engine.inv, engine.plan, engine.history(), {k: v for k, v in states.items() if v},
                              time.time(), engine.state, lock_state(flags.options(), engine.inv.domain))


def run(flags: CommonFlags, as_json: bool = False) -> str:
    st = status_data(flags)
    if as_json:
        return json.dumps(st.to_json(), indent=2)
    journal = journal_path(flags.state_dir, st.domain)
    # A mistyped --state-dir looks like a fresh domain: say where no journal was found (a new user's did not).
    note = "" if journal.exists() else f"\n(no journal at {journal}: nothing has been run with this --state-dir yet)"
    return render(st) + note

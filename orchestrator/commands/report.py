"""`invoke report [--out DIR]`: write report.md and report.html (self-contained, opens offline) from the
inventory, the saved plan and the journal. Read-only: takes no lock, changes nothing on the domain."""
from __future__ import annotations

import time
from pathlib import Path

from orchestrator.commands.paths import check_folder, write_atomic
from orchestrator.commands.session import CommonFlags, enter_campaign, load_checked
from orchestrator.engine.runner import open_journal
from orchestrator.report import build_report, render_html, render_markdown


def default_out(flags: CommonFlags, domain: str) -> Path:
    return Path(flags.state_dir) / domain / "report"


def run(flags: CommonFlags, out: str | None = None) -> str:
    flag = "--out" if out else "--state-dir"
    if out:
        check_folder(flag, out)
    inv, plan = load_checked(flags)
    journal = open_journal(flags.options(), inv.domain)
    try:
        enter_campaign(journal, plan, "report", record=False)
        events = journal.events()
        head = journal.head()
    finally:
        journal.close()
    report = build_report(inv, plan, events, head=head, generated=time.time())
    folder = Path(out) if out else default_out(flags, inv.domain)
    md, html = folder / "report.md", folder / "report.html"
    write_atomic(flag, md, render_markdown(report))
    write_atomic(flag, html, render_html(report))
    return (f"report of domain {inv.domain} ({report.events} events, journal head seq {head[0]}):\n"
            f"  {md}\n  {html}")

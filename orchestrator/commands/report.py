"""`invoke report [--out DIR]`: write report.md and report.html (self-contained, opens offline) from the
inventory, the saved plan and the journal. Read-only: takes no lock, changes nothing on the domain."""
from __future__ import annotations

import os
import time
from pathlib import Path

from orchestrator.commands.session import CommonFlags, load_checked
from orchestrator.engine.runner import open_journal
from orchestrator.report import build_report, render_html, render_markdown


def default_out(flags: CommonFlags, domain: str) -> Path:
    return Path(flags.state_dir) / domain / "report"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def run(flags: CommonFlags, out: str | None = None) -> str:
    inv, plan = load_checked(flags)
    journal = open_journal(flags.options(), inv.domain)
    try:
        events = journal.events()
        head = journal.head()
    finally:
        journal.close()
    report = build_report(inv, plan, events, head=head, generated=time.time())
    folder = Path(out) if out else default_out(flags, inv.domain)
    folder.mkdir(parents=True, exist_ok=True)
    md, html = folder / "report.md", folder / "report.html"
    _write(md, render_markdown(report))
    _write(html, render_html(report))
    return (f"report of domain {inv.domain} ({report.events} events, journal head seq {head[0]}):\n"
            f"  {md}\n  {html}")

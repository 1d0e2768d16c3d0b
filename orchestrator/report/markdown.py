"""The report as Markdown (for a change ticket or a wiki). Every cell is escaped: no raw HTML from the
journal can become live markup in a Markdown renderer, and a `|` cannot break a table."""
from __future__ import annotations

from orchestrator.report.model import Report, fmt_duration, fmt_ts, stopped_text, until_text


def cell(value: object) -> str:
    text = str(value).replace("\r", " ").replace("\n", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`") or "-"


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return out


def _section(title: str, headers: list[str], rows: list[list[object]], empty: str) -> list[str]:
    """A titled table, or one sentence saying there is nothing of the kind (never an empty table)."""
    return ["", f"## {title}", ""] + (_table(headers, rows) if rows else [empty])


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render_markdown(r: Report) -> str:
    head = f"seq {r.head_seq}, hash {r.head_hash[:16]}" if r.head_hash else f"seq {r.head_seq}"
    lines = [
        f"# vcwave report — {cell(r.domain)}",
        "",
        f"- **target**: {cell(r.target)}",
        f"- **domain version**: {cell(r.domain_version_before)} → {cell(r.domain_version_now)}",
        f"- **plan hash**: {cell(r.plan_hash[:16])}",
        f"- **journal head**: {cell(head)} (compare with the journal: a rewritten history changes it)",
        f"- **events**: {r.events}, from {cell(fmt_ts(r.t0))} to {cell(fmt_ts(r.t1))}",
        f"- **generated**: {cell(fmt_ts(r.generated))}",
        "",
    ]
    if r.problems:
        lines += ["## Problems", ""] + [f"- {cell(p)}" for p in r.problems] + [""]

    lines += ["## Timeline", ""]
    if not r.events:
        lines += ["No events in the journal yet: nothing has run.", ""]
    else:
        lines += ["The drawn timeline is in `report.html`.", ""]
        lines += _table(["phase", "start", "end", "length"],
                        [[p.name, fmt_ts(p.start), fmt_ts(p.end), fmt_duration(p.duration)] for p in r.phases])
        lines += ["", "### Steps", ""]
        lines += _table(["node", "step", "start", "end", "length", "outcome"],
                        [[b.node, b.step, fmt_ts(b.start), fmt_ts(b.end), fmt_duration(b.duration), b.outcome]
                         for b in r.bars])
        lines.append("")

    lines += ["## Nodes", ""]
    lines += _table(["node", "role", "site", "version before → now", "verified at", "upgrades", "last step"],
                    [[n.name, n.role, n.site, f"{n.version_before} → {n.version_now}", n.verified_at or "-",
                      n.upgrades, f"{n.last_step} {n.last_status}".strip() or "-"] for n in r.rows])

    lines += _section("Backups", ["id", "node", "method", "tag", "taken", "taken at domain", "usable alone now?",
                                  "in a domain rollback?", "stopped being usable alone", "reason"],
                      [[b.backup_id, b.node, b.method, b.tag or "-", fmt_ts(b.ts), b.domain_version,
                        _yes(b.usable_alone_now), _yes(b.whole_domain_now), stopped_text(b), b.reason]
                       for b in r.backups], "No backup recorded.")
    lines += _section("Failures", ["time", "node", "step", "kind", "error"],
                      [[fmt_ts(f.ts), f.node or "(domain)", f.step, "manual step" if f.manual else "failed", f.error]
                       for f in r.failures], "No failure recorded.")
    lines += _section("Outages", ["node", "since", "until", "length", "what the domain showed", "journal said"],
                      [[o.node, fmt_ts(o.since), until_text(o), fmt_duration(o.duration), o.live, o.journal]
                       for o in r.outages], "No node was found not answering.")
    lines += _section("Disagreements", ["node", "about", "since", "until", "journal said", "live"],
                      [[d.node, d.field, fmt_ts(d.since), until_text(d), d.journal, d.live] for d in r.disagreements],
                      "Journal and domain never disagreed otherwise.")
    lines += _section("Refusals", ["time", "command", "rule", "node", "what it said"],
                      [[fmt_ts(x.ts), x.command, x.rule, x.node or "-", x.reason] for x in r.refusals],
                      "No command was refused.")
    lines += _section("Rollbacks", ["scope", "to", "started", "ended", "length", "actions", "status"],
                      [[x.scope, x.to, fmt_ts(x.start), fmt_ts(x.end), fmt_duration(x.duration), x.actions, x.status]
                       for x in r.rollbacks], "No rollback recorded.")

    w = r.window
    lines += ["", "## Mixed-version window", ""]
    if w.opened is None:
        lines.append("Not opened (no PSC upgrade started).")
    else:
        lines += _table(["state", "opened", "closed", "length"],
                        [[w.state, fmt_ts(w.opened), fmt_ts(w.closed),
                          fmt_duration(w.length_s) + (" so far" if w.state == "OPEN" else "")]])
    lines.append("")
    return "\n".join(lines)

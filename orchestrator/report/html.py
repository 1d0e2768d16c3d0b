"""The report as one self-contained HTML page: inline CSS, an inline SVG timeline, no script, no external
asset (a Content-Security-Policy forbids loading anything), so it opens offline and can be attached to a
change ticket. Every piece of text goes through html.escape.

Timeline layout: time on x; one row per node (`<g data-node="...">`, PSCs first, then vCenters, by site);
phase bands across the top, the mixed-version window and rollbacks as shaded bands over the rows; each step
a bar coloured by outcome with a `<title>` tooltip; backups as diamonds on their node's row, a dotted line
while the backup can restore its node alone and a cross where it stopped; failures as red triangles.
"""
from __future__ import annotations

from html import escape

from orchestrator.report.legend import CHAR_W, bar_text, kind, legend
from orchestrator.report.model import Report, fmt_duration, fmt_ts, stopped_text, until_text

WIDTH = 1240
LEFT = 240
RIGHT = 24
TOP_PHASES = 8
BAND_H = 22
ROWS_TOP = 66
ROW_H = 36
AXIS_H = 34
BACKUP_MARK_W = 8.0  # half a backup mark's width plus a gap: a bar's label keeps clear of it

OUTCOME_LABEL = {"succeeded": "succeeded", "failed": "failed", "reconciled": "reconciled after a crash",
                 "manual": "manual step required", "skipped": "skipped", "not_done": "reconciled: not done",
                 "running": "started, not finished"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2530;background:#fff}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d5dbe3;padding-bottom:4px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0 0 12px;font-size:14px}
dl.meta dt{color:#5a6675}dl.meta dd{margin:0}code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{border:1px solid #d5dbe3;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#f1f4f8}tr.bad td{background:#fdecec}.yes{color:#1b5e20;font-weight:600}.no{color:#b71c1c;font-weight:600}
.problems{background:#fff4e5;border:1px solid #f0b35e;padding:8px 12px}
.legend{font-size:12px;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:4px 14px}
.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle;border-radius:2px}
.tl{overflow-x:auto;border:1px solid #d5dbe3;border-radius:4px;background:#fbfcfd}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.o-succeeded{fill:#2e7d32}.o-failed{fill:#c62828}.o-reconciled{fill:#7b1fa2}.o-manual{fill:#ef6c00}
.o-skipped{fill:#9aa5b1}.o-not_done{fill:#cfd6de}.o-running{fill:#1e88e5}
.t-pre{fill:#1565c0}.t-during{fill:#00897b}.t-post{fill:#6d4c41}.t-{fill:#546e7a}
.ph-pre{fill:#e3f2fd}.ph-psc{fill:#ede7f6}.ph-vcenter{fill:#e0f2f1}.ph-post{fill:#f1f8e9}.ph-rollback{fill:#fdecea}
.bar-label{font-weight:600;pointer-events:none}
@media print{
@page{size:A4 landscape;margin:10mm}
body{margin:0;font-size:11px;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.tl{overflow:visible;border:none;break-inside:avoid}svg#timeline{width:100%;height:auto;max-width:none!important}
.legend{break-inside:avoid;font-size:11px}h2{break-after:avoid}tr{break-inside:avoid}table{font-size:10px}
th,td{padding:2px 4px}td{word-break:break-word}
}
"""



def e(value: object) -> str:
    return escape(str(value), quote=True)


def _ticks(t0: float, t1: float) -> list[float]:
    span = max(t1 - t0, 1.0)
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if span / step <= 10:
            break
    first = (int(t0) // step + 1) * step
    return [float(t) for t in range(first, int(t1) + 1, step)]


def render_svg(r: Report) -> str:
    nrows = len(r.rows)
    rows_h = max(nrows, 1) * ROW_H
    height = ROWS_TOP + rows_h + AXIS_H
    pw = WIDTH - LEFT - RIGHT
    out = [f'<svg id="timeline" width="100%" viewBox="0 0 {WIDTH} {height}" preserveAspectRatio="xMinYMin meet" '
           f'role="img" aria-labelledby="timeline-title" style="max-width:{WIDTH}px">',
           f'<title id="timeline-title">Timeline of domain {e(r.domain)}</title>',
           f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#fbfcfd"/>']
    ypos = {row.name: ROWS_TOP + i * ROW_H for i, row in enumerate(r.rows)}
    if r.t0 is None or r.t1 is None:
        t0, t1 = 0.0, 1.0
    else:
        t0, t1 = r.t0, max(r.t1, r.t0 + 1.0)

    def x(ts: float) -> float:
        return round(LEFT + (ts - t0) / (t1 - t0) * pw, 2)

    # row backgrounds first (so bands and marks are drawn over them)
    for i, row in enumerate(r.rows):
        y = ypos[row.name]
        fill = "#f3f6f9" if i % 2 else "#ffffff"
        out.append(f'<rect x="0" y="{y}" width="{WIDTH}" height="{ROW_H}" fill="{fill}"/>')
    if r.events:
        for t in _ticks(t0, t1):  # vertical grid, under everything else
            out.append(f'<line x1="{x(t)}" y1="{TOP_PHASES}" x2="{x(t)}" y2="{ROWS_TOP + rows_h}" stroke="#e3e8ee" '
                       f'stroke-width="0.8"/>')
        # phase bands across the top
        out.append('<g class="phases">')
        for p in r.phases:
            x0, x1 = x(p.start), x(p.end)
            w = max(x1 - x0, 3)
            out.append(f'<g class="phase" data-phase="{e(p.name)}"><rect class="ph-{e(p.name)}" x="{x0}" '
                       f'y="{TOP_PHASES}" width="{w}" height="{BAND_H}" stroke="#90a4ae" stroke-width="0.6"/>'
                       f'<title>phase {e(p.name)}: {e(fmt_ts(p.start))} → {e(fmt_ts(p.end))} '
                       f'({e(fmt_duration(p.duration))})</title>')
            if w > 34:
                out.append(f'<text x="{x0 + 4}" y="{TOP_PHASES + 15}" font-size="12" fill="#263238">{e(p.name)}</text>')
            out.append('</g>')
        out.append('</g>')
        band_y = TOP_PHASES + BAND_H + 4
        # the mixed-version window: a shaded band over every row, labelled with its length
        w = r.window
        if w.opened is not None:
            end = w.closed if w.closed is not None else t1
            x0, x1 = x(w.opened), x(end)
            label = (f"mixed-version window {fmt_duration(w.length_s)}" +
                     (" (OPEN)" if w.state == "OPEN" else ""))
            out.append(f'<g class="window"><rect x="{x0}" y="{band_y}" width="{max(x1 - x0, 2)}" '
                       f'height="{ROWS_TOP - band_y + rows_h}" fill="#ffca28" fill-opacity="0.16" stroke="#f9a825" '
                       f'stroke-dasharray="4 3"/><title>{e(label)}: opened {e(fmt_ts(w.opened))}, '
                       f'closed {e(fmt_ts(w.closed))}</title>'
                       f'{_label(x0, x1, band_y + 14, label, 12, "#8d6e00")}</g>')
        # rollbacks: a red band over every row
        for rb in r.rollbacks:
            end = rb.end if rb.end is not None else t1
            x0, x1 = x(rb.start), x(end)
            label = f"rollback {rb.scope} → {rb.to} ({rb.status})"
            out.append(f'<g class="rollback"><rect x="{x0}" y="{band_y}" width="{max(x1 - x0, 2)}" '
                       f'height="{ROWS_TOP - band_y + rows_h}" fill="#e53935" fill-opacity="0.10" stroke="#e53935" '
                       f'stroke-width="1"/><title>{e(label)}: {e(fmt_ts(rb.start))} → {e(fmt_ts(rb.end))}</title>'
                       f'{_label(x0, x1, band_y + 28, label, 12, "#b71c1c")}</g>')

    # one row per node
    for row in r.rows:
        y = ypos[row.name]
        mid = y + ROW_H / 2
        out.append(f'<g class="row" data-node="{e(row.name)}">')
        about = f"{row.role} · {row.site} · {row.version_before} → {row.version_now}"
        out.append(f'<text x="10" y="{y + 15}" font-size="{_fit(row.name, 13)}" font-weight="600" '
                   f'fill="#1d2530">{e(row.name)}</text>'
                   f'<text x="10" y="{y + 29}" font-size="{_fit(about, 11)}" fill="#5a6675">{e(about)}</text>')
        out.append(f'<line x1="{LEFT}" y1="{mid}" x2="{WIDTH - RIGHT}" y2="{mid}" stroke="#dfe4ea"/>')
        for b in r.bars_of(row.name):
            x0, x1 = x(b.start), x(b.end)
            tip = (f"{b.step} on {b.node}: {OUTCOME_LABEL.get(b.outcome, b.outcome)}\n{fmt_ts(b.start)} → "
                   f"{fmt_ts(b.end)} ({fmt_duration(b.duration)})" +
                   "".join(f"\n{k}: {v}" for k, v in b.detail))
            mark = BACKUP_MARK_W if b.action == "backup" else 0.0  # the backup's mark sits on the bar's end
            text = bar_text(b, x1 - x0 - mark)
            width = round(max(x1 - x0, len(text) * CHAR_W + 4 + mark), 2)  # a short bar still shows its code
            ink = "#1d2530" if b.outcome in ("skipped", "not_done") else "#ffffff"
            out.append(f'<rect class="bar o-{e(b.outcome)}" data-outcome="{e(b.outcome)}" data-step="{e(b.step)}" '
                       f'data-action="{e(kind(b))}" x="{x0}" y="{y + 10}" width="{width}" height="16" rx="2">'
                       f'<title>{e(tip)}</title></rect>'
                       f'<text class="bar-label" x="{round(x0 + (width - mark) / 2, 2)}" y="{y + 22}" font-size="11" '
                       f'text-anchor="middle" fill="{ink}">{e(text)}</text>')
        for bk in r.backups_of(row.name):
            bx = x(bk.ts)
            # dotted while it can restore its node alone; a cross each time it stops being able to
            usable_from = bk.ts if bk.usable_when_taken else None
            for t in bk.transitions:
                if t.usable:
                    usable_from = t.ts
                    continue
                if usable_from is not None:
                    out.append(_usable_line(x(usable_from), x(t.ts), y))
                usable_from = None
                sx = x(t.ts)
                text = (f"backup {bk.backup_id} stopped being usable to restore {bk.node} alone at {fmt_ts(t.ts)} "
                        f"(domain {t.domain_version}): {t.reason}")
                out.append(f'<path class="stop" data-backup="{e(bk.backup_id)}" d="M{sx - 5},{y + 1} L{sx + 5},{y + 11} '
                           f'M{sx - 5},{y + 11} L{sx + 5},{y + 1}" stroke="#b71c1c" stroke-width="2.2">'
                           f'<title>{e(text)}</title></path>')
            if usable_from is not None:
                out.append(_usable_line(x(usable_from), x(t1), y))
            tip = (f"backup {bk.backup_id} ({bk.method}, {bk.tag or 'untagged'}) of {bk.node} at {fmt_ts(bk.ts)}\n"
                   f"taken at domain {bk.domain_version}, node {bk.node_version}\n"
                   f"usable alone now: {'yes' if bk.usable_alone_now else 'no'}; stopped: {stopped_text(bk)}\n"
                   f"{bk.reason}")
            out.append(f'<path class="backup t-{e(bk.tag)}" data-backup="{e(bk.backup_id)}" '
                       f'data-method="{e(bk.method)}" d="{_backup_shape(bk.method, bx, mid)}" stroke="#fff" '
                       f'stroke-width="1"><title>{e(tip)}</title></path>')
        out += _outage_marks(r, row.name, y, x, t1)
        for f in r.failures:
            if f.node != row.name:
                continue
            fx = x(f.ts)
            out.append(f'<path class="failure" d="M{fx - 6},{y + 1} L{fx + 6},{y + 1} L{fx},{y + 10} Z" '
                       f'fill="#d50000"><title>{e(("manual step: " if f.manual else "FAILED: ") + f.step)} at '
                       f'{e(fmt_ts(f.ts))}: {e(f.error)}</title></path>')
        out.append('</g>')

    out += _snapshot_sets(r, ypos, x)

    # time axis
    ay = ROWS_TOP + rows_h
    out.append(f'<g class="axis"><line x1="{LEFT}" y1="{ay}" x2="{WIDTH - RIGHT}" y2="{ay}" stroke="#78909c"/>')
    if r.events:
        ticks = _ticks(t0, t1)
        fine = len(ticks) > 1 and ticks[1] - ticks[0] < 60
        for t in ticks:
            tx = x(t)
            from datetime import datetime, timezone
            label = datetime.fromtimestamp(t, tz=timezone.utc).strftime("%H:%M:%S" if fine else "%H:%M")
            out.append(f'<line x1="{tx}" y1="{ay}" x2="{tx}" y2="{ay + 5}" stroke="#78909c"/>'
                       f'<text x="{tx}" y="{ay + 18}" font-size="11" text-anchor="middle" fill="#455a64">{e(label)}</text>')
        out.append(f'<text x="10" y="{ay + 18}" font-size="11" fill="#455a64">UTC, {e(fmt_ts(r.t0)[:10])}</text>')
    out.append('</g>')
    if not r.events:
        out.append(f'<text class="empty" x="{LEFT + pw / 2}" y="{ROWS_TOP / 2 + 6}" font-size="15" '
                   f'text-anchor="middle" fill="#5a6675">No events in the journal yet: nothing has run.</text>')
    out.append('</svg>')
    return "\n".join(out)


def _label(x0: float, x1: float, y: float, text: str, size: int, fill: str) -> str:
    """A band's label, inside the drawing whatever the band's position: from the band's left edge when it
    fits before the right edge of the SVG, else ending at the band's right edge (or the SVG's)."""
    width = len(text) * size * 0.6
    if x0 + 4 + width <= WIDTH - RIGHT:
        return f'<text x="{x0 + 4}" y="{y}" font-size="{size}" fill="{fill}">{e(text)}</text>'
    end = max(min(x1, WIDTH - RIGHT) - 4, width + 4)
    return f'<text x="{round(end, 2)}" y="{y}" font-size="{size}" fill="{fill}" text-anchor="end">{e(text)}</text>'


def _fit(text: str, size: float) -> float:
    """A font size at which `text` fits the label column (a long node or site name shrinks, never runs
    under the bars)."""
    return round(min(size, (LEFT - 16) / max(len(text) * 0.62, 1)), 1)


def _backup_shape(method: str, bx: float, mid: float) -> str:
    """A file backup is a diamond, a snapshot set a square, an external backup a circle: told apart in
    black and white too."""
    if method == "snapshot-set":
        return f"M{bx - 6},{mid - 6} L{bx + 6},{mid - 6} L{bx + 6},{mid + 6} L{bx - 6},{mid + 6} Z"
    if method == "external":
        return f"M{bx - 7},{mid} a7,7 0 1,0 14,0 a7,7 0 1,0 -14,0 Z"
    return f"M{bx},{mid - 8} L{bx + 6},{mid} L{bx},{mid + 8} L{bx - 6},{mid} Z"


def _snapshot_sets(r: Report, ypos: dict[str, float], x) -> list[str]:
    """One vertical line through the squares of each snapshot set: its members were taken together."""
    sets: dict[str, list] = {}
    for bk in r.backups:
        if bk.method == "snapshot-set" and bk.node in ypos:
            sets.setdefault(bk.backup_id.split(":")[0], []).append(bk)
    out = []
    for set_id, members in sets.items():
        if len(members) < 2:
            continue
        ys = [ypos[m.node] + ROW_H / 2 for m in members]
        bx = x(min(m.ts for m in members))
        out.append(f'<line class="snapshot-set" data-set="{e(set_id)}" x1="{bx}" y1="{min(ys)}" x2="{bx}" '
                   f'y2="{max(ys)}" stroke="#37474f" stroke-width="2"><title>snapshot set {e(set_id)}: '
                   f'{e(", ".join(m.node for m in members))}, taken together</title></line>')
    return out


def _outage_marks(r: Report, node: str, y: float, x, t1: float) -> list[str]:
    """A dark strip under the node's bars while it did not answer (or waited for a restore): on paper the
    legend names it, on screen its tooltip gives since/until and what the domain showed."""
    out = []
    for o in r.outages:
        if o.node != node:
            continue
        x0, x1 = x(o.since), x(o.until if o.until is not None else t1)
        tip = f"{node} {o.live}: {fmt_ts(o.since)} → {until_text(o)}"
        out.append(f'<rect class="outage" data-node="{e(node)}" x="{x0}" y="{y + 29}" width="{max(x1 - x0, 3)}" '
                   f'height="5" fill="#37474f"><title>{e(tip)}</title></rect>')
    return out


def _usable_line(x0: float, x1: float, y: float) -> str:
    return (f'<line class="usable" x1="{x0}" y1="{y + 6}" x2="{x1}" y2="{y + 6}" stroke="#1565c0" '
            f'stroke-width="1.4" stroke-dasharray="2 2"/>')


def _yes(flag: bool) -> str:
    return f'<span class="{"yes" if flag else "no"}">{"yes" if flag else "no"}</span>'


def _table(headers: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _section(title: str, headers: list[str], rows: list[list[str]], empty: str, bad: bool = False) -> list[str]:
    """A titled table (every row marked `bad` when the kind is trouble), or one sentence saying there is
    nothing of the kind. `rows` hold escaped cells only."""
    body = _table(headers, rows, ["bad"] * len(rows) if bad else None) if rows else f"<p>{e(empty)}</p>"
    return [f"<h2>{e(title)}</h2>", body]


def render_html(r: Report) -> str:
    """The whole page. Table cells are built from escaped text only (see `e`)."""
    head = f"seq {r.head_seq}" + (f", hash {r.head_hash[:16]}" if r.head_hash else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>vcwave report — {e(r.domain)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>vcwave report — {e(r.domain)}</h1>",
        '<dl class="meta">',
        f"<dt>target</dt><dd>{e(r.target)}</dd>",
        f"<dt>domain version</dt><dd>{e(r.domain_version_before)} → {e(r.domain_version_now)}</dd>",
        f'<dt>plan hash</dt><dd><code>{e(r.plan_hash[:16])}</code></dd>',
        f'<dt>journal head</dt><dd><code id="journal-head">{e(head)}</code> (an anchor: a rewritten history '
        f"changes it)</dd>",
        f"<dt>events</dt><dd>{r.events}, from {e(fmt_ts(r.t0))} to {e(fmt_ts(r.t1))}</dd>",
        f"<dt>generated</dt><dd>{e(fmt_ts(r.generated))}</dd>",
        "</dl>",
    ]
    if r.problems:
        parts.append('<div class="problems"><strong>Problems</strong><ul>' +
                     "".join(f"<li>{e(p)}</li>" for p in r.problems) + "</ul></div>")
    parts += ["<h2>Timeline</h2>", f'<div class="tl">{render_svg(r)}</div>', '<div class="legend">']
    for entry in legend(r):
        swatch = "" if entry.glyph else f'<span class="sw" style="background:{e(entry.swatch)}"></span>'
        parts.append(f"<span>{swatch}{e(entry.text)}</span>")
    parts.append("</div>")

    parts += ["<h2>Nodes</h2>", _table(
        ["node", "role", "site", "version before → now", "verified at", "upgrades", "last step"],
        [[e(n.name), e(n.role), e(n.site), f"{e(n.version_before)} → {e(n.version_now)}", e(n.verified_at or "-"),
          str(n.upgrades), e(f"{n.last_step} {n.last_status}".strip() or "-")] for n in r.rows],
        ["bad" if n.upgrades > 1 or n.last_status == "failed" else "" for n in r.rows])]

    parts += _section("Backups", [
        "id", "node", "method", "tag", "taken", "taken at domain", "usable alone now?", "in a domain rollback?",
        "stopped being usable alone", "reason"],
        [[f"<code>{e(b.backup_id)}</code>", e(b.node), e(b.method), e(b.tag or "-"), e(fmt_ts(b.ts)),
          e(b.domain_version), _yes(b.usable_alone_now), _yes(b.whole_domain_now), e(stopped_text(b)),
          e(b.reason)] for b in r.backups], "No backup recorded.")
    parts += _section("Failures", ["time", "node", "step", "kind", "error"],
                      [[e(fmt_ts(f.ts)), e(f.node or "(domain)"), f"<code>{e(f.step)}</code>",
                        "manual step" if f.manual else "failed", f'<span class="error">{e(f.error)}</span>']
                       for f in r.failures], "No failure recorded.", bad=True)
    parts += _section("Outages", ["node", "since", "until", "length", "what the domain showed", "journal said"],
                      [[e(o.node), e(fmt_ts(o.since)), e(until_text(o)), e(fmt_duration(o.duration)), e(o.live),
                        e(o.journal)] for o in r.outages], "No node was found not answering.", bad=True)
    parts += _section("Disagreements", ["node", "about", "since", "until", "journal said", "live"],
                      [[e(d.node), e(d.field), e(fmt_ts(d.since)), e(until_text(d)), e(d.journal), e(d.live)]
                       for d in r.disagreements], "Journal and domain never disagreed otherwise.")
    parts += _section("Refusals", ["time", "command", "rule", "node", "what it said"],
                      [[e(fmt_ts(x.ts)), e(x.command), f"<code>{e(x.rule)}</code>", e(x.node or "-"), e(x.reason)]
                       for x in r.refusals], "No command was refused.")
    parts += _section("Rollbacks", ["scope", "to", "started", "ended", "length", "actions", "status"],
                      [[e(x.scope), e(x.to), e(fmt_ts(x.start)), e(fmt_ts(x.end)), e(fmt_duration(x.duration)),
                        str(x.actions), e(x.status)] for x in r.rollbacks], "No rollback recorded.")

    w = r.window
    parts.append("<h2>Mixed-version window</h2>")
    if w.opened is None:
        parts.append("<p>Not opened (no PSC upgrade started).</p>")
    else:
        parts.append(_table(["state", "opened", "closed", "length"],
                            [[e(w.state), e(fmt_ts(w.opened)), e(fmt_ts(w.closed)),
                              e(fmt_duration(w.length_s) + (" so far" if w.state == "OPEN" else ""))]]))

    if r.bars:
        parts.append("<h2>Steps</h2>")
        parts.append(_table(["node", "step", "start", "end", "length", "outcome"],
                            [[e(b.node), f"<code>{e(b.step)}</code>", e(fmt_ts(b.start)), e(fmt_ts(b.end)),
                              e(fmt_duration(b.duration)), e(OUTCOME_LABEL.get(b.outcome, b.outcome))]
                             for b in r.bars],
                            ["bad" if b.outcome in ("failed", "manual") else "" for b in r.bars]))
    parts.append("</body></html>\n")
    return "\n".join(parts)

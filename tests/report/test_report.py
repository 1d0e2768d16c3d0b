"""The report: model computed from a real journal, Markdown content, HTML structure, escaping, no assets."""
from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from orchestrator.clients import scrub
from orchestrator.commands.report import run as report_run
from orchestrator.commands.session import CommonFlags
from orchestrator.core.plan import save_plan
from orchestrator.engine.journal import journal_path
from orchestrator.report import build_report, render_html, render_markdown

from . import (BASE, ERROR_TEXT, INVENTORY, NODES, inventory_and_plan, open_journal, write_rollback_run,
               write_upgrade_run)


class Page(HTMLParser):
    """Collects what the tests look at: tags, attributes, text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Page:
    p = Page()
    p.feed(html)
    p.close()
    return p


def _build(tmp_path: Path, monkeypatch, writer_fn):
    inv, plan = inventory_and_plan()
    j, w = open_journal(tmp_path / "journal.sqlite", monkeypatch)
    try:
        writer_fn(w)
        events, head = j.events(), j.head()
    finally:
        j.close()
    return inv, plan, events, head, w


@pytest.fixture
def upgrade(tmp_path, monkeypatch):
    inv, plan, events, head, w = _build(tmp_path, monkeypatch, write_upgrade_run)
    report = build_report(inv, plan, events, head=head, generated=BASE + 300 * 60)
    return report, w, head


@pytest.fixture
def rollback(tmp_path, monkeypatch):
    inv, plan, events, head, w = _build(tmp_path, monkeypatch, write_rollback_run)
    return build_report(inv, plan, events, head=head, generated=BASE + 130 * 60), w


# ---------------------------------------------------------------- model

def test_rows_psc_first_then_vcenters_by_site(upgrade):
    report, _, head = upgrade
    assert [r.name for r in report.rows] == ["psc-a", "psc-b", "vc-a", "vc-b"]
    assert report.head_seq == head[0] and report.head_hash == head[1] and head[0] == report.events
    assert (report.domain, report.target) == ("vsphere.local", "6.7 U3")
    assert (report.domain_version_before, report.domain_version_now) == ("6.7 U1", "6.7 U3")
    for r in report.rows:
        assert (r.version_before, r.version_now, r.upgrades, r.verified_at) == ("6.7 U1", "6.7 U3", 1, "6.7 U3")


def test_bars_from_started_to_end_with_outcomes(upgrade):
    report, w, _ = upgrade
    vc_a = [b for b in report.bars_of("vc-a") if b.step == "vcenter/upgrade/vc-a"]
    assert [b.outcome for b in vc_a] == ["failed", "succeeded"]
    assert (vc_a[0].start, vc_a[0].end) == (BASE + 130 * 60, BASE + 150 * 60)
    assert (vc_a[1].start, vc_a[1].end) == (BASE + 170 * 60, BASE + 215 * 60)
    # a progress report (a second `started`) does not split the bar
    psc_a = [b for b in report.bars_of("psc-a") if b.step == "psc/upgrade/psc-a"]
    assert len(psc_a) == 1 and (psc_a[0].start, psc_a[0].end) == (BASE + 30 * 60, w.ts["upgraded:psc-a"])
    assert dict(psc_a[0].detail)["version_after"] == "6.7 U3"
    assert Counter(b.outcome for b in report.bars) == {"succeeded": 32, "failed": 1}


def test_backup_stopped_being_usable_at_first_psc_upgrade(upgrade):
    report, w, _ = upgrade
    first_psc_success = w.ts["upgraded:psc-a"]
    pre = [b for b in report.backups if b.tag == "pre"]
    assert {b.node for b in pre} == set(NODES)
    for b in pre:
        assert b.usable_when_taken is True
        assert b.stopped_at == first_psc_success
        assert b.transitions[0].domain_version == "6.7 U1+6.7 U3"
        assert not b.usable_alone_now and b.whole_domain_now
        assert "6.7 U1" in b.reason and "6.7 U3" in b.reason
    during_vc = next(b for b in report.backups if b.tag == "during" and b.node == "vc-a")
    assert during_vc.usable_alone_now and during_vc.stopped_at is None and during_vc.domain_version == "6.7 U3"
    post = [b for b in report.backups if b.tag == "post"]
    assert len(post) == 4 and all(b.usable_alone_now and b.stopped_at is None for b in post)


def test_window_failures_phases(upgrade):
    report, w, _ = upgrade
    assert report.window.state == "closed"
    assert report.window.length_s == pytest.approx(235 * 60)
    assert report.window.closed - report.window.opened == w.ts["window:closed"] - w.ts["window:opened"]
    assert [(f.node, f.step, f.error) for f in report.failures] == [("vc-a", "vcenter/upgrade/vc-a", ERROR_TEXT)]
    assert [p.name for p in report.phases] == ["pre", "psc", "vcenter", "post"]
    assert report.rollbacks == () and report.problems == ()


def test_rollback_variant(rollback):
    report, w = rollback
    assert report.domain_version_now == "6.7 U1"
    [rb] = report.rollbacks
    assert (rb.scope, rb.to, rb.status, rb.actions) == ("domain", "pre", "done", 2)
    assert (rb.start, rb.end) == (w.ts["rollback:plan"], w.ts["rollback:done"])
    assert [p.name for p in report.phases] == ["pre", "psc", "rollback"]
    assert [(f.node, f.step) for f in report.failures] == [("psc-b", "psc/upgrade/psc-b")]
    psc_a = next(b for b in report.backups if b.node == "psc-a" and b.tag == "pre")
    assert psc_a.stopped_at == w.ts["upgraded:psc-a"]
    assert [(t.ts, t.usable) for t in psc_a.transitions] == [(w.ts["upgraded:psc-a"], False),
                                                             (w.ts["rollback:restored"], True)]
    assert psc_a.usable_alone_now
    assert report.window.state == "OPEN"  # the journal never closed it; the report says so
    rb_bars = [b for b in report.bars_of("psc-a") if b.phase == "rollback"]
    assert [b.outcome for b in rb_bars] == ["succeeded", "succeeded"]
    html = render_html(report)
    assert html.count('<g class="rollback">') == 1 and 'data-phase="rollback"' in html
    md = render_markdown(report)
    assert "| domain | pre |" in md and "usable again" in md


def test_empty_journal_renders(tmp_path, monkeypatch):
    inv, plan = inventory_and_plan()
    report = build_report(inv, plan, [], head=(0, "0" * 64), generated=BASE)
    assert report.events == 0 and report.t0 is None and report.bars == () and report.window.state == "not opened"
    html = render_html(report)
    page = parse(html)
    assert [a["data-node"] for t, a in page.tags if t == "g" and "data-node" in a] == list(NODES)
    assert "No events in the journal yet" in html
    md = render_markdown(report)
    assert "No events in the journal yet" in md and "No backup recorded." in md


# ---------------------------------------------------------------- Markdown

def test_markdown_content(upgrade):
    report, _, head = upgrade
    md = render_markdown(report)
    assert md.startswith("# vcwave report — vsphere.local")
    assert f"seq {head[0]}, hash {head[1][:16]}" in md
    assert report.plan_hash[:16] in md
    for section in ("## Timeline", "## Nodes", "## Backups", "## Failures", "## Rollbacks", "## Mixed-version window"):
        assert section in md
    assert "| psc-a | psc | site-a | 6.7 U1 → 6.7 U3 | 6.7 U3 | 1 |" in md
    assert "| pre-psc-a-1 | psc-a | file | pre |" in md
    assert "2024-03-02 08:30:00 UTC" in md  # the pre backups stopped being usable at the first PSC upgrade... start
    assert "2024-03-02 09:10:00 UTC" in md  # ...success
    assert "3 h 55 min" in md
    assert "<script>" not in md and "&lt;script&gt;alert" in md
    # every table row has as many cells as its header
    for block in re.split(r"\n\n", md):
        rows = [l for l in block.splitlines() if l.startswith("|")]
        if rows:
            widths = {len(re.split(r"(?<!\\)\|", r)) for r in rows}
            assert len(widths) == 1, block


# ---------------------------------------------------------------- HTML

def test_html_structure_one_row_per_node(upgrade):
    report, _, head = upgrade
    html = render_html(report)
    page = parse(html)
    svgs = [a for t, a in page.tags if t == "svg"]
    assert [a.get("id") for a in svgs] == ["timeline"]
    rows = [a["data-node"] for t, a in page.tags if t == "g" and "data-node" in a]
    assert rows == ["psc-a", "psc-b", "vc-a", "vc-b"]
    bars = [a for t, a in page.tags if t == "rect" and "bar" in (a.get("class") or "")]
    assert len(bars) == len(report.bars)
    assert Counter(a["data-outcome"] for a in bars) == {"succeeded": 32, "failed": 1}
    assert sum(1 for t, a in page.tags if t == "path" and "stop" in (a.get("class") or "")) == 4
    assert sum(1 for t, a in page.tags if t == "path" and "backup" in (a.get("class") or "")) == 12
    assert sum(1 for t, a in page.tags if t == "path" and a.get("class") == "failure") == 1
    assert sum(1 for t, a in page.tags if t == "title") >= len(report.bars)
    text = "".join(page.text)
    assert "mixed-version window 3 h 55 min" in text
    assert f"seq {head[0]}, hash {head[1][:16]}" in text
    for phase in ("pre", "psc", "vcenter", "post"):
        assert f'data-phase="{phase}"' in html


def test_html_self_contained(upgrade):
    report, _, _ = upgrade
    html = render_html(report)
    page = parse(html)
    assert "http://" not in html and "https://" not in html
    for tag, attrs in page.tags:
        for name in ("src", "href", "xlink:href", "srcset", "action", "poster", "data"):
            assert name not in attrs, (tag, attrs)
        assert tag not in ("script", "link", "img", "iframe", "object", "embed", "base")
    assert "url(" not in html and "@import" not in html
    csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]


def test_html_escapes_error_text(upgrade):
    report, _, _ = upgrade
    html = render_html(report)
    page = parse(html)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert not any(t == "script" for t, _ in page.tags)
    assert ERROR_TEXT in "".join(page.text)  # shown, as text


def test_secret_values_never_reach_the_report(tmp_path, monkeypatch):
    secret = "Sup3r-S3cret-Value"
    scrub.register(secret)
    try:
        def run(w):
            write_upgrade_run(w)
            w.upgrade("vc-b", "vcenter", 290, 295, ok=False,
                      error=f'login failed {{"password": "{secret}"}} with {secret}', label="failed:secret")
        inv, plan, events, head, _ = _build(tmp_path, monkeypatch, run)
        report = build_report(inv, plan, events, head=head, generated=BASE + 300 * 60)
        md, html = render_markdown(report), render_html(report)
        assert secret not in md and secret not in html
        assert "***" in html
    finally:
        scrub.forget_all()


# ---------------------------------------------------------------- the command

def test_command_writes_both_files(tmp_path, monkeypatch):
    inv, plan = inventory_and_plan()
    plan_file = tmp_path / "plan.json"
    save_plan(plan, plan_file)
    state = tmp_path / "state"
    j, w = open_journal(journal_path(state, inv.domain), monkeypatch)
    try:
        write_upgrade_run(w)
    finally:
        j.close()
    flags = CommonFlags(inventory=str(INVENTORY), plan=str(plan_file), state_dir=str(state))
    text = report_run(flags, None)
    out = state / "vsphere.local" / "report"
    assert str(out / "report.md") in text and str(out / "report.html") in text
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and 'id="timeline"' in html
    assert (out / "report.md").read_text(encoding="utf-8").startswith("# vcwave report")
    other = tmp_path / "elsewhere"
    text = report_run(flags, str(other))
    assert (other / "report.md").exists() and (other / "report.html").exists() and str(other) in text
    assert not list(other.glob(".*.tmp"))


def test_reconciled_manual_and_unfinished_steps():
    """A crash reconciled as succeeded, a manual step, and a step still running when the journal ends."""
    from orchestrator.engine.journal import Event

    inv, plan = inventory_and_plan()
    seq = iter(range(1, 100))

    def ev(minute, node, step, status, action="upgrade", phase="psc", **data):
        return Event(next(seq), BASE + minute * 60, "step", "r", plan.plan_hash, phase, phase, node, step, action,
                     status, data)

    events = [ev(0, "psc-a", "psc/upgrade/psc-a", "started"),
              ev(20, "psc-a", "psc/upgrade/psc-a", "reconciled", outcome="succeeded", version_after="6.7 U3"),
              ev(21, "psc-b", "psc/upgrade/psc-b", "started"),
              ev(25, "psc-b", "psc/upgrade/psc-b", "failed", manual=True, instructions="run the installer by hand"),
              ev(30, "vc-a", "vcenter/upgrade/vc-a", "started", phase="vcenter")]
    report = build_report(inv, plan, events, head=(5, "ab" * 32), generated=BASE + 3600)
    assert [(b.node, b.outcome) for b in report.bars] == [("psc-a", "reconciled"), ("psc-b", "manual"),
                                                          ("vc-a", "running")]
    assert report.rows[0].version_now == "6.7 U3"
    assert [(f.node, f.manual, f.error) for f in report.failures] == [("psc-b", True, "run the installer by hand")]
    assert any("vcenter/upgrade/vc-a" in p for p in report.problems)
    html = render_html(report)
    for outcome in ("reconciled", "manual", "running"):
        assert f'data-outcome="{outcome}"' in html


def test_open_disagreements_are_reported_and_resolved_ones_are_not():
    """The report shows what the last look at the domain found against the journal (vc-b lost), not what
    was later resolved (psc-a back)."""
    from orchestrator.engine.journal import Event

    inv, plan = inventory_and_plan()

    def ev(seq, node, status, **data):
        return Event(seq, BASE + seq * 60, "disagreement", "r", plan.plan_hash, "", "", node, "", "", status, data)

    events = [ev(1, "psc-a", "open", field="answering", journal="at 6.7 U3", live="not answering"),
              ev(2, "vc-b", "open", field="answering", journal="upgraded and verified at 6.7 U3",
                 live="not answering (connection refused)"),
              ev(3, "psc-a", "resolved", field="answering")]
    report = build_report(inv, plan, events, head=(3, "ab" * 32), generated=BASE + 3600)
    lost = [p for p in report.problems if "journal says" in p]
    assert len(lost) == 1 and lost[0].startswith("vc-b: journal says upgraded and verified at 6.7 U3; live: not "
                                                 "answering (connection refused) since ")
    assert "vc-b: journal says" in render_html(report)

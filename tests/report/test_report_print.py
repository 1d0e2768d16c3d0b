"""The report as a change board gets it on paper: every bar says what it was in text (a word, or a code the
legend spells out), the legend lists only what the run contains, a snapshot set does not look like a file
backup, no label runs off the drawing; and a real Chromium prints it to a PDF whose text carries all that
(pdftotext, from poppler-utils: scripts/setup.sh installs it)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from orchestrator.report import build_report, render_html
from orchestrator.report.html import LEFT, RIGHT, WIDTH
from orchestrator.report.legend import ACTIONS, legend

from . import BASE, NODES, journal_of, write_rollback_run, write_upgrade_run
from .test_report_browser import _run, chromium


class Svg(HTMLParser):
    """Texts of the timeline with their attributes, and the marks' classes/attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[tuple[dict, str]] = []
        self.marks: list[tuple[str, dict]] = []
        self._attrs: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "text":
            self._attrs = a
        elif tag in ("rect", "path", "line"):
            self.marks.append((tag, a))

    def handle_data(self, data):
        if self._attrs is not None:
            self.texts.append((self._attrs, data))

    def handle_endtag(self, tag):
        if tag == "text":
            self._attrs = None


def write_snapshot_set(w) -> None:
    """Prechecks, then one cold snapshot set of every appliance VM (no file backup)."""
    for n in NODES:
        w.simple(n, "precheck", "pre", 1, 2)
    w.at(3).step("psc-a", "pre/snapshot-set/psc-a", "backup", "pre", "started", method="snapshot-set")
    for n in NODES:
        w.at(9).ev("backup", f"set:{n}", phase="pre", wave="pre", node=n, step=f"pre/snapshot-set/{n}",
                   action="backup", status="recorded",
                   data={"backup_id": f"set-1:{n}-vm", "method": "snapshot-set", "tag": "pre",
                         "location": f"mgmt-vc/{n}-vm", "domain_version": "6.7 U1", "node_version": "6.7 U1",
                         "set_id": "set-1", "members": list(NODES)})
        w.step(n, f"pre/snapshot-set/{n}", "backup", "pre", "succeeded", method="snapshot-set")


def corners(d: str) -> list[tuple[float, float]]:
    """The points of an SVG path made of M/L commands."""
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", d)]


def report_of(tmp_path, monkeypatch, writer, minutes: float = 300):
    inv, plan, events, head, _ = journal_of(tmp_path, monkeypatch, writer)
    return build_report(inv, plan, events, head=head, generated=BASE + minutes * 60)


def svg_of(html: str) -> Svg:
    p = Svg()
    p.feed(html[html.index("<svg"):html.index("</svg>")])
    return p


@pytest.mark.parametrize("writer", [write_upgrade_run, write_rollback_run, write_snapshot_set])
def test_every_bar_carries_its_action_in_text(tmp_path, monkeypatch, writer):
    report = report_of(tmp_path, monkeypatch, writer)
    html = render_html(report)
    svg = svg_of(html)
    labels = [t for a, t in svg.texts if a.get("class") == "bar-label"]
    assert len(labels) == len(report.bars) > 0
    words = {w for w, _ in ACTIONS.values()}
    codes = {c for _, c in ACTIONS.values()}
    legend_text = " ".join(e.text for e in legend(report))
    for label in labels:
        core = label.rstrip(" ✕!↺…")
        assert core in words | codes, label
        if core not in words:
            assert f"{core} = " in legend_text, (core, legend_text)  # a code is spelled out in the legend


def test_legend_lists_only_what_the_run_contains(tmp_path, monkeypatch):
    upgrade = " | ".join(e.text for e in legend(report_of(tmp_path / "u", monkeypatch, write_upgrade_run)))
    assert "failed" in upgrade and "mixed-version window" in upgrade and "file backup" in upgrade
    assert "rollback" not in upgrade and "snapshot set" not in upgrade and "manual" not in upgrade
    snap = " | ".join(e.text for e in legend(report_of(tmp_path / "s", monkeypatch, write_snapshot_set)))
    assert "snapshot set" in snap and "file backup" not in snap and "failed" not in snap
    assert "mixed-version window" not in snap
    rollback = " | ".join(e.text for e in legend(report_of(tmp_path / "r", monkeypatch, write_rollback_run)))
    assert "rollback" in rollback


def test_a_snapshot_set_is_drawn_unlike_a_file_backup(tmp_path, monkeypatch):
    svg = svg_of(render_html(report_of(tmp_path / "s", monkeypatch, write_snapshot_set)))
    marks = [a for t, a in svg.marks if t == "path" and "backup" in (a.get("class") or "").split()]
    assert len(marks) == len(NODES) and {a["data-method"] for a in marks} == {"snapshot-set"}
    assert all(corners(a["d"])[0][1] == corners(a["d"])[1][1] for a in marks)  # a square: a flat top edge
    joined = [a for t, a in svg.marks if t == "line" and a.get("class") == "snapshot-set"]
    assert len(joined) == 1 and float(joined[0]["y2"]) > float(joined[0]["y1"])  # one line through all members
    bars = [t for a, t in svg.texts if a.get("class") == "bar-label"]
    assert any(b.startswith(("snapshot set", "SS")) for b in bars)

    file_svg = svg_of(render_html(report_of(tmp_path / "f", monkeypatch, write_upgrade_run)))
    file_marks = [a for t, a in file_svg.marks if t == "path" and "backup" in (a.get("class") or "").split()]
    assert {a["data-method"] for a in file_marks} == {"file"}
    assert all(corners(a["d"])[0][1] != corners(a["d"])[1][1] for a in file_marks)  # a diamond: a point on top
    assert not [a for t, a in file_svg.marks if t == "line" and a.get("class") == "snapshot-set"]


@pytest.mark.parametrize("writer, minutes", [(write_rollback_run, 125), (write_upgrade_run, 300)])
def test_no_label_runs_off_the_drawing(tmp_path, monkeypatch, writer, minutes):
    """The rollback band sits at the right edge (the journal ends there): its label is drawn end-anchored."""
    svg = svg_of(render_html(report_of(tmp_path, monkeypatch, writer, minutes)))
    for attrs, text in svg.texts:
        size = float(attrs.get("font-size", 12))
        x = float(attrs["x"])
        width = len(text) * size * 0.6
        anchor = attrs.get("text-anchor", "start")
        left, right = {"start": (x, x + width), "end": (x - width, x), "middle": (x - width / 2, x + width / 2)}[anchor]
        assert left >= 0 and right <= WIDTH - RIGHT + 12, (text, attrs)
        if x == 10:  # the label column: never under the bars
            assert right <= LEFT, (text, attrs)


def test_long_names_shrink_to_fit_the_label_column(tmp_path, monkeypatch):
    report = report_of(tmp_path, monkeypatch, write_upgrade_run)
    long = replace(report.rows[0], name="psc-" + "x" * 40, site="a-very-long-site-name-in-the-inventory")
    svg = svg_of(render_html(replace(report, rows=(long, *report.rows[1:]))))
    for attrs, text in svg.texts:
        if float(attrs["x"]) == 10 and text.startswith(("psc-x", "psc ·")):
            assert len(text) * float(attrs["font-size"]) * 0.6 <= LEFT - 10, (text, attrs)


def poppler(tool: str) -> str:
    found = shutil.which(tool)
    if found:
        return found
    hint = f"{tool} not found: install poppler-utils (`apt-get install -y poppler-utils`, or scripts/setup.sh)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(hint + " — required on CI")
    pytest.skip(hint)


# one printed PDF in the default tier (the snapshot set: squares and a line besides the bars); TIERS.md
@pytest.mark.parametrize("writer, minutes", [pytest.param(write_rollback_run, 125, marks=pytest.mark.full),
                                             (write_snapshot_set, 20)])
def test_printed_pdf_keeps_every_bar_readable(tmp_path, monkeypatch, writer, minutes):
    chromium()
    pdftotext, pdftoppm = poppler("pdftotext"), poppler("pdftoppm")
    report = report_of(tmp_path, monkeypatch, writer, minutes)
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    pdf = tmp_path / "report.pdf"
    res = _run(["--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()], tmp_path)
    assert res.returncode == 0 and pdf.read_bytes().startswith(b"%PDF"), res.stderr.decode(errors="replace")[-2000:]
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60,
                          check=True).stdout
    first_page = text.split("\f")[0]
    for entry in legend(report):  # the legend, on paper, on the timeline's page
        assert re.sub(r"\s+", " ", entry.text)[:40] in re.sub(r"\s+", " ", first_page), entry.text
    svg = svg_of(render_html(report))
    for label in {t for a, t in svg.texts if a.get("class") == "bar-label"}:
        assert label in first_page, label  # every bar's text survives printing
    for node in NODES:
        assert node in first_page
    png_prefix = tmp_path / "page"
    subprocess.run([pdftoppm, "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(png_prefix)], check=True,
                   timeout=60)
    assert list(tmp_path.glob("page*.png"))
    keep = os.environ.get("VCWAVE_REPORT_SCREENSHOT_DIR")
    if keep:  # to look at it: VCWAVE_REPORT_SCREENSHOT_DIR=/tmp/shots pytest tests/report
        os.makedirs(keep, exist_ok=True)
        shutil.copy(pdf, os.path.join(keep, f"report-{writer.__name__}.pdf"))

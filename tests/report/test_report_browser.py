"""The HTML report in a real headless Chromium: it loads offline from file://, the timeline SVG is in the
rendered DOM with one row per node, and a screenshot renders. Chromium comes from the Debian package
`chromium` (scripts/setup.sh installs it); without it the test fails on CI and is skipped elsewhere."""
from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from orchestrator.report import build_report, render_html

from . import BASE, NODES, journal_of, write_rollback_run, write_upgrade_run

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
TIMEOUT_S = 60
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    for c in CHROMIUM_CANDIDATES:
        found = shutil.which(c) if not c.startswith("/") else (c if os.access(c, os.X_OK) else None)
        if found:
            return found
    hint = "headless Chromium not found: install it with `apt-get install -y chromium` (or run scripts/setup.sh)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(hint + " — required on CI")
    pytest.skip(hint)


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}"]
    env = {**os.environ, "HOME": str(tmp)}
    try:
        return subprocess.run(base + args, capture_output=True, timeout=TIMEOUT_S, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"chromium did not finish within {TIMEOUT_S}s: {(exc.stderr or b'')[-2000:]!r}")


class Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.svg_ids: list[str | None] = []
        self.rows: list[str] = []
        self.bars = 0
        self._in_svg = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self.svg_ids.append(a.get("id"))
            self._in_svg += 1
        elif tag == "g" and "data-node" in a and self._in_svg:
            self.rows.append(a["data-node"])
        elif tag == "rect" and "bar" in (a.get("class") or "").split():
            self.bars += 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self._in_svg -= 1


def _report_file(tmp_path: Path, monkeypatch, writer) -> tuple[Path, int]:
    inv, plan, events, head, _ = journal_of(tmp_path, monkeypatch, writer)
    report = build_report(inv, plan, events, head=head, generated=BASE + 300 * 60)
    out = tmp_path / "report.html"
    out.write_text(render_html(report), encoding="utf-8")
    return out, len(report.bars)


# one Chromium page load in the default tier (TIERS.md): the rollback run's page is the same renderer
@pytest.mark.parametrize("writer", [pytest.param(write_upgrade_run, id="upgrade"),
                                    pytest.param(write_rollback_run, id="rollback", marks=pytest.mark.full)])
def test_chromium_renders_timeline(tmp_path, monkeypatch, writer):
    chromium()  # fail/skip early with the hint
    page, nbars = _report_file(tmp_path, monkeypatch, writer)
    png = tmp_path / "report.png"  # one page load gives both the rendered DOM and the screenshot
    res = _run(["--dump-dom", f"--screenshot={png}", "--window-size=1400,900", "--hide-scrollbars", page.as_uri()],
               tmp_path)
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-2000:]
    dom = Dom()
    dom.feed(res.stdout.decode("utf-8"))
    assert dom.svg_ids == ["timeline"]
    assert dom.rows == list(NODES)
    assert dom.bars == nbars > 0
    data = png.read_bytes()
    assert len(data) > 10_000 and data.startswith(PNG_MAGIC)
    keep = os.environ.get("VCWAVE_REPORT_SCREENSHOT_DIR")
    if keep:  # to look at it: VCWAVE_REPORT_SCREENSHOT_DIR=/tmp/shots pytest tests/report
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / f"report-{writer.__name__}.png")
        shutil.copy(page, Path(keep) / f"report-{writer.__name__}.html")

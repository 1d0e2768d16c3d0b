"""The report of a rehearsal with a fault scenario (issue 14's "vc-b lost after the PSC wave") shows the
outage with since/until, the refusal of the vCenter wave with its rule, in both renderings; the rehearsal
rolls the domain back as an administrator would. Full tier: a whole rehearsal (~20 s on two loaded cores)."""
from __future__ import annotations

from pathlib import Path

import pytest

from lab.rehearse import rehearse
from tests.conftest import require_vcsim

EX = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.full
@pytest.mark.timeout(300)
def test_a_lost_vcenter_rehearsal_reports_its_outage_and_the_refused_wave(tmp_path):
    require_vcsim()
    out = rehearse(str(EX / "two-site.yml"), faults=str(EX / "faults" / "vc-b-lost-after-psc-wave.yml"),
                   workdir=str(tmp_path / "r"), say=lambda _: None)
    assert "outcome: ROLLED BACK after upgrade vcenter: REFUSED" in out and "domain version now 6.7 U1" in out
    folder = tmp_path / "r" / "state" / "vsphere.local" / "report"
    md, html = (folder / "report.md").read_text(), (folder / "report.html").read_text()
    outages = md.split("## Outages")[1].split("## Disagreements")[0]
    assert "| vc-b |" in outages and "(verify succeeded)" in outages  # brought back by the rollback
    refusals = md.split("## Refusals")[1].split("## Rollbacks")[0]
    assert "| vcenter | node-answers-before-change |" in refusals
    assert "<h2>Outages</h2>" in html and "<code>node-answers-before-change</code>" in html

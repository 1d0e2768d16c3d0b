"""The engine's freshness guard: the window opens only with recent pre-upgrade backups."""
from __future__ import annotations

from pathlib import Path

from orchestrator.core.history import fold
from orchestrator.core.inventory import load_inventory
from orchestrator.engine.journal import Journal
from orchestrator.engine.runner import stale_backups

EX = Path(__file__).resolve().parents[2] / "examples"


def _journal_with_pre_backups(tmp_path: Path, verified: bool = True) -> Journal:
    j = Journal.open(tmp_path / "journal.sqlite")
    for n in ("psc-a", "psc-b", "vc-a", "vc-b"):
        j.append("backup", node=n, status="recorded",
                 data={"backup_id": f"b-{n}", "location": "sftp://x", "method": "file", "node_version": "6.7 U1",
                       "domain_version": "6.7 U1", "tag": "pre", "verified": verified})
    return j


def test_fresh_backups_pass_and_old_ones_are_named(tmp_path):
    inv = load_inventory(EX / "two-site.yml")
    j = _journal_with_pre_backups(tmp_path)
    hist = fold(inv, j.events())
    newest = max(b.ts for b in hist.backups)
    assert stale_backups(hist, inv, 24, newest + 3600) == []
    stale = stale_backups(hist, inv, 24, newest + 30 * 3600)
    assert [s.split()[0] for s in stale] == ["psc-a", "psc-b", "vc-a", "vc-b"] and "(30 h)" in stale[0]


def test_unverified_backups_do_not_count_as_fresh(tmp_path):
    inv = load_inventory(EX / "two-site.yml")
    hist = fold(inv, _journal_with_pre_backups(tmp_path, verified=False).events())
    # no verified backup at all: the 'missing backup' guard speaks, not the freshness one
    assert stale_backups(hist, inv, 24, 10**10) == []

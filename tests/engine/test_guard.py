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


def test_a_failed_step_never_journals_a_secret(tmp_path):
    """A client error that quotes a password (an installer line, a server message) is scrubbed before it is
    journaled: the journal must never hold a secret, even in an error text."""
    from orchestrator.core.plan import build_plan
    from orchestrator.core.playbook import load_playbook
    from orchestrator.core.versions import parse_version
    from orchestrator.engine.runner import Engine, EngineOptions
    from orchestrator.errors import StepFailed
    from orchestrator.log import get_logger
    from orchestrator.secrets import Secret

    secret = Secret("Zz9-never-journal-me")

    class Boom:
        def run(self, ctx):
            raise StepFailed(f"installer said: bad password {secret.reveal()}")

        def reconcile(self, ctx, started):
            return "not_done"

    inv = load_inventory(EX / "two-site.yml")
    plan = build_plan(inv, load_playbook(), parse_version("6.7 U3"), inventory_sha256="x")
    j = Journal.open(tmp_path / "journal.sqlite")
    engine = Engine(inv, plan, j, conns=None, log=get_logger("t"), options=EngineOptions(state_dir=tmp_path),
                    impls=lambda step: Boom())
    result = engine.run_phase("pre", actions={"precheck"})
    assert result.failed
    dump = (tmp_path / "dump.jsonl")
    j.export_jsonl(dump)
    text = dump.read_text()
    assert "bad password ***" in text and secret.reveal() not in text

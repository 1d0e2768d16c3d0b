"""The engine looks at the domain before each batch of a wave (no lab: the observation is scripted).

A PSC that stops answering after the vcenter wave's in-domain backups stops the wave before any vCenter
install, named with the rule; the disagreement is journaled once. And the window opens only after a
precheck of every node."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.inventory import load_inventory
from orchestrator.core.live import NodeSeen, Observation
from orchestrator.core.plan import build_plan
from orchestrator.core.playbook import load_playbook
from orchestrator.core.versions import parse_version
from orchestrator.engine import runner
from orchestrator.engine.journal import Journal
from orchestrator.engine.runner import Engine, EngineOptions
from orchestrator.errors import RefusedError
from orchestrator.log import get_logger

EX = Path(__file__).resolve().parents[2] / "examples"
OLD, NEW = "6.7 U1", "6.7 U3"


class Done:
    """A step that succeeds without touching anything (the engine's bookkeeping is what is tested)."""

    def run(self, ctx):
        return {}

    def reconcile(self, ctx, started):
        return {}


def _after_psc_wave(j: Journal) -> None:
    for n in ("psc-a", "psc-b", "vc-a", "vc-b"):
        j.append("step", node=n, step=f"pre/precheck/{n}", action="precheck", status="succeeded", phase="pre")
        j.append("backup", node=n, status="recorded",
                 data={"backup_id": f"b-{n}", "location": "sftp://x", "method": "file", "node_version": OLD,
                       "domain_version": OLD, "tag": "pre", "verified": True})
    for p in ("psc-a", "psc-b"):
        j.append("step", node=p, step=f"psc/upgrade/{p}", action="upgrade", status="succeeded", phase="psc",
                 data={"version_after": NEW})
        j.append("step", node=p, step=f"psc/verify/{p}", action="verify", status="succeeded", phase="psc")


def _seen(silent: set[str]) -> Observation:
    versions = {"psc-a": NEW, "psc-b": NEW, "vc-a": OLD, "vc-b": OLD}
    return Observation(1.0, {n: NodeSeen(n, False, "connection refused") if n in silent
                             else NodeSeen(n, True, "", parse_version(v)) for n, v in versions.items()})


@pytest.fixture
def engine(tmp_path):
    inv = load_inventory(EX / "two-site.yml")
    plan = build_plan(inv, load_playbook(), parse_version(NEW), inventory_sha256="x")
    j = Journal.open(tmp_path / "journal.sqlite")
    yield Engine(inv, plan, j, conns=None, log=get_logger("t"), options=EngineOptions(state_dir=tmp_path),
                 impls=lambda step: Done())
    j.close()


def test_a_psc_lost_between_batches_stops_the_vcenter_wave_before_any_install(engine, monkeypatch):
    _after_psc_wave(engine.journal)
    looks = iter([_seen(set()), _seen({"psc-a"})])  # at the start; before batch 1 (the vCenter installs)
    monkeypatch.setattr(runner, "observe", lambda *a, **kw: next(looks))
    result = engine.run_phase("vcenter")
    assert sorted(result.done) == [f"vcenter/backup-during/{n}" for n in ("psc-a", "psc-b", "vc-a", "vc-b")]
    (where, why), = result.failed
    assert where == "vcenter batch 1" and "[rule: psc-answers-before-vcenter]" in why and "psc-a" in why
    assert "vcenter/upgrade/vc-a" in result.untouched and "vcenter/upgrade/vc-b" in result.untouched
    assert engine.journal.step_state("vcenter/upgrade/vc-a") is None
    opened = engine.journal.events(kind="disagreement")
    assert [(e.node, e.status, e.data["field"]) for e in opened] == [("psc-a", "open", "answering")]


def test_a_psc_silent_at_the_start_refuses_the_wave_with_nothing_run(engine, monkeypatch):
    _after_psc_wave(engine.journal)
    monkeypatch.setattr(runner, "observe", lambda *a, **kw: _seen({"psc-b"}))
    engine.observe()
    with pytest.raises(RefusedError) as exc:
        engine.run_phase("vcenter", nodes={"vc-b"})
    assert exc.value.rule == "psc-answers-before-vcenter" and exc.value.exit_code == 2
    assert not engine.journal.events(kind="step", phase="vcenter")


def test_the_window_needs_a_precheck_of_every_node(engine, monkeypatch):
    monkeypatch.setattr(runner, "observe", lambda *a, **kw: _seen(set()))
    with pytest.raises(RefusedError) as exc:
        engine.run_phase("psc")
    assert exc.value.rule == "precheck-before-window" and "never prechecked: psc-a, psc-b, vc-a, vc-b" in str(exc.value)
    assert not engine.journal.events(kind="window")


def test_a_wave_touching_a_silent_node_is_refused_unless_its_step_was_interrupted(engine, monkeypatch):
    _after_psc_wave(engine.journal)
    monkeypatch.setattr(runner, "observe", lambda *a, **kw: _seen({"vc-b"}))
    engine.observe()
    with pytest.raises(RefusedError) as exc:
        engine.run_phase("vcenter")
    assert exc.value.rule == "node-answers-before-change" and "vc-b" in str(exc.value)
    # killed mid-install: vc-b reboots; its step's reconciliation decides, the guard does not refuse
    engine.journal.append("step", node="vc-b", step="vcenter/backup-during/vc-b", action="backup",
                          status="started", phase="vcenter")
    engine.observe()
    engine.guard("vcenter", {"vc-b"})

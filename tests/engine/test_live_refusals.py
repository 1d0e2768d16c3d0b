"""A guard's refusal joins the domain's history when there is one (the report lists it with its rule), and
a refusal on a domain with no journal still writes nothing (no lab: the observation is scripted)."""
from __future__ import annotations

import pytest

from orchestrator.core.history import REFUSED
from orchestrator.engine import runner
from orchestrator.engine.journal import Journal
from orchestrator.engine.runner import Engine, EngineOptions
from orchestrator.errors import RefusedError
from orchestrator.log import get_logger
from tests.engine.test_live_guard import Done, _after_psc_wave, _seen, engine as _engine  # noqa: F401


def _locked(engine: Engine, journal: Journal, locked: bool = True) -> Engine:
    return Engine(engine.inv, engine.plan, journal, conns=None, log=get_logger("t"),
                  options=EngineOptions(state_dir=journal.path.parent), impls=lambda step: Done(), locked=locked)


def test_a_refused_wave_is_journaled_with_its_rule(_engine, monkeypatch):  # noqa: F811
    _after_psc_wave(_engine.journal)
    engine = _locked(_engine, _engine.journal)
    monkeypatch.setattr(runner, "observe", lambda *a, **kw: _seen({"psc-b"}))
    with pytest.raises(RefusedError):
        engine.run_phase("vcenter", nodes={"vc-b"})
    (note,) = engine.journal.events(kind="note", status=REFUSED)
    assert note.phase == "vcenter" and note.data["rule"] == "psc-answers-before-vcenter"
    assert "psc-b" in note.data["reason"]
    assert not engine.journal.events(kind="step", phase="vcenter")


def test_a_refusal_on_a_domain_without_a_journal_writes_nothing(_engine, tmp_path, monkeypatch):  # noqa: F811
    path = tmp_path / "fresh" / "journal.sqlite"
    path.parent.mkdir()
    engine = _locked(_engine, Journal.open_lazy(path))
    monkeypatch.setattr(runner, "observe", lambda *a, **kw: _seen(set()))
    with pytest.raises(RefusedError) as exc:
        engine.run_phase("psc")
    assert exc.value.rule == "precheck-before-window"
    assert not path.exists()
    engine.journal.close()


def test_a_command_without_the_lock_does_not_journal_its_refusal(_engine, monkeypatch):  # noqa: F811
    _after_psc_wave(_engine.journal)
    engine = _locked(_engine, _engine.journal, locked=False)
    monkeypatch.setattr(runner, "observe", lambda *a, **kw: _seen({"psc-b"}))
    with pytest.raises(RefusedError):
        engine.run_phase("vcenter", nodes={"vc-b"}, check=True)
    assert not engine.journal.events(kind="note", status=REFUSED)

"""`invoke finalize` after an installer hop on a full lab twin (single-site 6.5 U2 -> 6.7 U1), through the
production commands: refused while the window is open, refused without confirmation, then the kept source
appliances are deleted from the management vCenter, journaled; a rollback is no longer offered; a second
finalize finds nothing to do. A converge hop's finalize (PSC decommission) is in test_converge_lab.py.

Needs the vcsim binary: FAILS when it is unavailable with CI=true, skipped otherwise.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_vcsim
from tests.engine.labkit import lab_domain

from orchestrator.commands import finalize as finalize_cmd
from orchestrator.commands import rollback as rollback_cmd
from orchestrator.commands import status as status_cmd
from orchestrator.commands import waves
from orchestrator.commands.session import session
from orchestrator.errors import RefusedError

EX = Path(__file__).resolve().parents[2] / "examples"
SOURCES = {"psc-hq", "vc-hq-1", "vc-hq-2"}  # the VMs the installer keeps powered off


@pytest.fixture(scope="module")
def vcsim_ok():
    return require_vcsim()


def mgmt_vms(flags) -> set[str]:
    with session(flags, "test", mutate=False) as engine:
        return set(engine.conns.management("mgmt-vc").vm_power_states())


def refused(fn, rule: str) -> str:
    with pytest.raises(RefusedError) as info:
        fn()
    assert info.value.rule == rule, str(info.value)
    return str(info.value)


def test_finalize_removes_the_kept_sources_and_ends_the_rollback(vcsim_ok, tmp_path, monkeypatch):
    with lab_domain(tmp_path, monkeypatch, EX / "single-site.yml", "6.7 U1") as d:
        f = d.flags
        waves.precheck(f)
        waves.backup(f, "pre")
        waves.upgrade(f, "psc")
        refused(lambda: finalize_cmd.run(f, yes=True), "finalize-window")
        waves.upgrade(f, "vcenter")
        waves.verify(f)  # the window closes
        waves.backup(f, "post")
        assert SOURCES <= mgmt_vms(f)
        assert "`invoke finalize`" in status_cmd.status_data(f).next_command
        asked: list[str] = []
        text = refused(lambda: finalize_cmd.run(f, confirm=lambda t: asked.append(t) or False), "finalize-confirm")
        assert "nothing was changed" in text and all(v in asked[0] for v in SOURCES)
        assert SOURCES <= mgmt_vms(f)
        out = finalize_cmd.run(f, confirm=lambda t: True)
        assert "finalized" in out
        left = mgmt_vms(f)
        assert not SOURCES & left and {"psc-hq-67", "vc-hq-2-67"} <= left
        refused(lambda: rollback_cmd.run(f), "rollback-finalized")
        assert status_cmd.status_data(f).next_command.startswith("finalized")
        refused(lambda: finalize_cmd.run(f, yes=True), "finalize-done")

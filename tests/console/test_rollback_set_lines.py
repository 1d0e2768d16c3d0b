"""A snapshot set reverted by a rollback is one step over many VMs: its line says how many, and one line per
VM follows it (node, VM, outcome), never a claim of "reverted" for a set that stopped (pure)."""
from __future__ import annotations

from pathlib import Path

from orchestrator.commands.rollback import set_vms
from orchestrator.core.history import fold
from orchestrator.core.inventory import load_inventory
from tests.console.test_model import start, view
from tests.core.test_history import Script

SID = "rollback-domain-pre/02-restore/psc-a"
VMS = {"psc-a": "psc-a", "psc-b": "psc-b-65", "vc-a": "vc-a", "vc-b": "vc-b"}


def _revert(outcome_event: str, **extra) -> list[str]:
    v, clock = view()
    assert v.apply({"event": "rollback.set", "level": "info", "step": SID, "set_id": "vcwave-pre-1", "vms": VMS}) == []
    v.apply(start(SID, "psc-a", "rollback", "snapshot-revert"))
    assert v.running[SID].who() == "4 VMs"
    clock.t += 30
    return v.apply({"event": outcome_event, "level": "info", "step": SID, "node": "psc-a", "duration_s": 30.0,
                    **extra})


def test_a_reverted_set_shows_one_line_per_vm_under_the_set():
    lines = _revert("step.done")
    assert lines[0].startswith("changed  4 VMs") and "rollback (snapshot-revert)" in lines[0]
    assert lines[1:] == [f"  - {n:<8} VM {vm}: reverted, powered on" for n, vm in VMS.items()]


def test_a_set_that_stopped_claims_no_vm_reverted():
    lines = _revert("step.failed", error="node psc-a: revert failed")
    assert lines[0].startswith("FAILED   4 VMs") and "revert failed" in lines[0]
    vm_lines = [line for line in lines[1:] if line.startswith("  - ")]
    assert len(vm_lines) == 4 and all("not confirmed" in line and "invoke rollback" in line for line in vm_lines)


def test_other_rollback_steps_stay_one_line():
    v, _ = view()
    v.apply(start("rb/01-stop/vc-a", "vc-a", "rollback", "power-off"))
    lines = v.apply({"event": "step.done", "level": "info", "step": "rb/01-stop/vc-a", "node": "vc-a"})
    assert len(lines) == 1 and lines[0].startswith("changed  vc-a")


def test_the_vms_of_a_set_come_from_its_backup_records():
    inv = load_inventory(Path(__file__).resolve().parents[2] / "examples" / "two-site.yml")
    s = Script()
    for n, vm in VMS.items():
        s.backup(n, "snapshot-set", "pre", "6.7 U1", "6.7 U1", bid=f"vcwave-pre-1:{vm}", set_id="vcwave-pre-1")
    s.backup("psc-a", "snapshot-set", "during", "6.7 U3", "6.7 U3", bid="vcwave-during-2:other",
             set_id="vcwave-during-2")
    assert set_vms(inv, fold(inv, s.events), "vcwave-pre-1", tuple(VMS)) == VMS

"""One identity, one running VM (core.identity), from power-state fixtures: the installer path's in-window
snapshot set powered the sources on beside the new appliances; the rule refuses exactly that."""
from __future__ import annotations

import pytest

from orchestrator.core.identity import IdentityConflict, NodeVMs, power_on_refusal, serving_vm

MIGRATED = NodeVMs("psc-a", "psc-a", "psc-a-65")
ON, OFF = "poweredOn", "poweredOff"


def test_the_new_appliance_serves_a_migrated_node_even_when_everything_is_off():
    assert serving_vm(MIGRATED, {"psc-a": OFF, "psc-a-65": ON}) == "psc-a-65"
    assert serving_vm(MIGRATED, {"psc-a": OFF, "psc-a-65": OFF}) == "psc-a-65"  # a cold snapshot in progress


def test_after_a_rollback_the_source_serves_again():
    back = NodeVMs("psc-a", "psc-a", "psc-a-65", returned=True)
    assert serving_vm(back, {"psc-a": OFF, "psc-a-65": OFF}) == "psc-a"
    assert serving_vm(NodeVMs("vc-a", "vc-a"), {}) == "vc-a"


def test_two_running_vms_with_one_identity_are_a_conflict_nobody_resolves_silently():
    with pytest.raises(IdentityConflict) as exc:
        serving_vm(MIGRATED, {"psc-a": ON, "psc-a-65": ON})
    assert exc.value.exit_code == 2 and exc.value.rule == "one-identity-one-vm" and "psc-a-65" in str(exc.value)


def test_a_source_is_never_powered_on_while_the_new_appliance_runs():
    why = power_on_refusal("psc-a", MIGRATED, {"psc-a": OFF, "psc-a-65": ON})
    assert why and "two appliances with one identity" in why and "psc-a-65" in why


def test_a_power_on_is_allowed_when_no_other_vm_of_the_identity_runs():
    assert power_on_refusal("psc-a", MIGRATED, {"psc-a": OFF, "psc-a-65": OFF}) is None
    assert power_on_refusal("psc-a-65", MIGRATED, {"psc-a": OFF}) is None
    assert power_on_refusal("vc-a", NodeVMs("vc-a", "vc-a"), {"vc-a": OFF}) is None

"""The lab follows what happens to the appliance VMs in the management vCenter, as real appliances would.

A real node *is* its appliance VM: powered off, it is down; powered on, it boots; reverted to a snapshot, it
is back at the version, identity and data it had when the snapshot was taken; when the installer's new
appliance is off and the kept source is on, the source answers again (KB 322065). vcwave drives these
through vim25 only, so the twin must learn them there, and at once: the management vcsim (lab/vcsim/main.go,
`-vm-hook`) POSTs every change of a VM's power state or current snapshot to the control API while the task
that made it still runs, and the lab applies it here before answering. Whoever waits for the task then
finds the node already following its VM.

Why not a watcher: the lab once read the management vCenter's recent tasks on its own thread. It applied a
change late, after the caller had already looked at the node (a rollback's caller found the source down, a
snapshot set's re-run found nodes booting after it ended), and it read a power task's effect from the VM's
state afterwards, so a snapshot set's quick off-and-on cycle left no power-off in the record (the harness's
`lab:power_off` kill point was never reached, one run in three).

Nothing here may call the management vCenter: it holds the VM's lock until the lab answers.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from .state import POWERED_OFF, LabError, LabState

# `psc`: a converged vCenter embeds SSO (None); reverted to a pre-converge snapshot it uses its PSC again.
PERSONA_KEYS = ("version", "build", "instance_uuid", "moref_salt", "install_time", "patched", "data", "broken", "psc")
POWER_STATES = ("poweredOn", "poweredOff", "suspended")


def persona_of(node: dict, which: str) -> dict | None:
    """The identity carried by the node's current VM ('current') or its kept installer source ('previous')."""
    if which == "current":
        return {k: copy.deepcopy(node.get(k)) for k in PERSONA_KEYS}
    prev = node.get("previous")
    return {k: copy.deepcopy(prev.get(k)) for k in PERSONA_KEYS} if prev else None


def follow(state: LabState, mgmt: str, change: Mapping[str, Any]) -> tuple[str | None, str]:
    """Apply one change the management vCenter `mgmt` reported: {"vm", "power"} or {"vm", "snapshot",
    "event": "snapshot"|"revert"}. Returns the node that followed (None: the VM carries no node) and a line
    for the daemon's log."""
    vm = change.get("vm")
    if not isinstance(vm, str) or not vm:
        raise LabError("a VM change names its `vm`", "invalid_argument", 400)
    if "power" in change:
        if change["power"] not in POWER_STATES:
            raise LabError(f"`power` must be one of {', '.join(POWER_STATES)}", "invalid_argument", 400)
        return _powered(state, mgmt, vm, change["power"])
    snap, event = change.get("snapshot"), change.get("event")
    if not isinstance(snap, str) or event not in ("snapshot", "revert"):
        raise LabError("a VM change has `power`, or `snapshot` and `event` (snapshot|revert)", "invalid_argument",
                       400)
    return (_snapshot_taken if event == "snapshot" else _reverted)(state, mgmt, vm, snap)


def _powered(state: LabState, mgmt: str, vm: str, power: str) -> tuple[str | None, str]:
    """The node whose VM this is follows the VMs' power states as the lab now records them."""
    state.set_vm_power(mgmt, vm, power)
    owner = state.vm_owner(mgmt, vm)
    if owner is None:
        return None, f"vm: {vm} {power}"
    name = owner[0]
    node = state.nodes[name]
    vms = state.data["vms"].get(mgmt, {})
    cur = vms.get(node["vm"]["name"])
    prev = (node.get("previous") or {}).get("vm", {}).get("name")
    if prev and vms.get(prev) == "poweredOn" and cur == "poweredOff":
        state.apply_rollback(name)
        return name, f"vm: {vm} {power}: {name}'s source {prev} on, {node['vm']['name']} off: the source answers"
    if cur == "poweredOff" and not node["down"]:
        state.set_down(name, True, POWERED_OFF, event="power_off")
    elif cur == "poweredOn" and node["down"] and node.get("down_reason") == POWERED_OFF:
        state.set_down(name, False, event="power_on")  # it boots: refused, then 503, then answers
    return name, f"vm: {vm} {power} ({name})"


def _snapshot_taken(state: LabState, mgmt: str, vm: str, snap: str) -> tuple[str | None, str]:
    """Remember what the VM carries now: a revert to this snapshot brings it back."""
    owner = state.vm_owner(mgmt, vm)
    if owner is None:
        return None, f"vm: snapshot {snap} of {vm} (no node)"
    with state.lock:
        persona = persona_of(state.nodes[owner[0]], owner[1])
        state.data.setdefault("snapshot_personas", {}).setdefault(mgmt, {})[snap] = [vm, persona]
        state.save()
    state.record(owner[0], "snapshot", vm=vm, which=owner[1])
    return owner[0], f"vm: snapshot {snap} of {vm} keeps {owner[0]} at {persona['version'] if persona else '?'}"


def _reverted(state: LabState, mgmt: str, vm: str, snap: str) -> tuple[str | None, str]:
    """The VM carries again what it carried when the snapshot was taken (a snapshot the lab never saw taken,
    e.g. one of a VM that carries no node, changes nothing)."""
    taken_vm, persona = state.data.get("snapshot_personas", {}).get(mgmt, {}).get(snap, (None, None))
    owner = state.vm_owner(mgmt, vm) if taken_vm == vm else None
    if owner is None or not persona:
        return None, f"vm: {vm} reverted to {snap} (no node's snapshot)"
    state.apply_persona(owner[0], owner[1], persona)
    return owner[0], f"vm: {vm} reverted: {owner[0]} back to {persona['version']}"

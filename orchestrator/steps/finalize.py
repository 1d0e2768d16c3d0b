"""Removing a kept source appliance (`invoke finalize`): one VM deleted from its management vCenter.

Observe, then act: the VM named by the node's kept-source record is looked up in the management vCenter; one
already gone was removed (by an earlier, interrupted run); one that is powered on may be what answers for the
node again (a rollback brought it back), so it is never deleted.
"""
from __future__ import annotations

from typing import Any

from orchestrator.core.history import FINALIZE_REMOVED
from orchestrator.errors import StepFailed
from orchestrator.steps.base import NOT_DONE, StepContext


def _kept_vm(ctx: StepContext) -> str | None:
    """The node's kept source appliance, as recorded; None once its removal is journaled."""
    return next((b.backup_id for b in ctx.history().backups
                 if b.node == ctx.node.name and b.method == "source-appliance"), None)


class RemoveSource:
    def run(self, ctx: StepContext) -> dict[str, Any]:
        vm_name = _kept_vm(ctx)
        if vm_name is None:
            return {}
        mgmt = ctx.conns.management(ctx.node.vm.vcenter)
        power = mgmt.vm_power_states([vm_name]).get(vm_name)
        if power == "poweredOn":
            raise StepFailed(f"node {ctx.node.name}: the kept source appliance {vm_name} is powered on (it may answer "
                             f"for the node again): not removed")
        if power is not None:
            mgmt.destroy_vm(vm_name)
        ctx.record("note", status=FINALIZE_REMOVED, data={"vm_name": vm_name})
        return {"removed": vm_name}

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        vm_name = _kept_vm(ctx)
        if vm_name is None:
            return {}
        if ctx.conns.management(ctx.node.vm.vcenter).vm_power_states([vm_name]).get(vm_name) is not None:
            return NOT_DONE
        ctx.record("note", status=FINALIZE_REMOVED, data={"vm_name": vm_name})
        return {"removed": vm_name}

"""Rollback actions, one idea each: stop a vCenter, bring a node back from its asset, verify it is the old
node again. The order comes from orchestrator.core.rollback; these only act on what it decided.
"""
from __future__ import annotations

from typing import Any

from orchestrator.clients.retry import BadRequest, ClientError
from orchestrator.core.rollback import RollbackAction
from orchestrator.errors import StepFailed
from orchestrator.steps.base import NOT_DONE, ManualStepRequired, StepContext
from orchestrator.steps.common import deadline, poll_kwargs
from orchestrator.steps.verify import settled_facts


def _power(ctx: StepContext, vcenter: str, vm_name: str, on: bool) -> None:
    mg = ctx.conns.management(vcenter)
    state = mg.vm_power_states([vm_name]).get(vm_name)
    if state is None:
        raise StepFailed(f"VM {vm_name} not found in management vCenter {vcenter}")
    if on and state != "poweredOn":
        mg.power_on(mg.vm_by_name(vm_name))
    elif not on and state == "poweredOn":
        mg.power_off(mg.vm_by_name(vm_name))


def _serving_vm(ctx: StepContext, node: str | None = None) -> str:
    """The VM that answers for the node now: the installer's new appliance if one took over, else its own."""
    n = ctx.inv.node(node) if node else ctx.node
    kept = [e for e in ctx.events(kind="source_appliance", node=n.name) if e.status == "kept"]
    return (kept[-1].data.get("new_vm_name") if kept else "") or n.vm.name


class RollbackStep:
    """Runs one RollbackAction (carried in ctx.step.reason as its JSON by the command)."""

    def __init__(self, action: RollbackAction, members: tuple[str, ...] = ()) -> None:
        self.action = action
        self.members = members  # snapshot-revert: every node of the set

    def run(self, ctx: StepContext) -> dict[str, Any]:
        a = self.action
        try:
            if a.method == "power-off":
                if ctx.node.vm:
                    _power(ctx, ctx.node.vm.vcenter, _serving_vm(ctx), on=False)
                return {}
            if a.method == "power-on":
                if ctx.node.vm:
                    _power(ctx, ctx.node.vm.vcenter, _serving_vm(ctx), on=True)
                return {}
            if a.method == "snapshot-revert":
                return self._revert_set(ctx)
            if a.method == "source-appliance":
                return self._source_appliance(ctx)
            if a.method == "file-restore":
                return self._file_restore(ctx)
            if a.method == "verify-old":
                return self._verify_old(ctx)
        except ClientError as exc:
            raise StepFailed(f"node {ctx.node.name}: rollback {a.method}: {exc}") from exc
        raise StepFailed(f"node {ctx.node.name}: rollback method {a.method} cannot be driven by vcwave; restore "
                         f"the node from asset {a.asset} by hand, then `invoke verify --node {ctx.node.name}`")

    def _revert_set(self, ctx: StepContext) -> dict[str, Any]:
        """The whole set together: all members off, every VM reverted, PSCs on first, then vCenters."""
        set_id = self.action.asset
        nodes = [ctx.inv.node(n) for n in self.members]
        for n in sorted(nodes, key=lambda n: n.role != "vcenter"):
            serving = _serving_vm(ctx, n.name)
            _power(ctx, n.vm.vcenter, serving, on=False)  # an installer's new appliance stays off
            if serving != n.vm.name:
                _power(ctx, n.vm.vcenter, n.vm.name, on=False)
        for n in nodes:
            mg = ctx.conns.management(n.vm.vcenter)
            mg.revert_snapshot(mg.vm_by_name(n.vm.name), set_id)
        for n in sorted(nodes, key=lambda n: n.role != "psc"):
            _power(ctx, n.vm.vcenter, n.vm.name, on=True)
        return {"version_after": self.action.to_version, "set_id": set_id}

    def _source_appliance(self, ctx: StepContext) -> dict[str, Any]:
        """KB 322065: power the new appliance off, bring the kept source back."""
        kept = [e for e in ctx.events(kind="source_appliance", node=ctx.node.name) if e.status == "kept"]
        if not kept:
            raise StepFailed(f"node {ctx.node.name}: no kept source appliance recorded")
        d = kept[-1].data
        vc = ctx.node.vm.vcenter
        if d.get("new_vm_name"):
            _power(ctx, vc, d["new_vm_name"], on=False)
        _power(ctx, vc, d["vm_name"], on=True)
        return {"version_after": self.action.to_version, "source_vm": d["vm_name"]}

    def _file_restore(self, ctx: StepContext) -> dict[str, Any]:
        """A file restore runs only on a freshly deployed appliance in restore mode."""
        b = next((e.data for e in ctx.events(kind="backup", node=ctx.node.name)
                  if e.data.get("backup_id") == self.action.asset), None)
        if b is None:
            raise StepFailed(f"node {ctx.node.name}: backup {self.action.asset} is not in the journal")
        client = ctx.conns.appliance(ctx.node, "root")  # a fresh appliance in restore mode knows only root
        target = ctx.node.backup
        if client.restore_job().state != "INPROGRESS":
            try:
                client.restore_start(location_type=target.location_type, location=b["location"],
                                     location_user=ctx.conns.user(target.credentials),
                                     location_password=ctx.conns.secret(target.credentials),
                                     sso_admin_user_name=ctx.conns.user("sso"),
                                     sso_admin_user_password=ctx.conns.secret("sso"))
            except BadRequest as exc:
                raise ManualStepRequired(ctx.node.name, (
                    f"the node refused the restore ({exc.message}). A file restore runs only on a freshly deployed "
                    f"appliance: deploy a {self.action.to_version} appliance for {ctx.node.name} ({ctx.node.host}) "
                    f"with VMware's installer (Restore, stage 1), then run `invoke rollback` again")) from exc
        job = client.wait_job(client.restore_job, deadline=deadline(ctx, 60), what="restore", **poll_kwargs(ctx))
        if not job.succeeded:
            raise StepFailed(f"node {ctx.node.name}: restore {job.state}: {'; '.join(job.messages)}")
        return {"version_after": self.action.to_version, "backup_id": self.action.asset}

    def _verify_old(self, ctx: StepContext) -> dict[str, Any]:
        """The node may still be booting after a revert or a power-on: `settled_facts` asks until the deadline."""
        facts, problems = settled_facts(ctx, self.action.to_version)
        if problems:
            raise StepFailed(f"node {ctx.node.name}: after rollback:\n  - " + "\n  - ".join(problems))
        return {"version_after": self.action.to_version, "instance_uuid": facts.instance_uuid}

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        return NOT_DONE  # every rollback action is idempotent: power states and versions are checked first

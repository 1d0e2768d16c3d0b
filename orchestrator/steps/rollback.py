"""Rollback actions, one idea each: stop a vCenter, bring a node back from its asset, verify it is the old
node again. The order comes from orchestrator.core.rollback; these only act on what it decided.
"""
from __future__ import annotations

from typing import Any

from orchestrator.clients.retry import BadRequest, ClientError, NotFound, Unsupported, expected_outage, polling
from orchestrator.core.converge import DONE, FAILED, FINISHED, RUNNING, START, Observation
from orchestrator.core.rollback import FreshAppliance, RollbackAction, fresh_appliance_advice
from orchestrator.errors import StepFailed
from orchestrator.steps.base import NOT_DONE, ManualStepRequired, StepContext
from orchestrator.steps.common import deadline, node_vms, poll_kwargs, power, serving, settle, start_once
from orchestrator.steps.verify import settled_facts


def _all_off(ctx: StepContext, node: str) -> None:
    """Every VM carrying the node's identity off (the source and, after an installer run, the new one)."""
    for vm in node_vms(ctx, node).vms:
        power(ctx, node, vm, on=False)


def _set_vm(ctx: StepContext, node: str, set_id: str) -> str:
    """The VM a snapshot set snapshotted for the node (the one serving it then), from its backup record."""
    for e in ctx.events(kind="backup", node=node):
        if e.data.get("set_id") == set_id:
            return e.data.get("vm") or str(e.data["backup_id"]).split(":", 1)[-1]
    return ctx.inv.node(node).vm.name


class RollbackStep:
    """Runs one RollbackAction (carried in ctx.step.reason as its JSON by the command)."""

    def __init__(self, action: RollbackAction, members: tuple[str, ...] = (),
                 fresh: tuple[FreshAppliance, ...] = ()) -> None:
        self.action = action
        self.members = members  # snapshot-revert: every node of the set
        self.fresh = fresh  # file restores that need a fresh appliance first, asked of the domain just before

    def run(self, ctx: StepContext) -> dict[str, Any]:
        a = self.action
        if self.fresh:  # nothing is restored into nothing: one pause names every node and what to deploy
            raise ManualStepRequired(", ".join(f.node for f in self.fresh), fresh_appliance_advice(self.fresh),
                                     next_command="invoke rollback")
        try:
            if a.method == "power-off":
                if ctx.node.vm:
                    _all_off(ctx, ctx.node.name)
                return {}
            if a.method == "power-on":
                if ctx.node.vm:
                    power(ctx, ctx.node.name, serving(ctx, ctx.node.name), on=True)
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
        vms = {n.name: _set_vm(ctx, n.name, set_id) for n in nodes}
        for n in sorted(nodes, key=lambda n: n.role != "vcenter"):
            _all_off(ctx, n.name)  # every VM of the identity: the one reverted comes back alone
        for n in nodes:
            mg = ctx.conns.management(n.vm.vcenter)
            mg.revert_snapshot(mg.vm_by_name(vms[n.name]), set_id)
        for n in sorted(nodes, key=lambda n: n.role != "psc"):
            power(ctx, n.name, vms[n.name], on=True)
        return {"version_after": self.action.to_version, "set_id": set_id}

    def _source_appliance(self, ctx: StepContext) -> dict[str, Any]:
        """KB 322065: power the new appliance off, bring the kept source back."""
        kept = [e for e in ctx.events(kind="source_appliance", node=ctx.node.name) if e.status == "kept"]
        if not kept:
            raise StepFailed(f"node {ctx.node.name}: no kept source appliance recorded")
        d = kept[-1].data
        if d.get("new_vm_name"):
            power(ctx, ctx.node.name, d["new_vm_name"], on=False)
        power(ctx, ctx.node.name, d["vm_name"], on=True)
        return {"version_after": self.action.to_version, "source_vm": d["vm_name"]}

    def _file_restore(self, ctx: StepContext) -> dict[str, Any]:
        """A file restore runs only on a freshly deployed appliance in restore mode, and that appliance must
        run: the rollback's first actions stop every vCenter (so none talks to a PSC being restored), which
        powers off the appliance a vCenter is restored into. It is powered on again here (PSCs are back by
        now), and the node is asked first: a restore already running is adopted, one that succeeded (vcwave
        killed before it journaled it) is done; a silent node is waited on while it boots."""
        b = next((e.data for e in ctx.events(kind="backup", node=ctx.node.name)
                  if e.data.get("backup_id") == self.action.asset), None)
        if b is None:
            raise StepFailed(f"node {ctx.node.name}: backup {self.action.asset} is not in the journal")
        client = ctx.conns.appliance(ctx.node, "root")  # a fresh appliance in restore mode knows only root
        if ctx.node.vm:
            power(ctx, ctx.node.name, serving(ctx, ctx.node.name), on=True)
        resumed = bool(ctx.step_events()[:-1])  # a restore that succeeded is this step's only on a resume
        with expected_outage("powering on"):  # it boots because the rollback powered it on: a wait, not a fault
            d = settle(ctx, lambda: _observe_restore(client, resumed), "power_on", None, started=resumed)
        if d.kind == START:
            self._start_restore(ctx, client, b)
        if d.kind != DONE:
            client.wait_job(client.restore_job, deadline=deadline(ctx, 60), what="restore", **poll_kwargs(ctx))
        job = client.restore_job()
        if not job.succeeded:
            raise StepFailed(f"node {ctx.node.name}: restore {job.state}: {'; '.join(job.messages)}")
        return {"version_after": self.action.to_version, "backup_id": self.action.asset}

    def _start_restore(self, ctx: StepContext, client: Any, backup: dict[str, Any]) -> None:
        target = ctx.node.backup
        try:
            start_once(lambda: client.restore_start(
                location_type=target.location_type, location=backup["location"],
                location_user=ctx.conns.user(target.credentials),
                location_password=ctx.conns.secret(target.credentials), sso_admin_user_name=ctx.conns.user("sso"),
                sso_admin_user_password=ctx.conns.secret("sso")),
                lambda: True if _observe_restore(client, False).job == RUNNING else None, what="restore.start")
        except BadRequest as exc:
            raise ManualStepRequired(ctx.node.name, (
                f"the node refused the restore ({exc.message}). A file restore runs only on a freshly deployed "
                f"appliance: deploy a {self.action.to_version} appliance for {ctx.node.name} ({ctx.node.host}) "
                f"with VMware's installer (Restore, stage 1)"), next_command="invoke rollback") from exc

    def _verify_old(self, ctx: StepContext) -> dict[str, Any]:
        """The node may still be booting after a revert or a power-on: `settled_facts` asks until the deadline."""
        facts, problems = settled_facts(ctx, self.action.to_version, "power_on")
        if problems:
            raise StepFailed(f"node {ctx.node.name}: after rollback:\n  - " + "\n  - ".join(problems))
        return {"version_after": self.action.to_version, "instance_uuid": facts.instance_uuid}

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        return NOT_DONE  # every rollback action is idempotent: power states and versions are checked first


RESTORE_JOB = {"INPROGRESS": RUNNING, "SUCCEEDED": FINISHED, "FAILED": FAILED}


def _observe_restore(client: Any, resumed: bool) -> Observation:
    """The node's restore job as one observation (core.converge); a node that refuses or answers 503 while it
    boots is silent, never "no restore". A succeeded job counts only when this step ran before (`resumed`):
    on a first attempt it is an older restore of that appliance, and the node must be restored again."""
    try:
        with polling():
            job = client.restore_job()
    except ClientError as exc:
        if isinstance(exc, (NotFound, Unsupported, BadRequest)):
            raise
        return Observation(False, why=exc.message)
    state = RESTORE_JOB.get(job.state, "")
    return Observation(True, job="" if state == FINISHED and not resumed else state, progress=job.progress)

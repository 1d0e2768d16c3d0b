"""Decommissioning an external PSC after a converge hop (`invoke finalize`): one PSC out of the SSO domain.

Observe, then act: every vCenter of the domain is asked which PSC its `config.vpxd.sso.*` settings name; the
decommission starts only when none names this PSC and every one answered (core/finalize.py's rule). It is
vCenter 7.0's own operation (`POST /rest/vcenter/topology/pscs/{hostname}?action=decommission&vmw-task=true`
on a converged vCenter, followed with `GET /rest/cis/tasks/{task}`; docs/vsphere-facts-7-8.md): it shuts the
PSC down and removes it from the SSO domain. Before anything, the domain says whether the PSC already left it
(the vCenter's `GET /rest/vcenter/topology/nodes` no longer lists it and it does not answer: an earlier run's
decommission whose answer was lost); after a crash the journaled task id is asked again on the same vCenter:
a task that ran on is adopted, never started twice.
"""
from __future__ import annotations

from typing import Any

from orchestrator.clients.appliance import ApplianceClient, CisTask
from orchestrator.clients.retry import ClientError, NotFound
from orchestrator.core.finalize import address, decommission_blockers, decommission_partner, psc_left_domain
from orchestrator.core.history import FINALIZE_DECOMMISSIONED
from orchestrator.errors import StepFailed
from orchestrator.facts.node import gather, sso_pointer
from orchestrator.steps.base import NOT_DONE, StepContext
from orchestrator.steps.common import deadline, poll_kwargs

DEADLINE_MIN = 10  # the task stops the PSC's services and removes its directory entries (planning value)


def _partner(ctx: StepContext) -> ApplianceClient:
    return ctx.conns.appliance(ctx.inv.node(decommission_partner(ctx.inv, ctx.node.name)))


def _answers(ctx: StepContext) -> bool:
    return gather(ctx.conns, ctx.node, fingerprint=False, health=False).reachable


def _left(ctx: StepContext, client: ApplianceClient) -> bool | None:
    """Has the PSC left the SSO domain? Asked of the domain: the partner's topology and the PSC itself."""
    try:
        listed = address(ctx.node.host, ctx.node.port) in {n.node for n in client.topology_nodes()}
    except ClientError as exc:
        raise StepFailed(f"node {ctx.node.name}: {client.node} does not say which nodes the SSO domain has "
                         f"({exc}); run `invoke finalize` again once it answers") from exc
    return psc_left_domain(listed, _answers(ctx))


def _done(ctx: StepContext, client: ApplianceClient, task_id: str) -> dict[str, Any]:
    ctx.record("note", status=FINALIZE_DECOMMISSIONED, data={"partner": client.node, "task_id": task_id})
    return {"decommissioned": ctx.node.name, "partner": client.node}


class DecommissionPsc:
    def run(self, ctx: StepContext) -> dict[str, Any]:
        psc = ctx.node
        client = _partner(ctx)
        left = _left(ctx, client)
        if left:  # an earlier run's decommission whose answer was lost: the domain says it is done
            return _done(ctx, client, "")
        if left is None:
            raise StepFailed(f"node {psc.name}: unknown whether it is still in the SSO domain (the topology of "
                             f"{client.node} and the PSC's own answer disagree); look at it, then run `invoke "
                             f"finalize` again")
        pointers = {vc.name: sso_pointer(ctx.conns, vc) for vc in ctx.inv.vcenters}
        blockers = decommission_blockers(address(psc.host, psc.port), pointers)
        if blockers:
            raise StepFailed(f"node {psc.name}: not decommissioned: {'; '.join(blockers)}")
        try:
            task_id = client.psc_decommission(address(psc.host, psc.port), ctx.conns.user("sso"),
                                              ctx.conns.secret("sso"))
        except ClientError as exc:
            raise StepFailed(f"node {psc.name}: decommission refused by {client.node}: {exc}") from exc
        ctx.progress({"task_id": task_id, "partner": client.node})
        return self._finish(ctx, client, task_id)

    def _finish(self, ctx: StepContext, client: ApplianceClient, task_id: str) -> dict[str, Any]:
        try:
            task: CisTask = client.wait_job(lambda: client.task(task_id), deadline=deadline(ctx, DEADLINE_MIN),
                                            what="decommission", **poll_kwargs(ctx))
        except ClientError as exc:
            raise StepFailed(f"node {ctx.node.name}: decommission task {task_id} on {client.node}: {exc}") from exc
        if not task.succeeded:
            raise StepFailed(f"node {ctx.node.name}: decommission task {task_id} {task.state}: "
                             f"{'; '.join(task.messages) or 'no message'}")
        return _done(ctx, client, task_id)

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        """The journaled task is asked on its vCenter: done or still running is adopted; failed or unknown to
        the vCenter (never started) may start again, and `run` asks every vCenter first."""
        prog = ctx.last_progress("task_id")
        client = _partner(ctx)
        if prog is None:
            return _done(ctx, client, "") if _left(ctx, client) else NOT_DONE
        try:
            task = client.task(prog["task_id"])
        except NotFound:
            return NOT_DONE
        except ClientError as exc:
            raise StepFailed(f"node {ctx.node.name}: decommission task {prog['task_id']} on {client.node} is "
                             f"unknown ({exc}); run `invoke finalize` again once it answers") from exc
        if task.done and not task.succeeded:
            return NOT_DONE
        return self._finish(ctx, client, prog["task_id"])

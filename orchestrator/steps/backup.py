"""Backups, by method: `file` (appliance backup job, 6.5+), `snapshot-set` (cold snapshots of ALL the
domain's appliance VMs taken together) and `external` (the site's image-level backup product, run by a
command named in the inventory and counted only when its verification command succeeds).

Every recorded backup carries the domain version it was taken at: that, not its age, decides later
whether it can still restore its node (orchestrator.core.validity).
"""
from __future__ import annotations

import datetime as dt
import os
import shlex
import subprocess
import time
import uuid
from typing import Any

from orchestrator.clients.appliance import BackupJob
from orchestrator.clients.retry import ClientError, polling
from orchestrator.core.converge import ADOPT, DONE, FAILED, FINISHED, RUNNING, Observation
from orchestrator.core.interop import backup_method_problem
from orchestrator.core.plan import Step
from orchestrator.errors import StepFailed
from orchestrator.steps.base import NOT_DONE, StepContext
from orchestrator.steps.common import (current_domain_version, deadline, poll_kwargs, power, serving, settle,
                                       start_once, wait_answering)

SNAPSHOT_PREFIX = "vcwave"


def _record_backup(ctx: StepContext, node: str, backup_id: str, location: str, method: str, node_version: str,
                   domain_version: str, tag: str, **extra: Any) -> dict[str, Any]:
    data = {"backup_id": backup_id, "location": location, "method": method, "node_version": node_version,
            "domain_version": domain_version, "tag": tag, **extra}
    ctx.record("backup", status="recorded", data=data, node=node)
    return {"backup_id": backup_id, "domain_version": domain_version}


def _node_version_now(ctx: StepContext, node: str) -> str:
    return ctx.history().nodes[node].version.release


class FileBackup:
    """POST /rest/appliance/recovery/backup/job, polled to SUCCEEDED, then recorded."""

    def run(self, ctx: StepContext) -> dict[str, Any]:
        node, target = ctx.node, ctx.node.backup
        problem = backup_method_problem(ctx.history().nodes[node.name].version, node.platform, node.vm is not None,
                                        "file", target.location_type if target else "")
        if problem or target is None:
            raise StepFailed(f"node {node.name}: {problem or 'no backup target in the inventory'}")
        client = ctx.conns.appliance(node)
        location = f"{target.location.rstrip('/')}/{ctx.step.tag or 'manual'}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            before = set(client.backup_jobs())
            job_id = start_once(
                lambda: client.backup_start(location_type=target.location_type, location=location,
                                            location_user=ctx.conns.user(target.credentials),
                                            location_password=ctx.conns.secret(target.credentials),
                                            comment=f"vcwave {ctx.step.id}"),
                lambda: max(set(client.backup_jobs()) - before, default=None), what="backup.start")
        except ClientError as exc:
            raise StepFailed(f"node {node.name}: backup job refused: {exc}") from exc
        ctx.progress({"job_id": job_id, "location": location})
        return self._finish(ctx, job_id, location)

    def _finish(self, ctx: StepContext, job_id: str, location: str) -> dict[str, Any]:
        client = ctx.conns.appliance(ctx.node)
        try:
            job: BackupJob = client.wait_job(lambda: client.backup_job(job_id), deadline=deadline(ctx, 30),
                                             what="backup", **poll_kwargs(ctx))  # job.progress: the client
        except ClientError as exc:
            raise StepFailed(f"node {ctx.node.name}: backup job {job_id}: {exc}") from exc
        if not job.succeeded:
            raise StepFailed(f"node {ctx.node.name}: backup job {job_id} {job.state}: {'; '.join(job.messages)}")
        return _record_backup(ctx, ctx.node.name, job_id, location, "file", _node_version_now(ctx, ctx.node.name),
                              current_domain_version(ctx), ctx.step.tag)

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        """A crash mid-backup: adopt the job we started if the node knows it, never start a second one. A
        node that does not answer is unknown (core.converge): waited on, never taken for "not done"."""
        job = ctx.last_progress("job_id")
        if job:
            recorded = _recorded(ctx, ctx.node.name, job["job_id"])
            if recorded is not None:
                return recorded  # it finished and was journaled just before the crash: not recorded twice
        found: dict[str, str] = {}

        def observe() -> Observation:
            try:
                with polling():
                    client = ctx.conns.appliance(ctx.node)
                    # Killed between the POST and journaling its id: a job the node started since this step
                    # began is ours (the node would refuse a second one: one job at a time).
                    job_id = job["job_id"] if job else _job_started_since(client, started.ts,
                                                                          _recorded_ids(ctx, ctx.node.name))
                    if job_id is None:
                        return Observation(True)
                    found["job_id"] = job_id
                    state = client.backup_job(job_id).state
            except ClientError as exc:
                return Observation(False, why=exc.message)
            return Observation(True, job={"SUCCEEDED": FINISHED, "INPROGRESS": RUNNING}.get(state, FAILED))
        d = settle(ctx, observe, "backup", None, started=True)
        if d.kind in (DONE, ADOPT):
            return self._finish(ctx, found["job_id"], (job or {}).get("location", ""))
        return NOT_DONE


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _recorded(ctx: StepContext, node: str, backup_id: str) -> dict[str, Any] | None:
    for e in ctx.events(kind="backup", node=node):
        if e.data.get("backup_id") == backup_id:
            return {"backup_id": backup_id, "domain_version": e.data["domain_version"]}
    return None


def _recorded_ids(ctx: StepContext, node: str) -> frozenset[str]:
    return frozenset(e.data.get("backup_id", "") for e in ctx.events(kind="backup", node=node))


def _job_started_since(client: Any, since: float, taken: frozenset[str] = frozenset(),
                       slack: float = 5.0) -> str | None:
    """The newest backup job that started after `since` (clock slack allowed) and is not already another
    step's recorded backup, or None. Why `taken`: killed between journaling "started" and the POST, a step
    adopted the job of the backup just before it (the kill sweep, at a lab clock where the pre and during
    backups are seconds apart: one job recorded as two backups, the older one posing as the newer)."""
    for job_id in sorted(client.backup_jobs(), reverse=True):
        if job_id in taken:
            continue
        job = client.backup_job(job_id)
        t = _parse_time(job.start_time)
        if job.state == "INPROGRESS" or (t is not None and t >= since - slack):
            return job_id
    return None


class SnapshotSetBackup:
    """Cold snapshots of every appliance VM of the domain, taken together (a single reverted PSC breaks
    replication): vCenters shut down first, then PSCs; all snapshotted; PSCs powered on first, then vCenters.

    The VM snapshotted is the one that serves the node now: after an installer migration that is the new
    appliance, not the powered-off source (kept as a rollback asset, never powered on while the new one
    holds the identity)."""

    def run(self, ctx: StepContext) -> dict[str, Any]:
        return self.run_set(ctx, [ctx.step])

    def run_set(self, ctx: StepContext, members: list[Step]) -> dict[str, Any]:
        nodes = [ctx.inv.node(m.node) for m in members]
        missing = [n.name for n in nodes if n.vm is None]
        if missing:
            raise StepFailed(f"snapshot set: no appliance VM declared for {', '.join(missing)}")
        set_id = f"{SNAPSHOT_PREFIX}-{ctx.step.tag or 'set'}-{uuid.uuid4().hex[:8]}"
        vms = {n.name: serving(ctx, n.name) for n in nodes}
        ctx.progress({"set_id": set_id, "members": [n.name for n in nodes], "vms": vms})
        order_off = sorted(nodes, key=lambda n: n.role != "vcenter")  # vCenters first
        taken = False
        try:
            for n in order_off:
                self._power(ctx, n, vms[n.name], on=False)
            for n in nodes:
                mg = ctx.conns.management(n.vm.vcenter)
                vm = mg.vm_by_name(vms[n.name])
                start_once(lambda: mg.create_snapshot(vm, set_id, f"vcwave cold snapshot set {set_id}"),
                           lambda: _snapshot_named(mg.snapshots(vm), set_id),
                           what="snapshot.create")
            taken = True
        finally:
            if not taken:  # something failed: everything back on at once, PSCs first
                for n in sorted(nodes, key=lambda n: n.role != "psc"):
                    self._power(ctx, n, vms[n.name], on=True)
        silent = self._bring_back(ctx, nodes, vms)
        if silent:
            raise StepFailed(f"snapshot set {set_id}: taken, but {', '.join(silent)} did not answer after "
                             f"power-on; look at {'them' if len(silent) > 1 else 'it'} (console, services), then "
                             f"run the same command again once every node answers")
        dv = current_domain_version(ctx)
        out = {}
        for n in nodes:
            out[n.name] = _record_backup(ctx, n.name, f"{set_id}:{vms[n.name]}", f"{n.vm.vcenter}/{vms[n.name]}",
                                         "snapshot-set", _node_version_now(ctx, n.name), dv, ctx.step.tag,
                                         set_id=set_id, members=[m.node for m in members], vm=vms[n.name])
        return out

    def _bring_back(self, ctx: StepContext, nodes: list[Any], vms: dict[str, str]) -> list[str]:
        """Power the set back on in VMware's order: PSCs, and only once they answer, the vCenters (their
        services need the PSC at boot); then wait for the vCenters too, so that the next command finds a
        domain in service. Only the VM that serves each node is powered on. Returns the nodes that did not
        answer in time."""
        silent: list[str] = []
        for role in ("psc", "vcenter"):
            group = [n for n in nodes if n.role == role]
            for n in group:
                self._power(ctx, n, vms[n.name], on=True)
            silent += wait_answering(ctx, group, minutes=20)
        return silent

    @staticmethod
    def _power(ctx: StepContext, n: Any, vm: str, on: bool) -> None:
        power(ctx, n.name, vm, on)

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        """A crash mid-set. Each member step is reconciled on its own: if its snapshot of the interrupted set
        exists, it is recorded (once) and done; otherwise everything is powered back on in the safe order and
        the set is taken again. A set is never half-trusted: a member without its snapshot is not done."""
        set_id, members, vms = self._interrupted_set(ctx)
        node = ctx.node
        if set_id and node.vm is not None and node.name in members:
            vm = vms.get(node.name) or node.vm.name
            key = f"{set_id}:{vm}"
            recorded = _recorded(ctx, node.name, key)
            if recorded is not None:
                return recorded
            if all(self._has_snapshot(ctx, ctx.inv.node(m), vms.get(m) or ctx.inv.node(m).vm.name, set_id)
                   for m in members):
                self._power_all_on(ctx, vms)
                return _record_backup(ctx, node.name, key, f"{node.vm.vcenter}/{vm}", "snapshot-set",
                                      _node_version_now(ctx, node.name), current_domain_version(ctx),
                                      ctx.step.tag, set_id=set_id, reconciled=True, vm=vm)
        self._power_all_on(ctx, vms)
        return NOT_DONE

    def _power_all_on(self, ctx: StepContext, vms: dict[str, str]) -> None:
        """Every node's serving VM on, PSCs first (the set's own choice of VM when it journaled one)."""
        nodes = [n for n in ctx.inv.nodes if n.vm is not None]
        for n in sorted(nodes, key=lambda n: n.role != "psc"):
            self._power(ctx, n, vms.get(n.name) or serving(ctx, n.name), on=True)

    @staticmethod
    def _has_snapshot(ctx: StepContext, n: Any, vm: str, set_id: str) -> bool:
        mg = ctx.conns.management(n.vm.vcenter)
        return _snapshot_named(mg.snapshots(mg.vm_by_name(vm)), set_id) is not None

    @staticmethod
    def _interrupted_set(ctx: StepContext) -> tuple[str | None, list[str], dict[str, str]]:
        """The set id, members and VMs journaled by the set's first member step (same phase)."""
        for e in reversed(ctx.events(kind="step", status="started")):
            if e.phase == ctx.step.phase and e.action == "backup" and "set_id" in e.data:
                return e.data["set_id"], list(e.data.get("members", ())), dict(e.data.get("vms", {}))
        return None, [], {}


def _snapshot_named(tree: Any, name: str) -> str | None:
    """The moref of the snapshot called `name` anywhere in a snapshot tree (None if absent)."""
    for snap in tree:
        if snap.name == name:
            return snap.moref
        found = _snapshot_named(snap.children, name)
        if found:
            return found
    return None


class ExternalBackup:
    """The site's backup product, through the command named in the inventory; counted only when verified."""

    def run(self, ctx: StepContext) -> dict[str, Any]:
        node, target = ctx.node, ctx.node.backup
        env = {**os.environ, "VCWAVE_NODE": node.name, "VCWAVE_HOST": node.host, "VCWAVE_TAG": ctx.step.tag}
        res = subprocess.run(shlex.split(target.command), capture_output=True, text=True, env=env, timeout=6 * 3600)
        lines = [l.strip() for l in res.stdout.splitlines() if l.strip()]
        if res.returncode != 0 or not lines:
            raise StepFailed(f"node {node.name}: external backup command exited {res.returncode}"
                             f"{'' if lines else ' and printed no backup id'}")
        backup_id = lines[-1]
        ver = subprocess.run(shlex.split(target.verify), capture_output=True, text=True,
                             env={**env, "VCWAVE_BACKUP_ID": backup_id}, timeout=3600)
        verified = ver.returncode == 0
        data = _record_backup(ctx, node.name, backup_id, target.command.split()[0], "external",
                              _node_version_now(ctx, node.name), current_domain_version(ctx), ctx.step.tag,
                              verified=verified, exit_status=res.returncode)
        if not verified:
            raise StepFailed(f"node {node.name}: external backup {backup_id} failed its verification "
                             f"(exit {ver.returncode}); it does not count")
        return data

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        return NOT_DONE

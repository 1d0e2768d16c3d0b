"""Major-version upgrades by VMware's installer (`vcsa-deploy upgrade`): a new appliance takes over the
source's identity; the source is powered off and kept as a rollback asset (journaled with its VM and the
domain version at power-off). After a crash the step is reconciled from live facts — which VM is on, which
version and instance UUID the node's address answers with — never re-run blindly.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from orchestrator.clients.installer import (InstallerError, InstallerRunner, installer_output_started,
                                            installer_processes, resolve_installer)
from orchestrator.clients.retry import ClientError, expected_outage
from orchestrator.core.installer_template import build_upgrade_template, secret_names
from orchestrator.errors import InputError, StepFailed
from orchestrator.facts.node import gather
from orchestrator.processes import pid_alive
from orchestrator.steps.base import NOT_DONE, StepContext
from orchestrator.steps.common import Pace, current_domain_version, deadline, serving

SWITCHING = "switching to the new appliance"  # the installer moves the address from source to new VM


def private_root(state_dir: Path, domain: str) -> Path:
    """Where the installer runs' 0700 template folders (passwords inside) live: under the state folder."""
    return Path(state_dir) / domain / "installer-private"


def _runner(ctx: StepContext) -> InstallerRunner:
    return InstallerRunner(resolve_installer(ctx.options.installer),
                           private_root=private_root(ctx.options.state_dir, ctx.inv.domain),
                           log_root=ctx.options.state_dir / ctx.inv.domain / "installer-logs",
                           ssl_verify=not ctx.options.insecure)


def _template_and_secrets(ctx: StepContext) -> tuple[dict, dict]:
    template = build_upgrade_template(ctx.inv, ctx.node, ctx.target)
    return template, {name: ctx.conns.secret(name) for name in secret_names(template)}


def installer_precheck(ctx: StepContext, template_only: bool = False) -> list[str]:
    """`--verify-template-only` then (unless template_only) `--precheck-only`: problems as text (empty = ready)."""
    try:
        runner = _runner(ctx)
        template, secrets = _template_and_secrets(ctx)
        runner.verify_template(template, secrets, on_line=lambda l: ctx.log.debug("installer.line", line=l))
        if not template_only:
            runner.precheck(template, secrets, on_line=lambda l: ctx.log.debug("installer.line", line=l))
    except (InputError, InstallerError) as exc:
        tail = "; ".join(getattr(getattr(exc, "result", None), "lines_tail", ())[-3:])
        return [f"installer: {exc}" + (f" ({tail})" if tail else "")]
    return []


def _new_vm_name(template: dict) -> str:
    for key in ("new_vcsa", "new.vcsa"):
        app = template.get(key, {}).get("appliance", {})
        if app.get("name"):
            return str(app["name"])
    return ""


class InstallerUpgrade:
    def run(self, ctx: StepContext) -> dict[str, Any]:
        node = ctx.node
        done = self._already_there(ctx)
        if done is not None:
            return done
        if node.vm is not None:
            serving(ctx, node.name)  # refuses (IdentityConflict) when two VMs already run with its identity
        template, secrets = _template_and_secrets(ctx)
        problems = installer_precheck(ctx)
        if problems:
            raise StepFailed(f"node {node.name}: " + "; ".join(problems))
        source_version = ctx.history().nodes[node.name].version.release
        domain_before = current_domain_version(ctx)
        ctx.progress({"new_vm": _new_vm_name(template), "source_vm": node.vm.name if node.vm else "",
                      "source_version": source_version})
        try:
            result = _runner(ctx).upgrade(
                template, secrets, on_line=lambda l: ctx.log.info("installer.progress", line=l),
                on_launch=lambda log_dir, private: ctx.progress({"installer_log_dir": log_dir,
                                                                 "private_dir": private}),
                on_start=lambda pid, private: ctx.progress({"installer_pid": pid, "private_dir": private}))
        except InstallerError as exc:
            raise StepFailed(f"node {node.name}: installer: {exc} (log folder {exc.result.log_dir})") from exc
        self._keep_source(ctx, source_version, domain_before, _new_vm_name(template),
                          log_dir=str(result.log_dir), exit_code=result.exit_code)
        with expected_outage(SWITCHING):  # the session to the source appliance is gone with it: not a fault
            return self._confirm(ctx)

    @staticmethod
    def _keep_source(ctx: StepContext, source_version: str, domain_version: str, new_vm: str, **extra: Any) -> None:
        """Journal the powered-off source appliance as a rollback asset, once."""
        if any(e.node == ctx.node.name for e in ctx.events(kind="source_appliance")):
            return
        ctx.record("source_appliance", status="kept",
                   data={"vm_name": ctx.node.vm.name if ctx.node.vm else "", "vm_moref": "",
                         "node_version": source_version, "domain_version": domain_version, "new_vm_name": new_vm,
                         **extra})

    def _already_there(self, ctx: StepContext, patience: float = 0.0) -> dict[str, Any] | None:
        """The node answers at the target already (an earlier installer run finished): never run it again.
        With `patience` (seconds), a node that does not answer yet is asked again until then: right after an
        installer run the address is passing from the source to the new appliance."""
        end, pace = time.monotonic() + patience, Pace(ctx)
        while True:
            try:
                facts = gather(ctx.conns, ctx.node, fingerprint=False, health=False)
            except ClientError as exc:  # gather records what it cannot reach; this is a client it cannot build
                facts = None
                ctx.log.info("installer.node_not_answering", error=str(exc))
            answered = facts is not None and (facts.version is not None or not facts.errors)
            if answered or time.monotonic() >= end:
                break
            if facts is not None:
                ctx.log.info("installer.node_not_answering", errors=list(facts.errors))
            pace.sleep()
        if facts is None or facts.version is None or not facts.version.same_release(ctx.target):
            return None
        started = ctx.last_progress("new_vm")
        self._keep_source(ctx, ctx.step.from_, current_domain_version(ctx),
                          (started or {}).get("new_vm", ""), reconciled=True)
        return {"version_after": facts.version.release, "build_after": facts.version.build}

    def _confirm(self, ctx: StepContext) -> dict[str, Any]:
        facts = gather(ctx.conns, ctx.node, fingerprint=False, health=False)
        if facts.version is None or not facts.version.same_release(ctx.target):
            raise StepFailed(f"node {ctx.node.name}: after the installer the node answers with "
                             f"{facts.version.release if facts.version else 'nothing'}, not {ctx.target.release}")
        return {"version_after": facts.version.release, "build_after": facts.version.build}

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        """vcwave died during the installer step. The installer runs in its own session and may still be
        migrating: wait for it, remove its secrets file, then look at the node — never start a second one.

        vcwave may have died between starting the installer and journaling its pid: the run's private
        directory, journaled just before the start, names the process (its template lives there)."""
        node = ctx.node
        run = _installer_run(ctx)
        private = run.get("private_dir", "")
        pids = ([int(run["installer_pid"])] if run.get("installer_pid")
                else installer_processes(private) if private else [])
        end, pace = time.monotonic() + deadline(ctx, 120), Pace(ctx)
        while any(pid_alive(p) for p in pids) and time.monotonic() < end:
            ctx.log.info("installer.still_running", pids=pids)
            pace.sleep()
        if any(pid_alive(p) for p in pids):
            raise StepFailed(f"node {node.name}: the installer (pid {', '.join(map(str, pids))}) is still running "
                             f"after the deadline; let it finish, then run the same command again")
        if private:
            shutil.rmtree(private, ignore_errors=True)  # the 0600 template with secrets
        ran = bool(pids) or bool(run.get("installer_log_dir")) and installer_output_started(run["installer_log_dir"])
        with expected_outage(SWITCHING):
            done = self._already_there(ctx, patience=deadline(ctx, 10) if ran else 0.0)
        if done is not None:
            return done
        if ran or (node.vm is not None and ctx.conns.management(node.vm.vcenter).vm_power_states(
                [node.vm.name]).get(node.vm.name) == "poweredOff"):
            raise StepFailed(f"node {node.name}: the installer was interrupted and the node does not answer at "
                             f"{ctx.target.release}. Do not re-run blindly: look at the installer log folder, then "
                             f"finish by hand or roll back (source {node.vm.name if node.vm else '?'} on, the new "
                             f"appliance off), then `invoke upgrade` again")
        return NOT_DONE


def _installer_run(ctx: StepContext) -> dict[str, Any]:
    """The newest installer run of this step: its launch record (log and private dirs) with its pid record,
    if any — a pid journaled by an earlier, finished attempt of the step belongs to another private dir."""
    launch = ctx.last_progress("private_dir") or {}
    out = dict(launch)
    for key in ("installer_log_dir", "installer_pid"):
        rec = ctx.last_progress(key)
        if rec and rec.get("private_dir") == launch.get("private_dir"):
            out.update(rec)
    return out



"""Patches within a release through the appliance update API (6.7+): stage before the window, install
inside it. A manual method (6.5 patches, Windows vCenters) pauses the wave with exact instructions."""
from __future__ import annotations

from typing import Any

from orchestrator.clients.retry import ClientError, expected_outage
from orchestrator.core.versions import catalogue
from orchestrator.errors import StepFailed
from orchestrator.facts.node import appliance_version, gather
from orchestrator.steps.base import NOT_DONE, ManualStepRequired, StepContext
from orchestrator.steps.common import deadline, poll_kwargs, start_once


def _target_string(ctx: StepContext) -> str:
    return catalogue().appliance_string(ctx.target)


class Stage:
    def run(self, ctx: StepContext) -> dict[str, Any]:
        client = ctx.conns.appliance(ctx.node)
        version = _target_string(ctx)
        try:
            staged = client.update_staged()
            if not (staged and staged.version == version and staged.staging_complete):
                start_once(lambda: client.update_stage(version) or True,
                           lambda: True if (client.update_state().state == "STAGE_IN_PROGRESS"
                                            or client.update_staged() is not None) else None, what="update.stage")
                client.wait_job(client.update_staged, deadline=deadline(ctx, 15), what="stage",
                                done=lambda s: bool(s and s.version == version and s.staging_complete),
                                **poll_kwargs(ctx))
        except ClientError as exc:
            raise StepFailed(f"node {ctx.node.name}: staging {version} failed: {exc}") from exc
        return {"staged": version}

    def reconcile(self, ctx: StepContext, started: Any) -> str:
        return NOT_DONE  # staging is idempotent: run() checks what is already staged


class UpdateInstall:
    def run(self, ctx: StepContext) -> dict[str, Any]:
        client = ctx.conns.appliance(ctx.node)
        version = _target_string(ctx)
        try:
            state = client.update_state()
            if state.state != "INSTALL_IN_PROGRESS":
                pre = client.update_precheck(version)
                if pre.errors:
                    raise StepFailed(f"node {ctx.node.name}: update precheck refused {version}: "
                                     + "; ".join(pre.errors))
                start_once(lambda: client.update_install(version, {"vmdir.password": ctx.conns.secret("sso")}) or True,
                           lambda: True if client.update_state().state == "INSTALL_IN_PROGRESS" else None,
                           what="update.install")
                ctx.progress({"install": version})
        except ClientError as exc:
            raise StepFailed(f"node {ctx.node.name}: update install of {version} refused: {exc}") from exc
        return self._wait(ctx)

    def _wait(self, ctx: StepContext) -> dict[str, Any]:
        client = ctx.conns.appliance(ctx.node)
        try:
            with expected_outage("rebooting"):  # its 503s are the update, not faults
                state = client.wait_job(client.update_state, deadline=deadline(ctx, 60), what="install",
                                        done=lambda s: s.state in ("UP_TO_DATE", "UPDATES_PENDING",
                                                                   "INSTALL_FAILED")
                                        and not (s.task and s.task.status == "RUNNING"), **poll_kwargs(ctx))
            if state.state == "INSTALL_FAILED":
                err = state.task.error if state.task else ""
                raise StepFailed(f"node {ctx.node.name}: install failed: {err or state.state}")
            ver, _ = appliance_version(ctx.conns, ctx.node)
        except ClientError as exc:
            raise StepFailed(f"node {ctx.node.name}: install: {exc}") from exc
        if ver is None or not ver.same_release(ctx.target):
            raise StepFailed(f"node {ctx.node.name}: after install the node runs "
                             f"{ver.release if ver else 'an unknown version'}, not {ctx.target.release}")
        return {"version_after": ver.release, "build_after": ver.build}

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        """Never install twice: at target -> done; install running -> wait for it; else not done."""
        try:
            ver, _ = appliance_version(ctx.conns, ctx.node)
            if ver is not None and ver.same_release(ctx.target):
                return {"version_after": ver.release, "build_after": ver.build}
            if ctx.conns.appliance(ctx.node).update_state().state == "INSTALL_IN_PROGRESS":
                return self._wait(ctx)
        except ClientError:
            return NOT_DONE
        return NOT_DONE


class ManualUpgrade:
    """vcwave cannot drive it: pause the wave with the instructions; verify proves it was done."""

    def run(self, ctx: StepContext) -> dict[str, Any]:
        facts = gather(ctx.conns, ctx.node, fingerprint=False, health=False)
        if facts.version and facts.version.same_release(ctx.target):
            return {"version_after": facts.version.release, "build_after": facts.version.build}
        raise ManualStepRequired(ctx.node.name, instructions(ctx))

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        facts = gather(ctx.conns, ctx.node, fingerprint=False, health=False)
        if facts.version and facts.version.same_release(ctx.target):
            return {"version_after": facts.version.release, "build_after": facts.version.build}
        return NOT_DONE


def instructions(ctx: StepContext) -> str:
    n, t = ctx.node, ctx.target
    if n.platform == "windows":
        return (f"vCenter {n.name} ({n.host}) runs on Windows: run VMware's Migration Assistant on it, then the "
                f"vCenter Server Appliance {t.release} GUI installer (Migrate), keeping the same FQDN/IP. Back it up "
                f"first; the PSC {n.psc} already runs {t.release}.")
    return (f"Patch {n.name} ({n.host}) to {t.release} through the appliance shell: attach the "
            f"{t.release} patch ISO to the appliance VM, then `software-packages stage --iso --acceptEulas` and "
            f"`software-packages install --staged`, reboot; or use the VAMI (https://{n.host}:5480) Update page.")

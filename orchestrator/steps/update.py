"""Patches within a release through the appliance update API (6.7+): stage before the window, install
inside it. A manual method (6.5 patches, Windows vCenters) pauses the wave with exact instructions."""
from __future__ import annotations

from typing import Any

from orchestrator.clients.retry import BadRequest, ClientError, NotFound, Unsupported, expected_outage, polling
from orchestrator.core.converge import DONE, FAILED, RUNNING, START, Decision, Observation, resume_command
from orchestrator.core.versions import catalogue
from orchestrator.errors import StepFailed
from orchestrator.facts.node import appliance_version, gather
from orchestrator.steps.base import NOT_DONE, ManualStepRequired, StepContext
from orchestrator.steps.common import deadline, poll_kwargs, settle, start_once


def _target_string(ctx: StepContext) -> str:
    return catalogue().appliance_string(ctx.target)


def _unknown(exc: ClientError) -> bool:
    """A node that refuses, answers 503 or garbles its reply says nothing about the work: unknown. A 404
    (no update API, an update the node does not offer) is a real answer."""
    return not isinstance(exc, (NotFound, Unsupported, BadRequest))


def _observe_update(ctx: StepContext, busy: str) -> Observation:
    """The node's version and its update task, as one observation; never raises for a silent node."""
    client = ctx.conns.appliance(ctx.node)
    try:
        with polling():
            ver, _ = appliance_version(ctx.conns, ctx.node)
            if ver is not None and ver.same_release(ctx.target):
                return Observation(True, ver)
            state = client.update_state()
    except ClientError as exc:
        if not _unknown(exc):
            raise
        return Observation(False, why=exc.message)
    running = state.state == busy or bool(state.task and state.task.status == "RUNNING")
    job = RUNNING if running else FAILED if state.failed else ""
    return Observation(True, ver, job, progress=state.progress if running else None)


class Stage:
    """Stage the update bits before the window; what is already staged is not staged again."""

    def run(self, ctx: StepContext) -> dict[str, Any]:
        client = ctx.conns.appliance(ctx.node)
        version = _target_string(ctx)
        try:
            if not _staged(client, version):
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


def _staged(client: Any, version: str) -> bool:
    staged = client.update_staged()
    return bool(staged and staged.version == version and staged.staging_complete)


class UpdateInstall:
    """Install a staged patch. Asks the node first, before starting and when reconciling: at the target ->
    done; an install running -> adopt it; silent (rebooting) -> unknown, waited on; else start it."""

    def run(self, ctx: StepContext) -> dict[str, Any]:
        return self._converge(ctx, started=bool(ctx.step_events()[:-1]))

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        """Never install twice: the same decision as run(), made again after a crash."""
        return self._converge(ctx, started=True)

    def _converge(self, ctx: StepContext, started: bool) -> dict[str, Any]:
        client = ctx.conns.appliance(ctx.node)
        version = _target_string(ctx)

        def observe() -> Observation:
            return _observe_update(ctx, "INSTALL_IN_PROGRESS")
        try:
            d = settle(ctx, observe, "update", ctx.target, started=started)
            if d.kind == START:
                pre = client.update_precheck(version)
                if pre.errors:
                    raise StepFailed(f"node {ctx.node.name}: update precheck refused {version}: "
                                     + "; ".join(pre.errors))
                start_once(lambda: client.update_install(version, {"vmdir.password": ctx.conns.secret("sso")})
                           or True, lambda: True if observe().job == RUNNING else None, what="update.install")
                ctx.progress({"install": version})
            if d.kind != DONE:
                with expected_outage("rebooting"):  # its 503s and refused connections are the update, not faults
                    d = settle(ctx, observe, "update", ctx.target, job_minutes=60, started=True)
        except ClientError as exc:
            raise StepFailed(f"node {ctx.node.name}: update install of {version}: {exc}") from exc
        return self._confirm(ctx, d)

    @staticmethod
    def _confirm(ctx: StepContext, d: Decision) -> dict[str, Any]:
        if d.kind != DONE:
            state = ctx.conns.appliance(ctx.node).update_state()
            err = (state.task.error if state.task else "") or state.state
            raise StepFailed(f"node {ctx.node.name}: install failed: {err}. Next: fix the cause, then "
                             f"`{resume_command(ctx.step.phase, ctx.step.action)}` (it asks the node first)")
        ver, _ = appliance_version(ctx.conns, ctx.node)
        if ver is None:
            raise StepFailed(f"node {ctx.node.name}: after install the node did not say which version it runs")
        return {"version_after": ver.release, "build_after": ver.build}


class ManualUpgrade:
    """vcwave cannot drive it: pause the wave with the instructions; verify proves it was done. The node is
    asked first (an operator may have patched it already; a node being patched may not answer for a while)."""

    def run(self, ctx: StepContext) -> dict[str, Any]:
        done = self._at_target(ctx)
        if done is None:
            raise ManualStepRequired(ctx.node.name, instructions(ctx))
        return done

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        return self._at_target(ctx) or NOT_DONE

    @staticmethod
    def _at_target(ctx: StepContext) -> dict[str, Any] | None:
        seen: list[Observation] = []

        def observe() -> Observation:
            with polling():
                facts = gather(ctx.conns, ctx.node, fingerprint=False, health=False)
            seen.append(Observation(facts.reachable, facts.version, why="; ".join(facts.errors)))
            return seen[-1]
        ver = seen[-1].version if settle(ctx, observe, "update", ctx.target).kind == DONE else None
        return {"version_after": ver.release, "build_after": ver.build} if ver else None


def instructions(ctx: StepContext) -> str:
    n, t = ctx.node, ctx.target
    if n.platform == "windows":
        return (f"vCenter {n.name} ({n.host}) runs on Windows: run VMware's Migration Assistant on it, then the "
                f"vCenter Server Appliance {t.release} GUI installer (Migrate), keeping the same FQDN/IP. Back it up "
                f"first; the PSC {n.psc} already runs {t.release}.")
    return (f"Patch {n.name} ({n.host}) to {t.release} through the appliance shell: attach the "
            f"{t.release} patch ISO to the appliance VM, then `software-packages stage --iso --acceptEulas` and "
            f"`software-packages install --staged`, reboot; or use the VAMI (https://{n.host}:5480) Update page.")

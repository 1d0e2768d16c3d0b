"""Major-version upgrades by VMware's installer (`vcsa-deploy upgrade`): a new appliance takes over the
source's identity; the source is powered off and kept as a rollback asset (journaled with its VM and the
domain version at power-off). After a crash the step is reconciled from live facts — which VM is on, which
version and instance UUID the node's address answers with — never re-run blindly.
"""
from __future__ import annotations

from typing import Any

from orchestrator.clients.installer import InstallerError, InstallerRunner, resolve_installer
from orchestrator.clients.retry import ClientError
from orchestrator.core.installer_template import build_upgrade_template, secret_names
from orchestrator.errors import InputError, StepFailed
from orchestrator.facts.node import gather
from orchestrator.steps.base import NOT_DONE, StepContext
from orchestrator.steps.common import current_domain_version


def _runner(ctx: StepContext) -> InstallerRunner:
    return InstallerRunner(resolve_installer(ctx.options.installer),
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
        template, secrets = _template_and_secrets(ctx)
        problems = installer_precheck(ctx)
        if problems:
            raise StepFailed(f"node {node.name}: " + "; ".join(problems))
        source_version = ctx.history().nodes[node.name].version.release
        domain_before = current_domain_version(ctx)
        ctx.progress({"new_vm": _new_vm_name(template), "source_vm": node.vm.name if node.vm else ""})
        try:
            result = _runner(ctx).upgrade(template, secrets, on_line=lambda l: ctx.log.info("installer.progress",
                                                                                          line=l))
        except InstallerError as exc:
            raise StepFailed(f"node {node.name}: installer: {exc} (log folder {exc.result.log_dir})") from exc
        ctx.record("source_appliance", status="kept",
                   data={"vm_name": node.vm.name if node.vm else "", "vm_moref": "", "node_version": source_version,
                         "domain_version": domain_before, "new_vm_name": _new_vm_name(template),
                         "log_dir": str(result.log_dir), "exit_code": result.exit_code})
        return self._confirm(ctx)

    def _confirm(self, ctx: StepContext) -> dict[str, Any]:
        facts = gather(ctx.conns, ctx.node, fingerprint=False, health=False)
        if facts.version is None or not facts.version.same_release(ctx.target):
            raise StepFailed(f"node {ctx.node.name}: after the installer the node answers with "
                             f"{facts.version.release if facts.version else 'nothing'}, not {ctx.target.release}")
        return {"version_after": facts.version.release, "build_after": facts.version.build}

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        node = ctx.node
        try:
            facts = gather(ctx.conns, node, fingerprint=False, health=False)
        except ClientError:
            facts = None
        if facts and facts.version and facts.version.same_release(ctx.target):
            if not any(e.node == node.name for e in ctx.events(kind="source_appliance")):
                ctx.record("source_appliance", status="kept",
                           data={"vm_name": node.vm.name if node.vm else "", "vm_moref": "",
                                 "node_version": ctx.step.from_, "domain_version": current_domain_version(ctx),
                                 "new_vm_name": "", "reconciled": True})
            return {"version_after": facts.version.release, "build_after": facts.version.build}
        if node.vm is not None:
            states = ctx.conns.management(node.vm.vcenter).vm_power_states([node.vm.name])
            if states.get(node.vm.name) == "poweredOff":
                raise StepFailed(f"node {node.name}: the installer was interrupted after it powered the source "
                                 f"appliance off, and the node does not answer at {ctx.target.release}. Do not "
                                 f"re-run blindly: finish or roll back by hand (power the source {node.vm.name} on, "
                                 f"the new appliance off), then `invoke upgrade` again")
        return NOT_DONE

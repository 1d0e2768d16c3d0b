"""Prechecks (kubeadm's preflight): read-only questions that must all pass before the window opens.

Upgrade path, declared vs discovered facts, the backup method, health and services, and the method's own
precheck (the appliance update precheck, or the installer's --verify-template-only/--precheck-only).
The node's identity (instance UUID, morefs) is journaled as the pre-upgrade baseline for continuity.
"""
from __future__ import annotations

from typing import Any

from orchestrator.clients.retry import BadAnswer, ClientError
from orchestrator.core import interop
from orchestrator.core.versions import catalogue
from orchestrator.errors import StepFailed
from orchestrator.facts.node import gather
from orchestrator.steps.base import StepContext


def check_node(ctx: StepContext) -> tuple[list[str], dict[str, Any], bool]:
    """All problems of one node (empty = ready), the facts seen, and whether a garbage answer is among the
    problems (a bad server answer is bad input: the command exits 2, as the README promises)."""
    node, problems = ctx.node, []
    current = ctx.history().nodes[node.name].version
    verdict = interop.check_path(current, ctx.target)
    if not verdict.ok:
        problems.append(f"upgrade path: {verdict.reason}")
    method = node.backup.method if node.backup else None
    problem = interop.backup_method_problem(current, node.platform, node.vm is not None, method,
                                            node.backup.location_type if node.backup else "")
    if problem:
        problems.append(f"backup: {problem}")
    facts = gather(ctx.conns, node)
    problems += facts.errors
    if facts.version and not facts.version.same_release(current):
        problems.append(f"version: declared/recorded {current.release}, node says {facts.version.release}")
    if node.role == "vcenter" and node.psc and facts.psc_host:  # an embedded vCenter names itself
        psc = ctx.inv.node(node.psc)
        if facts.psc_host != psc.host.lower():
            problems.append(f"PSC pointer: declared {psc.name} ({psc.host}), node uses {facts.psc_host}")
    if facts.has_rest and facts.health not in ("green", ""):
        problems.append(f"health: {facts.health}")
    if facts.health_items_not_green:
        problems.append(f"health items not green (free space among them): {', '.join(facts.health_items_not_green)}")
    if facts.services_down:
        problems.append(f"services down: {', '.join(facts.services_down)}")
    if facts.has_rest is False and interop.has_rest_api(current):
        problems.append(f"no appliance REST API answered, but {current.release} should have one")
    method_problems, method_garbage = _method_precheck(ctx, current)
    return problems + method_problems, facts.baseline(), facts.bad_answer or method_garbage


def _method_precheck(ctx: StepContext, current: Any) -> tuple[list[str], bool]:
    choice = interop.upgrade_method(current, ctx.target, ctx.node.platform) if interop.check_path(
        current, ctx.target).ok else None
    if choice is None or choice.method in ("none", "manual"):
        return [], False
    if not any(s.node == ctx.node.name and s.action == "upgrade" for s in ctx.plan.steps()):
        return [], False  # a node this plan does not upgrade (the PSCs of a converge): no method to check
    if ctx.node.role == "vcenter" and ctx.step.phase == "pre":
        # The appliance's own precheck refuses a vCenter target newer than its PSC, which is every vCenter
        # before the psc wave: it runs at the start of the vCenter's upgrade step instead. The installer
        # template is still verified now.
        if choice.method == "installer":
            from orchestrator.steps.installer import installer_precheck
            return installer_precheck(ctx, template_only=True), False
        return [], False
    if choice.method == "update":
        try:
            res = ctx.conns.appliance(ctx.node).update_precheck(catalogue().appliance_string(ctx.target))
        except ClientError as exc:
            return [f"update precheck: {exc}"], isinstance(exc, BadAnswer)
        return [f"update precheck: {e}" for e in getattr(res, "errors", ())], False
    from orchestrator.steps.installer import installer_precheck
    return installer_precheck(ctx), False


class Precheck:
    def run(self, ctx: StepContext) -> dict[str, Any]:
        problems, baseline, garbage = check_node(ctx)
        if baseline.get("instance_uuid") or baseline.get("version"):
            if not ctx.baseline():
                ctx.record("fact", status="baseline", data=baseline)
        if problems:
            raise StepFailed(f"node {ctx.node.name}: precheck failed:\n  - " + "\n  - ".join(problems),
                             exit_code=2 if garbage else 1)
        return {"checked": True}

    def reconcile(self, ctx: StepContext, started: Any) -> str:
        from orchestrator.steps.base import NOT_DONE
        return NOT_DONE  # read-only: simply run again

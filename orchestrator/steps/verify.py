"""Verification (kubeadm's health.go): is the node where the plan says, healthy, and still itself?

Version/build at the expected release, health green and services up, SSO login works, a vCenter still
uses its own PSC, and continuity: the instance UUID and the morefs of hosts/VMs/datastores are those of the
pre-upgrade baseline — a rebuilt vCenter (new UUID, new morefs) breaks backup and monitoring tools.
"""
from __future__ import annotations

import time
from typing import Any

from orchestrator.clients.retry import polling
from orchestrator.core import interop
from orchestrator.core.rules import expected_sso_host
from orchestrator.core.versions import parse_version
from orchestrator.errors import StepFailed
from orchestrator.facts.node import NodeFacts, gather
from orchestrator.steps.base import NOT_DONE, StepContext
from orchestrator.steps.common import Pace, restart_deadline


def problems_of(ctx: StepContext, facts: NodeFacts, expected: str) -> list[str]:
    node, out = ctx.node, []
    want = parse_version(expected)
    out += list(facts.errors)
    if facts.version is None:
        if not (facts.has_rest is False and node.role == "psc"):
            out.append("the node did not say which version it runs")
    elif not facts.version.same_release(want):
        out.append(f"version: expected {want.release}, node runs {facts.version.release}")
    if facts.has_rest and facts.health != "green":
        out.append(f"health is {facts.health or 'unknown'}, not green")
    if facts.services_down:
        out.append(f"services down: {', '.join(facts.services_down)}")
    if node.role == "vcenter" and not facts.errors:  # identity is judged only from a node that answered
        sso = expected_sso_host(node.host, ctx.inv.node(node.psc).host if node.psc else node.host,
                                interop.supports_external_psc(want))
        if facts.psc_host and facts.psc_host != sso.lower():
            out.append(f"uses PSC {facts.psc_host}, expected {sso}")
        base = ctx.baseline()
        if base:
            if base.get("instance_uuid") and facts.instance_uuid != base["instance_uuid"]:
                out.append(f"instance UUID changed: {base['instance_uuid']} -> {facts.instance_uuid} "
                           f"(a rebuilt vCenter: backup and monitoring continuity is broken)")
            for kind in ("hosts", "vms", "datastores"):
                before, after = set(base.get(kind, ())), set(getattr(facts, kind))
                if before and before != after:
                    lost = sorted(before - after)[:5]
                    out.append(f"{kind} moref IDs changed (missing {', '.join(lost) or '-'}; "
                               f"{len(after - before)} new)")
        else:
            out.append("no pre-upgrade baseline recorded (run `invoke precheck` before upgrading)")
    return out


def settled_facts(ctx: StepContext, expected: str, kind: str = "verify") -> tuple[NodeFacts, list[str]]:
    """Ask until the node answers without problems or its restart deadline (version data: `kind` is verify,
    power_on or restore) passes: right after a revert or a power-on, vpxd and the REST API take a while to
    come back, and that is not a failure yet. Each look is one poll (no client retries stacked under it),
    and the log gets one line per change of what is wrong, not one per attempt."""
    end = time.monotonic() + restart_deadline(ctx, kind)
    said: list[str] | None = None
    pace = Pace(ctx)
    while True:
        with polling():
            facts = gather(ctx.conns, ctx.node)
        problems = problems_of(ctx, facts, expected)
        if not problems or time.monotonic() >= end:
            return facts, problems
        changed = problems != said
        if changed:
            said = problems
            ctx.log.info("verify.waiting_for_node", expected=expected, problems=problems)
        pace.sleep(changed)


class Verify:
    def run(self, ctx: StepContext) -> dict[str, Any]:
        expected = ctx.step.to if ctx.step.action == "verify" else ctx.step.from_
        facts, problems = settled_facts(ctx, expected)
        if problems:
            raise StepFailed(f"node {ctx.node.name}: verification failed:\n  - " + "\n  - ".join(problems))
        data: dict[str, Any] = {"instance_uuid": facts.instance_uuid}
        if facts.version:
            data.update(version_after=facts.version.release, build_after=facts.version.build)
        return data

    def reconcile(self, ctx: StepContext, started: Any) -> str:
        return NOT_DONE  # read-only: run again

"""Small helpers the steps share: deadlines scaled for the lab, the pre-upgrade baseline, domain version."""
from __future__ import annotations

from typing import Any

from orchestrator.core.history import domain_version
from orchestrator.steps.base import StepContext


def deadline(ctx: StepContext, minutes: float) -> float:
    """A job's overall deadline in seconds (the engine option can scale it down for the lab)."""
    return max(5.0, minutes * 60.0 * 3 * dict(ctx.options.extra).get("deadline_scale", 1.0))


def poll_kwargs(ctx: StepContext) -> dict[str, Any]:
    interval = ctx.options.poll_interval
    return {"initial": interval, "cap": max(interval, 10.0 * min(1.0, interval * 5))}


def current_domain_version(ctx: StepContext) -> str:
    return domain_version(ctx.inv, ctx.history().versions())

"""Small helpers the steps share: deadlines scaled for the lab, the pre-upgrade baseline, domain version."""
from __future__ import annotations

from typing import Any

from orchestrator.core.history import domain_version
from orchestrator.steps.base import StepContext


def deadline(ctx: StepContext, minutes: float) -> float:
    """A job's overall deadline in seconds (the engine option can scale it down for the lab)."""
    return max(5.0, minutes * 60.0 * 3 * ctx.options.deadline_scale)


def poll_kwargs(ctx: StepContext) -> dict[str, Any]:
    interval = ctx.options.poll_interval
    return {"initial": interval, "cap": interval * 5}  # production: 2 s growing to 10 s; the lab: 20 ms to 100 ms


def current_domain_version(ctx: StepContext) -> str:
    return domain_version(ctx.inv, ctx.history().versions())

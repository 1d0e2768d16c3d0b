"""Small helpers the steps share: deadlines scaled for the lab, polling, the domain version, starting a job once."""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, TypeVar

from orchestrator import stop
from orchestrator.clients.retry import Ambiguous

from orchestrator.core.history import domain_version
from orchestrator.facts.node import gather
from orchestrator.steps.base import StepContext

T = TypeVar("T")


def deadline(ctx: StepContext, minutes: float) -> float:
    """A job's overall deadline in seconds (the engine option can scale it down for the lab)."""
    return max(5.0, minutes * 60.0 * 3 * ctx.options.deadline_scale)


def poll_kwargs(ctx: StepContext) -> dict[str, Any]:
    interval = ctx.options.poll_interval
    return {"initial": interval, "cap": interval * 5}  # production: 2 s growing to 10 s; the lab: 20 ms to 100 ms


def current_domain_version(ctx: StepContext) -> str:
    return domain_version(ctx.inv, ctx.history().versions())


def start_once(start: Callable[[], T], already_started: Callable[[], T | None], *, what: str,
               attempts: int = 3) -> T:
    """Start a job on a node without ever starting it twice.

    The clients refuse to repeat a call that starts work after an ambiguous failure (a reset after the
    request was sent): it may have happened. Here the step looks at the node (`already_started`) and adopts
    the job it finds; only when the node shows nothing is the start sent again.
    """
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except Ambiguous:
            found = already_started()
            if found is not None:
                return found
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def wait_answering(ctx: StepContext, nodes: Iterable[Any], minutes: float) -> list[str]:
    """Ask each node until it answers on every API it has (an appliance takes minutes to bring its services
    back after a power-on), within `minutes` (scaled like every deadline). Returns the nodes still silent."""
    waiting = list(nodes)
    end = time.monotonic() + deadline(ctx, minutes)
    while waiting:
        waiting = [n for n in waiting if gather(ctx.conns, n, fingerprint=False, health=False).errors]
        if not waiting or time.monotonic() >= end:
            break
        ctx.log.info("nodes.waiting_to_answer", nodes=[n.name for n in waiting])
        stop.sleep(max(ctx.options.poll_interval, 0.05))
    return [n.name for n in waiting]

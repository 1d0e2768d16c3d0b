"""Small helpers the steps share: deadlines scaled for the lab, polling, the domain version, starting a job once,
and the observe-decide loop every step runs before it acts (`settle`)."""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, TypeVar

from orchestrator import stop
from orchestrator.clients.retry import Ambiguous, Backoff, expected_outage, polling

from orchestrator.core.converge import (ADOPT, FAILED, START, STOP, WAIT, Decision, Observation, decide,
                                       resume_command)
from orchestrator.core.history import domain_version
from orchestrator.core.identity import RULE as IDENTITY_RULE
from orchestrator.core.identity import NodeVMs, power_on_refusal, serving_vm
from orchestrator.core.interop import restart_minutes
from orchestrator.core.versions import Version
from orchestrator.errors import StepFailed
from orchestrator.facts.node import gather
from orchestrator.steps.base import StepContext

T = TypeVar("T")


def deadline(ctx: StepContext, minutes: float) -> float:
    """A job's overall deadline in seconds (the engine option can scale it down for the lab)."""
    return max(5.0, minutes * 60.0 * 3 * ctx.options.deadline_scale)


def poll_kwargs(ctx: StepContext) -> dict[str, Any]:
    interval = ctx.options.poll_interval
    return {"initial": interval, "cap": interval * 5}  # production: 2 s growing to 10 s; the lab: 20 ms to 100 ms


class Pace:
    """The waits between the looks of one observe loop, paced like a job poll (`poll_kwargs`): the engine's
    poll interval (at least 50 ms), x1.6 per look while nothing changes, up to 5x (production 2 s -> 10 s),
    back to the start when what is seen changes. A node that reboots for 20 minutes is not asked every 2 s
    (each look is 3-9 requests and, from a fresh process, a login), and a change - a job's progress, a node
    answering again - is when the next one tends to come: then it is looked at often again."""

    def __init__(self, ctx: StepContext) -> None:
        base = max(ctx.options.poll_interval, 0.05)
        self._backoff = Backoff(base, base * 5)

    def sleep(self, changed: bool = False) -> None:
        stop.sleep(self._backoff.next(changed))


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
    limit = deadline(ctx, minutes)
    end = time.monotonic() + limit
    pace, before = Pace(ctx), len(waiting)
    with expected_outage("powering on"):  # the nodes are down because we powered them off: not a fault
        while waiting:
            with polling():  # one look per poll: a booting node is not retried (and logged) under the loop
                waiting = [n for n in waiting if gather(ctx.conns, n, fingerprint=False, health=False).errors]
            if not waiting or time.monotonic() >= end:
                break
            ctx.log.info("nodes.waiting_to_answer", nodes=[n.name for n in waiting], deadline_s=round(limit))
            pace.sleep(changed=len(waiting) != before)
            before = len(waiting)
    return [n.name for n in waiting]


def restart_deadline(ctx: StepContext, kind: str) -> float:
    """Seconds a node may stay silent while a change of `kind` lands (version data, scaled for the lab)."""
    return max(5.0, restart_minutes(kind) * 60.0 * ctx.options.deadline_scale)


def settle(ctx: StepContext, observe: Callable[[], Observation], kind: str, target: Version | None, *,
           job_minutes: float | None = None, started: bool = False) -> Decision:
    """Observe the node until the decision (core.converge) is to act: done, start, or - without
    `job_minutes` - adopt. A silent node is waited on up to the method's restart deadline; with
    `job_minutes` a running job is followed to its end within that deadline (a job just started that the
    node does not show yet is given the restart deadline to appear). Raises StepFailed at a stop, naming
    the node and the one next command. One log line per change of what is seen, not per poll."""
    silent_since: float | None = None
    idle_since: float | None = None
    job_end = time.monotonic() + deadline(ctx, job_minutes) if job_minutes else None
    restart_s = restart_deadline(ctx, kind)
    rerun = resume_command(ctx.step.phase, ctx.step.action)
    said: tuple | None = None
    pace = Pace(ctx)
    while True:
        obs = observe()
        now = time.monotonic()
        silent_since = None if obs.answering else (silent_since or now)
        d = decide(obs, target, node=ctx.node.name, silent_s=now - silent_since if silent_since else 0.0,
                   restart_s=restart_s, rerun=rerun, started=started)
        if d.kind == STOP:
            raise StepFailed(f"node {ctx.node.name}: {d.reason}. Next: {d.next_action}")
        following = job_end is not None
        idle_since = (idle_since or now) if following and d.kind == START and obs.job != FAILED else None
        appearing = idle_since is not None and now - idle_since < restart_s
        if d.kind != WAIT and not (following and d.kind == ADOPT) and not appearing:
            return d
        if job_end is not None and now > job_end:
            raise StepFailed(f"node {ctx.node.name}: its {kind} job is still running after "
                             f"{deadline(ctx, job_minutes or 0) / 60:.0f} min. Next: let it finish, then run "
                             f"`{rerun}` (it adopts the job, never starts a second one)")
        seen = (d.kind, obs.why, obs.progress)
        changed = seen != said
        if changed:
            said = seen
            ctx.log.info("step.waiting", decision=d.kind, reason=d.reason, percent=obs.progress)
        pace.sleep(changed)


def node_vms(ctx: StepContext, name: str) -> NodeVMs:
    """The VMs carrying a node's identity, from the inventory and the journal: the installer's new
    appliance once a source was kept, and whether a rollback restore brought the source back since."""
    n = ctx.inv.node(name)
    kept = [e for e in ctx.events(kind="source_appliance", node=name) if e.status == "kept"]
    if not kept or not kept[-1].data.get("new_vm_name"):
        return NodeVMs(name, n.vm.name)
    back = [e for e in ctx.events(kind="step", node=name, action="rollback", status="succeeded")
            if e.seq > kept[-1].seq and e.data.get("version_after")]
    return NodeVMs(name, n.vm.name, kept[-1].data["new_vm_name"], returned=bool(back))


def power_states(ctx: StepContext, vms: NodeVMs) -> dict[str, str]:
    n = ctx.inv.node(vms.node)
    return ctx.conns.management(n.vm.vcenter).vm_power_states(list(vms.vms))


def serving(ctx: StepContext, name: str) -> str:
    """The VM that serves the node now (core.identity.serving_vm over live power states)."""
    vms = node_vms(ctx, name)
    return serving_vm(vms, power_states(ctx, vms))


def power(ctx: StepContext, name: str, vm: str, on: bool, vms: NodeVMs | None = None) -> None:
    """Power one of a node's VMs on or off, idempotently. Before any power-on the identity rule is asked
    with live power states: never two running VMs with one identity (`vms`: the caller's view when it
    is moving the identity, e.g. a rollback bringing the source back)."""
    vms = vms or node_vms(ctx, name)
    n = ctx.inv.node(name)
    mg = ctx.conns.management(n.vm.vcenter)
    states = mg.vm_power_states(list(dict.fromkeys([*vms.vms, vm])))
    if states.get(vm) is None:
        raise StepFailed(f"node {name}: VM {vm} not found in management vCenter {n.vm.vcenter}")
    if on and states[vm] != "poweredOn":
        refusal = power_on_refusal(vm, vms, states)
        if refusal:
            raise StepFailed(f"node {name}: refused to power on {vm}: {refusal} [rule: {IDENTITY_RULE}]")
        mg.power_on(mg.vm_by_name(vm))
    elif not on and states[vm] == "poweredOn":
        mg.power_off(mg.vm_by_name(vm))

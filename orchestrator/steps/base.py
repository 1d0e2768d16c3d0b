"""What a step is: one change to one node (or one domain-wide set), run only by the engine.

Each step knows how to run itself and how to reconcile itself after a crash: look at the live node, then
say whether the interrupted work is done (so it is never repeated: no node upgraded twice, no finished
backup repeated) or not done (so it is safe to run again). Like kubeadm's phases.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from orchestrator.core.inventory import Inventory, Node
from orchestrator.core.plan import Plan, Step
from orchestrator.core.versions import Version
from orchestrator.errors import StepFailed

NOT_DONE = "not_done"


class ManualStepRequired(StepFailed):
    """vcwave cannot drive this change: the wave pauses with exact instructions; `invoke verify --node N`
    proves the node is at the target and lets the wave go on."""

    def __init__(self, node: str, instructions: str, next_command: str = "") -> None:
        self.node = node
        self.instructions = instructions
        self.next_command = next_command or f"invoke verify --node {node}"  # the ONE next command
        super().__init__(f"node {node}: manual step required:\n{instructions}\nthen run: {self.next_command}")


@dataclass
class StepContext:
    """Everything a step may use. Steps never touch the journal directly except through `record`."""

    inv: Inventory
    plan: Plan
    step: Step
    node: Node
    target: Version
    conns: Any  # orchestrator.connect.Connections
    log: Any  # a bound structlog logger (domain, wave, node, step)
    record: Callable[..., Any]  # record(kind, status=..., data=...) -> journal event (backups, facts, assets)
    history: Callable[[], Any]  # -> DomainHistory (current view from the journal)
    options: Any  # orchestrator.engine.runner.EngineOptions
    progress: Callable[[dict], None] = lambda d: None  # mid-step facts to journal (e.g. a job id)
    events: Callable[..., list] = lambda **kw: []  # read the journal (filters as Journal.events)

    def step_events(self) -> list:
        return self.events(kind="step", step=self.step.id, node=self.step.node)

    def last_progress(self, key: str) -> dict[str, Any] | None:
        """The newest mid-step fact journaled under `key` (a job id, the installer's pid): what a resumed
        step must look at before it decides anything."""
        for e in reversed(self.step_events()):
            if e.status == "started" and key in e.data:
                return e.data
        return None

    def baseline(self) -> dict[str, Any] | None:
        """The node's first recorded identity (pre-upgrade facts), for continuity checks."""
        facts = self.events(kind="fact", node=self.node.name)
        return facts[0].data if facts else None


class StepImpl(Protocol):
    def run(self, ctx: StepContext) -> dict[str, Any]:
        """Do the change; return data for the journal's `succeeded` event (e.g. version_after). Raise
        StepFailed on failure."""

    def reconcile(self, ctx: StepContext, started: Any) -> dict[str, Any] | str:
        """After a crash mid-step: inspect the node. Return success data if the work is done, or NOT_DONE."""


def lane_of(steps: list[Step]) -> dict[str, list[Step]]:
    lanes: dict[str, list[Step]] = {}
    for s in steps:
        lanes.setdefault(s.node, []).append(s)
    return lanes

"""What a person following a run needs to know, folded from the event stream (no terminal, no I/O).

The engine and steps emit structlog events; `RunView.apply(event)` turns each one into the lines worth
printing (a step starting or ending, a warning, a retry episode, the window opening) and keeps the state
the live view draws (the running steps with percent, phase, elapsed, expected remaining, retries). Progress
and retry events never become lines of their own: they update the running step, so a 40-minute reboot is
one line with a counter, not 850 warnings.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from orchestrator.core.plan import Plan, lane_minutes

NOTE_EVERY_S = 300.0  # a long step's "still running" line, at most this often
READ_ONLY_ACTIONS = ("precheck", "verify")  # they look and change nothing: "ok", never "changed"
RETRY_EVENTS = ("client.retry", "job.poll_failed", "nodes.waiting_to_answer", "installer.node_not_answering")
QUIET = ("step.start", "step.done", "step.failed", "step.manual", "job.progress", "installer.progress",
         "client.relogin", *RETRY_EVENTS)


@dataclass
class Running:
    """A step in progress, as the live view shows it."""

    step: str
    node: str
    action: str
    method: str
    started: float
    expected_s: float = 0.0  # from the plan's durations (0: unknown)
    members: tuple[str, ...] = ()
    frm: str = ""
    to: str = ""
    percent: float | None = None
    phase: str = ""
    retries: dict[str, int] = field(default_factory=dict)  # node -> retries/failed polls (faults)
    waits: dict[str, int] = field(default_factory=dict)  # node -> retries while down on purpose
    outage: str = ""  # why the node is expected to be down ("rebooting", "powering on")
    deadline_s: float = 0.0
    noted: float = 0.0  # when the last "still running" line was printed (0: not yet, counts from `started`)
    vms: dict[str, str] = field(default_factory=dict)  # node -> VM, for a step over a snapshot set's VMs

    def label(self) -> str:
        """`upgrade (update)`, `backup (snapshot-set)`, `precheck`."""
        return f"{self.action} ({self.method})" if self.method else self.action

    def who(self) -> str:
        """The node, or every member of a domain-wide step (a snapshot set)."""
        return f"{len(self.members)} VMs" if self.members else self.node

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.started)

    def remaining(self, now: float) -> float | None:
        """Expected remaining seconds from the plan's duration (None when the plan has no figure)."""
        return max(0.0, self.expected_s - self.elapsed(now)) if self.expected_s else None

    def waiting_text(self) -> str:
        """The folded retry episode: "psc-a: rebooting, retried 4x, waiting up to 20 min"."""
        parts = []
        for node in sorted({*self.retries, *self.waits}):
            n_fault, n_wait = self.retries.get(node, 0), self.waits.get(node, 0)
            why = self.outage if n_wait and not n_fault else "not answering"
            limit = f", waiting up to {duration(self.deadline_s)}" if self.deadline_s else ""
            parts.append(f"{node}: {why}, retried {n_fault + n_wait}x{limit}")
        return "; ".join(parts)

    def waited_text(self) -> str:
        """After the step: what the waits were ("psc-a rebooting: 3 polls; vc-b not answering: retried 1x")."""
        parts = [f"{node} {self.outage or 'down on purpose'}: {n} poll{'' if n == 1 else 's'}"
                 for node, n in sorted(self.waits.items())]
        parts += [f"{node} not answering: retried {n}x" for node, n in sorted(self.retries.items())]
        return "; ".join(parts)


def duration(seconds: float) -> str:
    """1.2s, 45s, 12 min, 2 h 05 min: short, readable, at the precision that matters at that length."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


@dataclass
class Tally:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    paused: int = 0
    reconciled: int = 0
    fault_retries: int = 0
    expected_waits: int = 0
    warnings: int = 0


class RunView:
    """The fold of one command's (or one rehearsal's) events into lines and running steps."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.clock, self.wall = clock, wall
        self.running: dict[str, Running] = {}
        self.tally = Tally()
        self.plan: Plan | None = None
        self.window_opened: float | None = None  # wall clock
        self.window_closed_after: float | None = None
        self.time_scale = 1.0  # the lab's clock (job durations x F): expected durations shrink with it
        self.sets: dict[str, dict[str, str]] = {}  # step id -> {node: VM} of a snapshot set it reverts

    # ---------------------------------------------------------------- context
    def use_plan(self, plan: Plan, window: tuple[float | None, float | None] = (None, None)) -> None:
        """The saved plan gives every step its expected duration and the window its expected length;
        `window` (opened, closed) is where an earlier command left the window clock."""
        self.plan = plan
        opened, closed = window
        if opened is not None:
            self.window_opened = opened
            self.window_closed_after = closed - opened if closed is not None else None

    def expected_s(self, step_id: str) -> float:
        if self.plan is None:
            return 0.0
        try:
            return lane_minutes([self.plan.step(step_id)]) * 60 * self.time_scale
        except StopIteration:  # an ad-hoc step (standalone verify, extra snapshot set): no planned figure
            return 0.0

    def window_text(self) -> str:
        """"window open 12 min of ~145 min expected" (or "" before it opens)."""
        if self.window_closed_after is not None:
            return f"window closed after {duration(self.window_closed_after)}"
        if self.window_opened is None:
            return ""
        return f"window open {duration(self.wall() - self.window_opened)}{self._window_expected(' of ~')}"

    def _window_expected(self, lead: str) -> str:
        """The plan's window estimate (on the lab's clock), or "" without a plan."""
        if self.plan is None:
            return ""
        return f"{lead}{duration(self.plan.window_estimate_min * 60 * self.time_scale)} expected"

    # ---------------------------------------------------------------- events
    def apply(self, ev: dict[str, Any]) -> list[str]:
        """Fold one event; return the lines to print for it (often none)."""
        name = str(ev.get("event", ""))
        handler = getattr(self, "_on_" + name.replace(".", "_"), None)
        if handler is not None:
            return handler(ev)
        if name in QUIET or name in RETRY_EVENTS:
            return self._retry(ev) if name in RETRY_EVENTS else []
        if ev.get("level") in ("warning", "error", "critical"):
            self.tally.warnings += 1
            return [f"{ev['level'].upper()} {_where(ev)}{name}{_details(ev)}"]
        return []

    def _on_step_start(self, ev: dict) -> list[str]:
        """Starts are not lines yet: the console prints `start_line` for them (grouped, or dropped when
        the step ends before anything else was printed)."""
        sid = str(ev.get("step"))
        vms = self.sets.pop(sid, {})
        self.running[sid] = Running(sid, str(ev.get("node")), str(ev.get("action", "")), str(ev.get("method") or ""),
                                    self.clock(), self.expected_s(sid), tuple(ev.get("members") or vms),
                                    frm=str(ev.get("frm") or ""), to=str(ev.get("to") or ""), vms=vms)
        return []

    def _on_rollback_set(self, ev: dict) -> list[str]:
        """A snapshot set is about to be reverted as one step: remember its VMs, so that the step's line
        says "4 VMs" and one line per VM follows it (node, VM, outcome), as every other step has its own."""
        self.sets[str(ev.get("step"))] = {str(k): str(v) for k, v in dict(ev.get("vms") or {}).items()}
        return []

    @staticmethod
    def start_line(runs: list[Running]) -> list[str]:
        """One line per kind of step among `runs` (a batch that starts together): nodes, action (method),
        versions when they move, the expected duration when it is worth waiting for."""
        kinds: dict[str, list[Running]] = {}
        for run in runs:
            kinds.setdefault(run.label(), []).append(run)
        lines = []
        for label, group in kinds.items():
            moves = {(r.frm, r.to) for r in group if r.frm and r.frm != r.to}
            versions = f"  {next(iter(moves))[0]} -> {next(iter(moves))[1]}" if len(moves) == 1 else ""
            longest = max(r.expected_s for r in group)
            expect = f"  ~{duration(longest)} expected" if longest >= 60 else ""
            who = ", ".join(f"{r.who()} ({', '.join(r.members)})" if r.members else r.node for r in group)
            lines.append(f"start    {who}  {label}{versions}{expect}")
        return lines

    def _end(self, ev: dict, outcome: str, extra: str = "") -> list[str]:
        run = self.running.pop(str(ev.get("step")), None)
        if run is None:
            return [f"{outcome:<8} {_where(ev)}{extra}"]
        took = ev.get("duration_s")
        took = float(took) if took is not None else run.elapsed(self.clock())
        waited = run.waited_text()
        tail = f"  [{waited}]" if waited else ""
        return [f"{outcome:<8} {run.who():<8} {run.label():<24} {duration(took):>6}{tail}{extra}",
                *vm_lines(run.vms, outcome)]

    def _on_step_done(self, ev: dict) -> list[str]:
        run = self.running.get(str(ev.get("step")))
        changed = run is not None and run.action not in READ_ONLY_ACTIONS
        if changed:
            self.tally.changed += 1
        else:
            self.tally.ok += 1
        return self._end(ev, "changed" if changed else "ok")

    def _on_step_failed(self, ev: dict) -> list[str]:
        self.tally.failed += 1
        error = str(ev.get("error", "")).strip().splitlines()
        return self._end(ev, "FAILED", f"\n         {error[0]}" if error else "")

    def _on_step_manual(self, ev: dict) -> list[str]:
        self.tally.paused += 1
        text = str(ev.get("instructions", "")).strip()
        return self._end(ev, "PAUSED", "\n         " + text.replace("\n", "\n         ") if text else "")

    def _on_step_reconciled(self, ev: dict) -> list[str]:
        self.tally.reconciled += 1
        outcome = "found done on the node" if ev.get("outcome") == "succeeded" else "not done: will run again"
        return [f"resumed  {_where(ev)}{outcome}"]

    def _on_job_progress(self, ev: dict) -> list[str]:
        run = self.running.get(str(ev.get("step")))
        if run is None:
            return []
        if ev.get("percent") is not None:
            run.percent = float(ev["percent"])
        run.phase = f"{ev.get('what', '')} {str(ev.get('state') or '').lower()}".strip()
        return self._still_running(run)

    def _on_installer_progress(self, ev: dict) -> list[str]:
        run = self.running.get(str(ev.get("step")))
        if run is None:
            return []
        run.phase = str(ev.get("line", ""))[:60]
        return self._still_running(run)

    def _still_running(self, run: Running) -> list[str]:
        """A long step says where it is every NOTE_EVERY_S, so that a log without a terminal (CI, AWX)
        shows a 40-minute install or a 20-minute outage moving, not one start line and silence."""
        now = self.clock()
        if now - (run.noted or run.started) < NOTE_EVERY_S:
            return []
        run.noted = now
        pct = f" {run.percent:.0f}%" if run.percent is not None else ""
        remaining = run.remaining(now)
        left = f", ~{duration(remaining)} left" if remaining is not None else ""
        waited = run.waiting_text()
        state = waited or (run.phase or "running")
        window = self.window_text()
        return [f"running  {run.who():<8} {run.label()}{pct}: {state}; {duration(run.elapsed(now))} elapsed{left}"
                + (f"; {window}" if window else "")]

    def _retry(self, ev: dict) -> list[str]:
        """Fold a retry/failed poll/still-waiting event into its step; the first fault of a node in a step
        is printed once (warnings stay visible), the rest only count."""
        run = self.running.get(str(ev.get("step")))
        expected = ev.get("expected")  # set on every event emitted during an expected outage (orchestrator.log)
        nodes = ev.get("nodes") if ev.get("event") == "nodes.waiting_to_answer" else [ev.get("node")]
        if ev.get("deadline_s") and run is not None:
            run.deadline_s = float(ev["deadline_s"])
        if expected:
            self.tally.expected_waits += 1
        else:
            self.tally.fault_retries += 1
        if run is None:  # an observation of the domain: what does not answer is its result (status, guards)
            return []
        lines = []
        for node in nodes or [run.node]:
            node = str(node)
            if expected:
                run.outage = str(expected)
                run.waits[node] = run.waits.get(node, 0) + 1
                continue
            if node not in run.retries:
                reason = ev.get("reason") or ev.get("error") or "not answering"
                lines.append(f"retry    {node:<8} {str(reason).splitlines()[0][:100]} (retrying, folded from now on)")
            run.retries[node] = run.retries.get(node, 0) + 1
        return lines or self._still_running(run)

    def _on_window_opened(self, ev: dict) -> list[str]:
        self.window_opened = self.wall()
        return [f"window   mixed-version window opened by {ev.get('by')}{self._window_expected(', ~')}"]

    def _on_window_closed(self, ev: dict) -> list[str]:
        self.window_closed_after = float(ev.get("length_s") or 0.0)
        how = "the domain is back on one version" if ev.get("by") == "rollback" else "every node verified at the target"
        return [f"window   closed after {duration(self.window_closed_after)}: {how}"]

    # ---------------------------------------------------------------- end
    def summary(self) -> str:
        t = self.tally
        parts = [f"ok {t.ok}", f"changed {t.changed}", f"failed {t.failed}"]
        if t.paused:
            parts.append(f"paused {t.paused}")
        if t.reconciled:
            parts.append(f"resumed {t.reconciled}")
        text = (f"summary  steps: {', '.join(parts)}; retries of transient faults: {t.fault_retries}"
                f" (waits while a node was down on purpose: {t.expected_waits})")
        if t.warnings:
            text += f"; warnings: {t.warnings}"
        window = self.window_text()
        return text + (f"; {window}" if window else "")


SET_VM_OUTCOME = {"changed": "reverted, powered on", "ok": "reverted, powered on"}


def vm_lines(vms: dict[str, str], outcome: str) -> list[str]:
    """One line per VM of a reverted snapshot set, under the set's line: node, VM, and what is known of it.
    When the set stopped, no VM is claimed reverted: the re-run asks each one again."""
    what = SET_VM_OUTCOME.get(outcome, "not confirmed: the set stopped; `invoke rollback` looks at it again")
    return [f"  - {node:<8} VM {vm}: {what}" for node, vm in vms.items()]


def _where(ev: dict) -> str:
    node = ev.get("node")
    return f"{node:<8} " if node and node != "-" else ""


def _details(ev: dict) -> str:
    skip = {"event", "level", "timestamp", "domain", "wave", "node", "step", "logger"}
    items = [f"{k}={v}" for k, v in ev.items() if k not in skip and v not in (None, "", "-")]
    return (": " + " ".join(items))[:300] if items else ""

"""The engine: walks one phase of a saved plan, batch by batch, with a checkpoint before and after every step.

It holds no rule of the seed (those live in orchestrator.core.rules and are asked here); it only makes
sure that every change is journaled, that a crash can be resumed exactly once, and that a failed step
stops the wave in a known state with a safe next command.
"""
from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orchestrator.scrub import scrub_text
from orchestrator.core import rules
from orchestrator.core.history import REFUSED, DomainHistory, fold
from orchestrator.core.inventory import Inventory
from orchestrator.core.live import DISAGREEMENT_KIND, DomainState, fold_live, installer_vm_names, journal_changes
from orchestrator.core.plan import Plan, Step, converges
from orchestrator.core.versions import parse_version
from orchestrator.engine.journal import Journal, journal_path
from orchestrator.engine.lock import DomainLock, inspect_lock
from orchestrator.errors import RefusedError, StepFailed, exit_code_of
from orchestrator.facts.domain import DEFAULT_DEADLINE_S, observe
from orchestrator.log import bound
from orchestrator.steps.base import NOT_DONE, ManualStepRequired, StepContext, lane_of


@dataclass(frozen=True)
class EngineOptions:
    state_dir: Path = Path(".vcwave")
    poll_interval: float = 2.0
    job_deadline_s: float = 6 * 3600
    installer: str | None = None
    break_stale_lock: bool = False
    max_backup_age_h: float = 24.0  # the psc wave (the window) opens only with pre backups younger than this
    insecure: bool = False  # TLS verification off (an explicit, logged flag): also tells the installer
    deadline_scale: float = 1.0  # job deadlines x F (the lab's time-scaled jobs finish sooner)
    observe_deadline_s: float = DEFAULT_DEADLINE_S  # how long one look at the domain waits for a silent node


@dataclass
class RunResult:
    phase: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)  # --check: what would run
    untouched: list[str] = field(default_factory=list)
    manual: list[tuple[str, str]] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)  # per failed step: 2 = a bad server answer

    @property
    def ok(self) -> bool:
        return not self.failed and not self.manual

    @property
    def exit_code(self) -> int:
        return 2 if self.exit_codes and all(c == 2 for c in self.exit_codes) else 1


class Engine:
    """Applies a plan to a domain. One instance per command run."""

    def __init__(self, inv: Inventory, plan: Plan, journal: Journal, conns: Any, log: Any,
                 options: EngineOptions, impls: Callable[[Step], Any], locked: bool = True) -> None:
        self.inv, self.plan, self.journal, self.conns, self.log = inv, plan, journal, conns, log
        self.locked = locked  # False for read-only commands (precheck): they never reconcile
        self.options, self.impls = options, impls
        self.run_id = uuid.uuid4().hex[:12]
        self.target = parse_version(plan.target)
        self.state: DomainState | None = None  # the last observation of the domain, folded with the journal

    # ------------------------------------------------------------------ views
    def run_start_data(self, **extra: Any) -> dict[str, Any]:
        """What a `run.start` records: the process, and `insecure` when TLS verification was turned off (the
        report shows it: a run whose nodes were not authenticated must not look like any other)."""
        return {"pid": os.getpid(), **({"insecure": True} if self.options.insecure else {}), **extra}

    def history(self) -> DomainHistory:
        return fold(self.inv, self.journal.events())

    def _record(self, step: Step) -> Callable[..., Any]:
        def record(kind: str, status: str = "", data: dict | None = None, node: str | None = None) -> Any:
            return self.journal.append(kind, run_id=self.run_id, plan_hash=self.plan.plan_hash, phase=step.phase,
                                       wave=step.phase, node=step.node if node is None else node, step=step.id,
                                       action=step.action, status=status, data=data or {})
        return record

    def step_event(self, step: Step, status: str, data: dict | None = None) -> None:
        """Journal a step's checkpoint (started, succeeded, failed, reconciled...) with the plan's facts."""
        self._record(step)("step", status, {"method": step.method, "from": step.from_, "to": step.to,
                                            **(data or {})})

    def observe(self, record: bool = True) -> DomainState:
        """Ask every node now and fold the answers with the journal (live wins). With `record`, new or changed
        disagreements are journaled (and the ones that no longer hold marked resolved); `status` passes
        False and stays read-only."""
        events = self.journal.events()
        seen = observe(self.inv, self.conns, deadline=self.options.observe_deadline_s,
                       new_vms=installer_vm_names(events))
        self.state = fold_live(self.inv, fold(self.inv, events), seen, events)
        if record:
            new, resolved = journal_changes(self.state, events)
            for d in new:
                self.journal.append(DISAGREEMENT_KIND, run_id=self.run_id, plan_hash=self.plan.plan_hash,
                                    node=d.node, status="open",
                                    data={"field": d.field, "journal": d.journal, "live": d.live})
                self.log.warning("domain.disagreement", node=d.node, field=d.field, text=str(d))
            for node, fld in resolved:
                self.journal.append(DISAGREEMENT_KIND, run_id=self.run_id, plan_hash=self.plan.plan_hash,
                                    node=node, status="resolved", data={"field": fld})
        return self.state

    def _ctx(self, step: Step) -> StepContext:
        log = self.log.bind(domain=self.inv.domain, wave=step.phase, node=step.node, step=step.id)
        return StepContext(self.inv, self.plan, step, self.inv.node(step.node), self.target, self.conns, log,
                           self._record(step), self.history, self.options,
                           progress=lambda d, s=step: self.step_event(s, "started", {"progress": True, **d}),
                           events=self.journal.events)

    # ------------------------------------------------------------------ guards
    def guard(self, phase: str, nodes: set[str] | None) -> None:
        """Refuse a phase the domain is not ready for. The rules come from the core."""
        hist = self.history()
        opens_window = phase == "psc" or (phase == "vcenter" and converges(self.inv, self.target))
        if opens_window and hist.window_opened is None:  # a converge opens it with its first vCenter
            verdict = rules.window_may_open({n.name: hist.prechecks.get(n.name) for n in self.inv.nodes},
                                            time.time())
            if not verdict:
                raise RefusedError(verdict.reason, rule=verdict.rule)
        if phase in ("psc", "vcenter"):
            missing = [n.name for n in self.inv.nodes
                       if not any(b.node == n.name and b.tag == "pre" and b.verified for b in hist.backups)
                       and (nodes is None or n.name in nodes)]
            if missing and any(s.action == "backup" for s in self.plan.phase("pre").steps):
                raise RefusedError(f"no verified pre-upgrade backup recorded for {', '.join(missing)}: run "
                                   f"`invoke backup --phase pre` first", rule="backup-before-upgrade")
        if opens_window and hist.window_opened is None:
            stale = stale_backups(hist, self.inv, self.options.max_backup_age_h, time.time())
            if stale:
                raise RefusedError(f"pre-upgrade backups older than {self.options.max_backup_age_h:g} h: "
                                   f"{', '.join(stale)}; the window opens with fresh backups: run `invoke backup "
                                   f"--phase pre` again", rule="fresh-backup-before-window")
        if phase == "vcenter":
            pscs = {p.name: hist.nodes[p.name].version for p in self.inv.pscs}
            verdict = rules.vcenter_wave_may_start(pscs, self.target, converges(self.inv, self.target))
            if not verdict:
                raise RefusedError(verdict.reason + ". Run `invoke upgrade --wave psc` first.", rule=verdict.rule)
            unverified = [p for p in pscs if hist.nodes[p].verified_at != self.target.release
                          and p in self._upgraded()]
            if unverified:
                raise RefusedError(f"PSCs at {self.target.release} but not verified: {', '.join(unverified)}; run "
                                   f"`invoke verify` first", rule=verdict.rule)
        if phase in ("psc", "vcenter"):
            pending = [s for s in self.plan.phase(phase).steps if (nodes is None or s.node in nodes)
                       and self.journal.step_state(s.id) not in ("succeeded", "skipped")]
            refused = self.live_verdict(pending, self.state or self.observe())
            if not refused.ok:
                raise RefusedError(refused.reason, rule=refused.rule)

    def _journal_refusal(self, phase: str, exc: RefusedError) -> None:
        """A guard's refusal joins the domain's history (the report lists it with its rule) when that history
        exists and this command holds the lock; on a domain with no journal a refusal still writes nothing."""
        if self.locked and self.journal.path.exists():
            self.journal.append("note", run_id=self.run_id, plan_hash=self.plan.plan_hash, phase=phase,
                                node=exc.node, status=REFUSED, data={"rule": exc.rule, "reason": scrub_text(str(exc))})

    def live_verdict(self, steps: list[Step], state: DomainState) -> rules.Verdict:
        """The core's live rules for steps about to run: every node they touch answers (a node whose step was
        interrupted is left to that step's reconciliation, which waits out a reboot), and no vCenter is
        installed beside a PSC it depends on that is silent or behind."""
        interrupted = {s.node for s in self.plan.steps() if s.id in state.history.running_steps}
        silent = {s.node: state.nodes[s.node].why or state.nodes[s.node].state for s in steps
                  if not state.nodes[s.node].answering and s.node not in interrupted}
        verdict = rules.nodes_answer_before_change(silent)
        if not verdict:
            return verdict
        vcenters = {s.node for s in steps if s.role == "vcenter" and s.action == "upgrade"}
        psc_sites = {p.name: p.site for p in self.inv.pscs}
        for vc in sorted(vcenters):
            node = self.inv.node(vc)
            deps = rules.pscs_a_vcenter_depends_on(node.psc or "", node.site, psc_sites)
            verdict = rules.vcenter_install_allowed(
                vc, {p: (state.nodes[p].answering, state.nodes[p].version) for p in deps}, self.target,
                converges(self.inv, self.target))
            if not verdict:
                return verdict
        return rules.Verdict(True, "psc-answers-before-vcenter")

    # ------------------------------------------------------------------ resume
    def reconcile(self, extra: list[Step] | None = None) -> list[str]:
        """Steps started but never confirmed (a crash): ask the live node before anything is redone.
        `extra`: steps outside the saved plan (a standalone snapshot set) that may have been interrupted."""
        out = []
        plan_steps = {s.id: s for s in [*self.plan.steps(), *(extra or ())]}
        for ev in self.journal.started_unconfirmed():
            step = plan_steps.get(ev.step)
            if step is None:
                continue
            ctx = self._ctx(step)
            verdict = self.impls(step).reconcile(ctx, ev)
            if verdict == NOT_DONE:
                self.step_event(step, "reconciled", {"outcome": "not_done"})
                ctx.log.warning("step.reconciled", outcome="not_done")
            else:
                self.step_event(step, "reconciled", {"outcome": "succeeded", **verdict})
                ctx.log.info("step.reconciled", outcome="succeeded")
            out.append(step.id)
        return out

    # ------------------------------------------------------------------ run
    def run_phase(self, phase: str, *, nodes: set[str] | None = None, actions: set[str] | None = None,
                  check: bool = False, concurrency: int | None = None, rerun: bool = False) -> RunResult:
        """Run a phase batch by batch; `rerun` runs steps that already succeeded again (a read-only precheck
        must be repeatable: the window rule wants a recent one)."""
        result = RunResult(phase)
        # Only the lock holder may decide about another run's unconfirmed steps, and it does so before the
        # guard: a step killed half-way may be why a node is silent (a snapshot set killed between its
        # power-off and its power-on leaves the PSCs off, and the live guard then refused every re-run with
        # "psc-a does not answer"). Those steps were allowed when they started; the guard judges the domain
        # as their reconciliation leaves it, looked at again.
        if not check and self.locked and self.reconcile():
            self.observe()
        try:
            self.guard(phase, nodes)
        except RefusedError as exc:
            self._journal_refusal(phase, exc)
            raise
        if not check:
            self.journal.append("run.start", run_id=self.run_id, plan_hash=self.plan.plan_hash, phase=phase,
                                data=self.run_start_data())
        first = True
        for batch, steps in self.plan.phase(phase).batches():
            todo = [s for s in steps if (nodes is None or s.node in nodes) and (actions is None or s.action in actions)]
            pending = [s for s in todo if rerun or self.journal.step_state(s.id) not in ("succeeded", "skipped")]
            result.skipped += [s.id for s in todo if s not in pending]
            if not pending:
                continue
            if check:
                result.planned += [f"{s.id} ({s.method or s.action}: {s.from_} -> {s.to})" for s in pending]
                continue
            if not (result.failed or result.manual) and phase in ("psc", "vcenter") and not first:
                self._check_batch(batch, pending, result)
            if result.failed or result.manual:
                result.untouched += [s.id for s in pending]
                continue
            first = False
            self._run_batch(pending, result, concurrency)
        if not check:
            self._maybe_close_window(phase)
            self.journal.append("run.end", run_id=self.run_id, plan_hash=self.plan.plan_hash, phase=phase,
                                status="ok" if result.ok else "failed",
                                data={"done": len(result.done), "failed": [f for f, _ in result.failed]})
        return result

    def _check_batch(self, batch: int, steps: list[Step], result: RunResult) -> None:
        """Before each later batch of a wave, look at the domain again: a PSC lost since the wave started
        stops the wave here (the steps are left untouched), named with the rule."""
        verdict = self.live_verdict(steps, self.observe())
        if not verdict:
            result.failed.append((f"{steps[0].phase} batch {batch}", f"{verdict.reason} [rule: {verdict.rule}]"))
            self.log.error("wave.stopped", batch=batch, rule=verdict.rule, reason=verdict.reason)

    def _run_batch(self, steps: list[Step], result: RunResult, concurrency: int | None) -> None:
        set_steps = [s for s in steps if s.action == "backup" and s.method == "snapshot-set"]
        if set_steps:
            self._run_lane(set_steps, result, as_set=True)
            steps = [s for s in steps if s not in set_steps]
        lanes = list(lane_of(steps).values())
        if not lanes:
            return
        workers = max(1, min(len(lanes), concurrency or len(lanes)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vcwave-lane") as pool:
            for f in [pool.submit(self._run_lane, lane, result) for lane in lanes]:
                f.result()

    def run_step(self, step: Step, result: RunResult, impl: Any = None) -> bool:
        """One step outside the plan's batches (a rollback action), with the same checkpoints; `impl`
        overrides the registry. Returns whether it succeeded."""
        failed = len(result.failed) + len(result.manual)
        self._run_lane([step], result, impl=impl)
        return len(result.failed) + len(result.manual) == failed

    def _run_lane(self, lane: list[Step], result: RunResult, as_set: bool = False, impl: Any = None) -> None:
        """A node's steps in order (or, as_set, one domain-wide snapshot-set step over many nodes)."""
        steps = [lane[0]] if as_set else lane
        for i, step in enumerate(steps):
            if result.failed and step.phase in ("psc", "vcenter"):
                result.untouched.append(step.id)
                continue
            with bound(domain=self.inv.domain, wave=step.phase, node=step.node, step=step.id):
                if not self._run_step(step, lane if as_set else [step], result, impl, as_set):
                    result.untouched += [s.id for s in steps[i + 1:]]
                    return

    def _run_step(self, step: Step, members: list[Step], result: RunResult, impl: Any, as_set: bool) -> bool:
        """Checkpoint, run, checkpoint. Returns False when the lane must stop (failure or manual pause)."""
        ctx = self._ctx(step)
        if step.action == "upgrade":  # the first upgrade opens the window (a PSC, or the first converge)
            self._maybe_open_window(step)
        for m in members:
            self.step_event(m, "started")
        t0 = time.monotonic()
        ctx.log.info("step.start", action=step.action, method=step.method, frm=step.from_, to=step.to,
                     **({"members": [m.node for m in members]} if as_set else {}))
        try:
            runner = impl or self.impls(step)
            data = runner.run_set(ctx, members) if as_set else runner.run(ctx)
        except ManualStepRequired as exc:
            self._fail(members, {"manual": True, "instructions": scrub_text(exc.instructions)})
            result.manual.append((step.id, str(exc)))
            ctx.log.warning("step.manual", instructions=exc.instructions, next=exc.next_command)
            return False
        except Exception as exc:  # StepFailed, or an unexpected error: journaled either way, the lane stops
            text = scrub_text(str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}")
            self._fail(members, {"error": text})
            result.failed.append((step.id, text))
            result.exit_codes.append(exit_code_of(exc))
            ctx.log.error("step.failed", error=text, duration_s=round(time.monotonic() - t0, 3))
            return False
        for m in members:
            self.step_event(m, "succeeded", (data or {}).get(m.node, data) if as_set else data)
            result.done.append(m.id)
        ctx.log.info("step.done", duration_s=round(time.monotonic() - t0, 3))
        return True

    def _fail(self, members: list[Step], data: dict) -> None:
        for m in members:
            self.step_event(m, "failed", data)

    # ------------------------------------------------------------------ window clock
    def _upgraded(self) -> set[str]:
        """The nodes this plan upgrades (a converge leaves the PSCs as they are until they are decommissioned)."""
        return {s.node for s in self.plan.steps() if s.action == "upgrade"}

    def _maybe_open_window(self, step: Step) -> None:
        if self.history().window_opened is None:
            self.journal.append("window", run_id=self.run_id, plan_hash=self.plan.plan_hash, phase=step.phase,
                                node=step.node, status="opened", data={"by": step.id})
            self.log.info("window.opened", by=step.id)

    def _maybe_close_window(self, phase: str) -> None:
        hist = self.history()
        if hist.window_opened is None or hist.window_closed is not None:
            return
        upgraded = self._upgraded()
        if all(h.verified_at == self.target.release for n, h in hist.nodes.items() if n in upgraded):
            self.journal.append("window", run_id=self.run_id, plan_hash=self.plan.plan_hash, phase=phase,
                                status="closed", data={"length_s": round(time.time() - hist.window_opened, 3)})
            self.log.info("window.closed", length_s=round(time.time() - hist.window_opened, 3))


def stale_backups(hist: DomainHistory, inv: Inventory, max_age_h: float, now: float) -> list[str]:
    """Nodes whose newest verified pre-upgrade backup is older than `max_age_h` hours."""
    out = []
    for n in inv.nodes:
        ts = [b.ts for b in hist.backups if b.node == n.name and b.tag == "pre" and b.verified]
        if ts and now - max(ts) > max_age_h * 3600:
            out.append(f"{n.name} ({(now - max(ts)) / 3600:.0f} h)")
    return out


def open_journal(options: EngineOptions, domain: str) -> Journal:
    """The domain's journal, created on its first event: a command refused before that writes nothing."""
    return Journal.open_lazy(journal_path(options.state_dir, domain))


def lock_state(options: EngineOptions, domain: str) -> tuple[str, str]:
    """("", "") | ("held", who) | ("stale", who): the domain lock as `status` shows it (read-only)."""
    return inspect_lock(Path(options.state_dir) / domain / "lock")


def lock_for(options: EngineOptions, domain: str, command: str) -> DomainLock:
    return DomainLock(Path(options.state_dir) / domain / "lock", command, break_stale=options.break_stale_lock)


def run_adhoc(engine: Engine, steps: list[Step], label: str) -> RunResult:
    """Steps that are not in the saved plan (a standalone verify, an extra snapshot set): same journal,
    same checkpoints, run as one batch."""
    result = RunResult(label)
    if engine.locked:
        engine.reconcile(extra=steps)
    pending = [s for s in steps if engine.journal.step_state(s.id) not in ("succeeded", "skipped")]
    result.skipped += [s.id for s in steps if s not in pending]
    engine.journal.append("run.start", run_id=engine.run_id, plan_hash=engine.plan.plan_hash, phase=label,
                          data=engine.run_start_data(adhoc=[s.id for s in pending]))
    if pending:
        engine._run_batch(pending, result, None)
    engine._maybe_close_window(label)
    engine.journal.append("run.end", run_id=engine.run_id, plan_hash=engine.plan.plan_hash, phase=label,
                          status="ok" if result.ok else "failed", data={"done": len(result.done)})
    return result

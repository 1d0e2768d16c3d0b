"""`invoke rehearse`: the whole upgrade, end to end, against a lab twin of the inventory — through the very
same orchestrator commands an administrator runs in production.

precheck -> backup (pre) -> stage -> upgrade psc -> (backups during) -> upgrade vcenter -> verify -> backup
(post); with a fault file, a failing step (or a wave its guards refuse: a node lost) is followed by
`rollback`. A target more than one hop away is rehearsed hop by hop on the same lab, as an administrator
goes: each hop planned, run and `finalize`d (a converge hop decommissions the PSCs there), and the next hop
planned from the inventory finalize wrote; a converge hop is finalized even when it is the last. Then the report, the lab is stopped, and a summary is
printed: each hop's window, steps, retries, backups usable at the end.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from lab import manage
from lab.installer_standin import ENV_LAB_DIR, standin_path
from orchestrator import log
from orchestrator.clients import retry
from orchestrator.commands import finalize as finalize_cmd
from orchestrator.commands import plan as plan_cmd
from orchestrator.commands import rollback as rollback_cmd
from orchestrator.commands import status as status_cmd
from orchestrator.commands import waves
from orchestrator.commands.session import CommonFlags
from orchestrator.core.inventory import load_inventory
from orchestrator.core.next_inventory import FILENAME as NEXT_INVENTORY
from orchestrator.core.plan import Plan, converges, load_plan
from orchestrator.core.versions import catalogue, parse_version
from orchestrator.errors import InputError, RefusedError, StepFailed, Where


def default_target(inventory: str | Path) -> str:
    """The latest update of the domain's own release line (a patch rehearsal); majors need --target."""
    inv = load_inventory(inventory)
    newest = max(n.version.without_build() for n in inv.nodes)
    same_line = [r.version for r in catalogue().releases if r.version.line == newest.line]
    best = max(same_line).without_build()
    if best == newest:
        raise InputError(f"{inventory}: the domain already runs the latest {newest.major}.{newest.minor} update; "
                         f"give --target", Where(file=str(inventory), field="--target"))
    return best.release


def deadline_scale(time_scale: float) -> float:
    """The engine's job deadlines on the lab: 20x its clock, so a deadline still means "far too long"."""
    return max(time_scale * 20, 0.001)


@dataclass
class Rehearsal:
    inventory: str
    target: str
    workdir: Path
    time_scale: float
    faults: str | None = None
    playbook: str | None = None
    concurrency: int | None = None
    snapshots: bool = True  # a cold snapshot set too, before the window: the fastest whole-domain way back
    say: Callable[[str], None] = print
    steps: list[str] = field(default_factory=list)
    failed: str = ""
    rolled_back: bool = False
    expected_before: int = 0
    hops: list[dict[str, Any]] = field(default_factory=list)  # per hop rehearsed: its flags, plan and window

    def flags(self, lab_inventory: str, hop: int = 1) -> CommonFlags:
        """Hop 1 keeps the rehearsal's own folder; a later hop has its own plan and journal (its own campaign)."""
        base = self.workdir if hop == 1 else self.workdir / f"hop{hop}"
        return CommonFlags(inventory=lab_inventory, plan=str(base / "plan.json"),
                           state_dir=str(base / "state"), installer=str(standin_path(self.target)),
                           poll_interval=0.02, deadline_scale=deadline_scale(self.time_scale))

    def _do(self, name: str, fn: Callable[[], str]) -> None:
        t0 = time.monotonic()
        try:
            fn()
        except (StepFailed, RefusedError) as exc:  # a guard refusing a wave is the fault's damage too
            refused = isinstance(exc, RefusedError)
            self.steps.append(f"{name} {'REFUSED' if refused else 'FAILED'} {time.monotonic() - t0:.2f}s")
            self.failed = f"{name}: {'REFUSED ' if refused else ''}{exc}"
            raise
        self.steps.append(f"{name} ok {time.monotonic() - t0:.2f}s")  # the console showed its steps

    def run(self) -> str:
        lab_dir = self.workdir / "lab"
        start_retries = retry.retry_count()
        self.expected_before = retry.RETRIES.expected
        # Waits between retries shrink with the lab's clock, as every job duration does (attempts stay as they are).
        old_policy = retry.set_default_policy(initial_wait=min(0.5, 0.5 * self.time_scale * 200),
                                              max_wait=min(15.0, 15.0 * self.time_scale * 20))
        try:
            return self._run(lab_dir, start_retries)
        finally:
            retry.set_default_policy(old_policy)

    def _run(self, lab_dir: Path, start_retries: int) -> str:
        with manage.running(self.inventory, lab_dir, time_scale=self.time_scale, faults=self.faults) as info:
            os.environ[ENV_LAB_DIR] = str(lab_dir.resolve())
            inventory = info["inventory"]
            flags = self.flags(inventory)
            log.record_to(flags.state_dir, load_inventory(inventory).domain)  # one event log, all commands
            log.describe_run(None, time_scale=self.time_scale)
            while True:
                flags, plan, upgraded = self._hop(inventory, len(self.hops) + 1)
                more = bool(plan.route) and plan.target != self.target
                if not upgraded or not (more or converges(load_inventory(inventory), parse_version(plan.target))):
                    break
                self._do(self._label("finalize"), lambda: finalize_cmd.run(flags, yes=True))
                if not more:
                    break
                inventory = str(Path(flags.state_dir) / load_inventory(inventory).domain / NEXT_INVENTORY)
            report = _report(flags)
            st = status_cmd.status_data(flags)
        return self.summary(st, report, retry.retry_count() - start_retries)

    def _label(self, name: str) -> str:
        return name if len(self.hops) <= 1 else f"{name} (hop {len(self.hops)})"

    def _hop(self, inventory: str, number: int) -> tuple[CommonFlags, Plan, bool]:
        """One hop: plan from `inventory`, then the production sequence (a fault file's failure is rolled back).
        Returns its flags, its plan and whether the domain was upgraded."""
        flags = self.flags(inventory, number)
        self.hops.append({"flags": flags})
        self._do(self._label("plan"), lambda: plan_cmd.run(inventory, self.target, flags.plan, False, self.playbook,
                                                           self.concurrency))
        plan = load_plan(flags.plan)
        # The installer of the hop being rehearsed, as on that hop's ISO.
        flags = replace(flags, installer=str(standin_path(plan.target)))
        self.hops[-1].update(flags=flags, plan=plan)
        sequence = [
            ("precheck", lambda: waves.precheck(flags)),
            ("backup pre", lambda: waves.backup(flags, "pre", snapshots=self.snapshots)),
            ("stage", lambda: waves.stage(flags)),
            ("upgrade psc", lambda: waves.upgrade(flags, "psc")),
            ("upgrade vcenter", lambda: waves.upgrade(flags, "vcenter")),
            ("verify", lambda: waves.verify(flags)),
            ("backup post", lambda: waves.backup(flags, "post")),
        ]
        try:
            for name, fn in sequence:
                self._do(self._label(name), fn)
        except (StepFailed, RefusedError):
            if not self.faults:
                raise
            self.say(f"== the fault file's damage stopped the upgrade: {self.failed.splitlines()[0]}")
            try:
                self._do(self._label("rollback"), lambda: rollback_cmd.run(flags))
                self.rolled_back = True
            except RefusedError as exc:
                if exc.rule != "rollback-nothing":
                    raise
                self.say("== nothing to roll back: the failure came before any node moved")
            return flags, plan, False
        self.hops[-1]["window_s"] = status_cmd.status_data(flags).window["length_s"]
        return flags, plan, True

    def _failed_step(self) -> str:
        lines = self.failed.splitlines()
        return next((l.strip() for l in lines if l.strip().startswith("FAILED")), lines[0] if lines else "")

    def summary(self, st: Any, report: str, retries: int) -> str:
        w = st.window
        usable = sum(1 for n in st.nodes if n["single_restore"])
        tally = log.console_tally()  # the console counted the same events: print its figures, not a second count
        retries, waits = ((tally.fault_retries, tally.expected_waits) if tally is not None
                          else (retries, retry.RETRIES.expected - self.expected_before))
        route = load_plan(self.workdir / "plan.json").route
        hops = route.get("hops", [])
        done = len(self.hops)
        lines = [f"rehearsal summary: domain {st.domain}, {self.inventory} -> {st.target}"
                 + (f" (hop {done} of {len(hops)} to {self.target})" if hops else "") + f" (time scale {self.time_scale})",
                 f"  outcome: {'ROLLED BACK after ' + self._failed_step() if self.rolled_back else 'upgraded'}; "
                 f"domain version now {st.domain_version}; backups usable alone at the end: {usable}/{len(st.nodes)}",
                 "  commands: " + "; ".join(self.steps),
                 f"  mixed-version window: {w['state']}, {w['length_s']:.2f}s in the lab "
                 f"(~{w['length_s'] / self.time_scale / 60:.0f} min at real speed)"
                 + (" (the last hop's)" if done > 1 else ""),
                 f"  retries of transient faults: {retries} (waits while nodes were down on purpose: "
                 f"{waits})",
                 f"  files: {_files(report, log.event_log_path())}"]
        if hops:
            lines.append("  route: " + " -> ".join([hops[0]["from"]] + [f"{h['to']} ({h['kind']})" for h in hops])
                         + ("; every hop rehearsed, each finalized before the next" if done == len(hops) else
                            f"; {done} of {len(hops)} hops rehearsed"))
        for i, h in enumerate(self.hops if done > 1 else (), 1):
            if "window_s" in h:
                lines.append(f"  hop {i} -> {h['plan'].target}: window {h['window_s']:.2f}s in the lab "
                             f"(~{h['window_s'] / self.time_scale / 60:.0f} min at real speed)")
        return "\n".join(lines)


def _files(report: str, event_log: Path | None) -> str:
    """The report's files and the event log, on one line: relative to their common folder when they share one."""
    paths = [Path(l.strip()) for l in report.splitlines()[1:]] + ([event_log] if event_log else [])
    if not paths:
        return report
    base = Path(os.path.commonpath([str(p) for p in paths]))
    return f"{base}/: " + ", ".join(str(p.relative_to(base)) for p in paths) + ("" if event_log else
                                                                                 " (no event log: not a command)")


def _report(flags: CommonFlags) -> str:
    try:
        from orchestrator.commands import report as report_cmd
    except ImportError:
        return "(report module not available)"
    return report_cmd.run(flags, None)


def rehearse(inventory: str = "examples/two-site.yml", target: str | None = None, faults: str | None = None,
             time_scale: float = 0.0005, workdir: str = ".vcwave/rehearsal", playbook: str | None = None,
             concurrency: int | None = None, say: Callable[[str], None] = print) -> str:
    wd = Path(workdir)
    if wd.exists() and any(wd.iterdir()):
        import shutil
        shutil.rmtree(wd)
    wd.mkdir(parents=True, exist_ok=True)
    r = Rehearsal(str(inventory), target or default_target(inventory), wd, time_scale, faults, playbook, concurrency,
                  say)
    return r.run()

"""Robustness harness for vcwave against the lab twin: crash points, transient faults, bad inputs.

Three tools, each driving vcwave the way an administrator does — real `invoke` commands in subprocesses —
and judging the outcome from outside (the journal opened read-only, the lab's `/lab/state`, its daemon log):

* :func:`crash_points` — the rehearsal's command sequence, SIGKILLed at every step boundary (a `started`
  or `succeeded` step event appears in the journal), mid-job (a `started` event carrying a job id /
  install / installer progress), and at moments only the lab sees (lab/kills.py: an install or snapshot,
  a power operation or a revert in its record, *inside* an appliance's reboot, at seeded random moments),
  then resumed with the same command (`--break-stale-lock`: a SIGKILLed holder leaves its lock behind, and
  the lock never steals silently) and the rest of the sequence. Each point must end with every node
  installed exactly once *per the lab's own record*, answering at the target with only its own VM powered
  on, upgraded once and verified per the journal, every backup recorded once, and a journal that opens
  cleanly. With ``rollback=True`` the sequence is the bad day instead: vc-b's install fails in the vCenter
  wave, then `invoke rollback` (from the cold snapshot set, or with `restore="file"` by file restores onto
  appliances the administrator deployed in restore mode), killed at its points and resumed; the domain must
  end answering at the source version with the same instance UUIDs. Each sweep reports the points hit, how
  many landed inside an install's reboot, whether every re-run converged, the installs per node per the
  lab's record and its wall time (HarnessResult.figures).
* :func:`transient` — a rehearsal with 503s, connection resets and session expiry on ~20 % of the calls;
  it must still complete; returns the number of retries.
* the bad-inputs corpus lives in lab/badinputs.py (run in-process, one lab for all cases); `bench.faults`
  and ``python -m lab.harness bad`` run it from here.

Commands run through ``python -m lab.harness invoke ARGS`` = ``invoke -r <repo> ARGS`` with one tuning:
the engine's poll interval, job deadlines and the waits between retries are scaled with the lab's clock
(:func:`retry_waits`; the CLI has no flag for them: the production default polls every 2 s, which would make
a lab job of 0.3 s cost seconds, and retries for ~7 s, which would ride out a whole lab reboot that really
lasts 15 minutes). Everything else — argument parsing, the `_cli` error mapping, exit codes, the commands —
is the production path. Each such command is a real process in its own session, forked from a warm process
that has imported vcwave once (lab/warmcli.py: a fresh interpreter spends ~0.6 s of CPU on imports;
VCWAVE_HARNESS_FORK=0 turns it off).

CLI: ``python -m lab.harness crash [--inventory F] [--target T] [--limit N] [--no-mid-job] [--workdir D]
[--time-scale S] [--rollback] [--kinds K,K]``,
``python -m lab.harness transient ...``, ``python -m lab.harness bad [--workdir D]``.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from lab import kills
from lab.warm_relay import ENV_WARM_SOCKET
from orchestrator.core.yamlsrc import dump_plain

ROOT = Path(__file__).resolve().parents[1]
# Invoke's core options for every command the harness runs: the checkout's tasks, and --write-pyc because
# Invoke otherwise sets sys.dont_write_bytecode for the whole process: tasks.py was compiled from source on
# every command, and an in-process run turned off the bytecode cache of the test worker it ran in.
INVOKE_CORE = ("--write-pyc", "-r", str(ROOT))
ENV_POLL = "VCWAVE_HARNESS_POLL"
ENV_TIME_SCALE = "VCWAVE_HARNESS_TIME_SCALE"
ENV_FORK = "VCWAVE_HARNESS_FORK"  # "0": every tuned command a fresh interpreter (see lab/warmcli.py)
ENV_KILL_AFTER = "VCWAVE_HARNESS_KILL_AFTER"  # "KIND:N": SIGKILL ourselves right after the N-th KIND event
DEFAULT_SCALE = 0.0005
REBOOT_SCALE = 0.004  # an install's reboot lasts 3.6 s (900 s real), the install 9.6 s: a kill can aim inside it
DEFAULT_POLL = 0.02
CMD_TIMEOUT = 180.0
LAB_POLL = 0.01  # lab-side points read the lab's record this often
# The installs of psc-a and vc-b 24x slower at the default clock: their reboots last 10.8 s (a re-run started
# 1-5 s after a kill on a busy machine still meets them rebooting) while the rest of the domain keeps its pace.
SLOW_REBOOTS = ({"type": "slow", "node": "psc-a", "factor": 24, "jobs": ["install"]},
                {"type": "slow", "node": "vc-b", "factor": 24, "jobs": ["install"]})
# The bad day of the rollback sweep: vc-b's install fails in the vCenter wave (examples/faults/).
ROLLBACK_FAULTS = {"seed": 1, "faults": [{"type": "fail_step", "node": "vc-b", "step": "install",
                                          "message": "vpxd failed to start after the update", "times": 1}]}


# ----------------------------------------------------------------------------------------------- commands
def _fast_invoke(argv: list[str]) -> None:
    """`invoke -r ROOT argv` in this process, with the engine's polling scaled for the lab (see module doc)."""
    from lab.rehearse import deadline_scale
    from orchestrator.clients import retry
    from orchestrator.commands import session

    poll = float(os.environ.get(ENV_POLL, DEFAULT_POLL))
    time_scale = float(os.environ.get(ENV_TIME_SCALE, DEFAULT_SCALE))
    original = session.CommonFlags.options

    def options(self):  # type: ignore[no-untyped-def]
        return original(replace(self, poll_interval=poll, deadline_scale=deadline_scale(time_scale)))

    session.CommonFlags.options = options
    retry.set_default_policy(**retry_waits(time_scale))
    if os.environ.get(ENV_KILL_AFTER):
        _kill_after(os.environ[ENV_KILL_AFTER])
    from invoke.main import program
    program.run(["invoke", *INVOKE_CORE, *argv])


def retry_waits(time_scale: float) -> dict[str, float]:
    """The production retry waits (0.5 s doubling to 15 s: ~7.5 s over 5 attempts) scaled like the deadlines.

    Why not the rehearsal's (lab/rehearse.py, which must complete as a demo): its waits keep a floor that
    makes the retry budget as long as a whole lab reboot at any clock, so a killed command's resume rides
    the reboot out on retries alone. Really it is ~7.5 s against a 15-minute reboot; here ~17 % of it: the
    resume meets a node that does not answer, as an administrator's would."""
    from lab.rehearse import deadline_scale
    k = deadline_scale(time_scale)
    return {"initial_wait": 0.5 * k, "max_wait": 15.0 * k}


def _kill_after(spec: str) -> None:
    """Crash points between two journal appends (e.g. a backup recorded, its step not yet succeeded): too
    narrow to hit from outside, so the command SIGKILLs its own process group right after the N-th event of
    KIND is durable in the journal — exactly what a power cut at that instant leaves behind."""
    from orchestrator.engine.journal import Journal

    kind, n = spec.split(":")
    seen = [0]
    original = Journal.append

    def append(self, k, **kw):  # type: ignore[no-untyped-def]
        event = original(self, k, **kw)
        if k == kind:
            seen[0] += 1
            if seen[0] == int(n):
                os.killpg(0, signal.SIGKILL)
        return event

    Journal.append = append


def cli_env(lab_dir: str | Path | None = None, time_scale: float = DEFAULT_SCALE, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
           ENV_POLL: str(DEFAULT_POLL), ENV_TIME_SCALE: str(time_scale), "PYTHONUNBUFFERED": "1"}
    if lab_dir is not None:
        env["VCWAVE_LAB_DIR"] = str(Path(lab_dir).resolve())
    if forked():  # the installer stand-in forked from the same warm server as the commands (lab/warm_relay.py)
        from lab.warmcli import WarmCli
        env[ENV_WARM_SOCKET] = WarmCli.shared().sock
    env.update(extra)
    return env


def fast_argv(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "lab.harness", "invoke", *args]


def invoke_argv(args: list[str]) -> list[str]:
    """The plain production CLI (no tuning): for commands that poll nothing (refusals, plan, status)."""
    return [sys.executable, "-m", "invoke", *INVOKE_CORE, *args]


def forked() -> bool:
    """Tuned commands are forked from a warm process (lab/warmcli.py) unless VCWAVE_HARNESS_FORK=0."""
    return os.environ.get(ENV_FORK, "1") != "0"


def python_argv(*args: str) -> list[str]:
    """`python -c CODE ARGS` (a test's lock holder, a racer): a fork of the server this process
    shares with its children (a test session's), through lab/warm_relay.py, else a fresh interpreter. Why: such a
    helper spent ~0.2 s of CPU importing vcwave for a few milliseconds of work. Still a process of its own: its own
    pid, locks, exit status and signals (the relay passes SIGTERM/SIGINT/SIGHUP on; a relay killed outright takes
    the program with it)."""
    from lab import warmcli
    sock = os.environ.get(warmcli.SHARED_ENV)
    return warmcli.relay_argv(sock, warmcli.PYTHON, args) if sock and forked() else [sys.executable, *args]


def run_cli(args: list[str], cwd: str | Path, env: dict[str, str], *, fast: bool = True,
            timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess:
    if fast and forked():
        from lab import warmcli
        return warmcli.run(["invoke", *args], cwd, env, timeout)
    return subprocess.run(fast_argv(args) if fast else invoke_argv(args), cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def spawn(args: list[str], cwd: str | Path, env: dict[str, str]) -> Any:
    """A tuned command started in its own session (a Popen, or its warm twin), stdout discarded, stderr kept."""
    if forked():
        from lab import warmcli
        return warmcli.WarmCli.shared().spawn(["invoke", *args], cwd, env, capture_stdout=False)
    return subprocess.Popen(fast_argv(args), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


@dataclass(frozen=True)
class Cmd:
    name: str
    args: tuple[str, ...]
    breakable: bool = True  # takes --break-stale-lock (a changing command holding the domain lock)
    may_fail: bool = False  # the bad day's vCenter wave: its failure is the scenario, not a harness error
    deploy_for_restore: bool = False  # not vcwave: the administrator deploys a fresh appliance in restore
    # mode for every node (VMware's installer, Restore stage 1), what a file restore needs (lab control API)


def deploy_for_restore(lab_dir: str | Path, before: dict) -> None:
    """Every node replaced by a freshly deployed appliance in restore mode at the version it ran before
    anything started (the file-restore bad day's rollback restores every node)."""
    from lab import manage
    for name, node in sorted(before["nodes"].items()):
        manage.control(lab_dir, f"/lab/node/{name}/restore-mode", {"version": node["version"]})


def sequence(lab_inventory: str, workdir: Path, target: str, installer: str, rollback: bool = False,
             restore: str = "snapshot-set") -> list[Cmd]:
    """The rehearsal's commands (lab/rehearse.py), as an administrator types them; with `rollback`, the bad
    day: the vCenter wave fails (ROLLBACK_FAULTS) and the domain is rolled back - from the cold snapshot
    set, or (`restore="file"`: file backups only) by file restores onto freshly deployed appliances."""
    common = ("--inventory", lab_inventory, "--plan", str(workdir / "plan.json"), "--state-dir",
              str(workdir / "state"))
    if rollback:
        head = sequence(lab_inventory, workdir, target, installer)[:5]
        if restore == "file":
            head[2] = replace(head[2], args=tuple(a for a in head[2].args if a != "--snapshots"))
        deploy = [Cmd("deploy for restore", (), False, deploy_for_restore=True)] if restore == "file" else []
        return head + [Cmd("upgrade vcenter", ("upgrade", "--wave", "vcenter", *common, "--installer", installer),
                           may_fail=True), *deploy,
                       Cmd("rollback", ("rollback", *common))]
    return [
        Cmd("plan", ("plan", "--inventory", lab_inventory, "--target", target, "--out", str(workdir / "plan.json")),
            False),
        Cmd("precheck", ("precheck", *common, "--installer", installer), False),
        Cmd("backup pre", ("backup", "--phase", "pre", "--snapshots", *common)),
        Cmd("stage", ("stage", *common)),
        Cmd("upgrade psc", ("upgrade", "--wave", "psc", *common, "--installer", installer)),
        Cmd("upgrade vcenter", ("upgrade", "--wave", "vcenter", *common, "--installer", installer)),
        Cmd("verify", ("verify", *common)),
        Cmd("backup post", ("backup", "--phase", "post", *common)),
    ]


# ----------------------------------------------------------------------------------------------- journal
def journal_file(workdir: Path, domain: str = "vsphere.local") -> Path:
    return Path(workdir) / "state" / domain / "journal.sqlite"


class JournalWatch:
    """Reads the journal from outside, read-only (never through vcwave's code), while a command writes it."""

    BOUNDARY = ("kind = 'step' AND (status = 'succeeded' OR (status = 'started' AND "
                "json_extract(data, '$.progress') IS NULL))")
    MID = "kind = 'step' AND status = 'started' AND json_extract(data, '$.progress') IS NOT NULL"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    def _c(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists():
                return None
            try:
                self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2.0)
            except sqlite3.Error:
                return None
        return self._conn

    def query(self, where: str, since: int = 0) -> int:
        c = self._c()
        if c is None:
            return 0
        try:
            return c.execute(f"SELECT count(*) FROM events WHERE seq > ? AND {where}", (since,)).fetchone()[0]
        except sqlite3.Error:
            self.close()
            return 0

    def max_seq(self) -> int:
        c = self._c()
        if c is None:
            return 0
        try:
            return c.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        except sqlite3.Error:
            self.close()
            return 0

    def boundaries(self, since: int = 0) -> int:
        return self.query(self.BOUNDARY, since)

    def mids(self, since: int = 0) -> int:
        return self.query(self.MID, since)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# ----------------------------------------------------------------------------------------------- crash points
@dataclass(frozen=True)
class CrashPoint:
    cmd: int          # index into sequence()
    cmd_name: str
    kind: str         # boundary | mid | after:<record> | lab:<event> | reboot | random (lab/kills.py)
    n: int            # the n-th such event of that command triggers the kill
    at: float = 0.0   # reboot: the fraction of the reboot; random: seconds after the command started

    @property
    def label(self) -> str:
        return f"{self.cmd_name} #{self.n} {self.kind}" + (f" @{self.at:g}" if self.at else "")


@dataclass
class PointResult:
    point: CrashPoint
    hit: bool = False
    ok: bool = False
    missed: bool = False  # the moment never came (a random time after the command ended, a reboot already over)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    killed_at: str = ""
    in_reboot: str = ""  # the node whose install reboot the kill landed in ("" when none)
    installs: dict[str, int] = field(default_factory=dict)  # installs started per node, per the lab's record

    def line(self) -> str:
        state = "survived" if self.ok else "missed" if self.missed else "FAILED"
        more = "" if self.ok else ": " + "; ".join(self.problems)
        return f"  {self.point.label:<40} {state:<8} ({self.seconds:5.1f}s) {self.killed_at}{more}"


@dataclass
class HarnessResult:
    inventory: str
    target: str
    points: list[PointResult] = field(default_factory=list)
    enumerated: int = 0
    name: str = ""
    clean_problems: list[str] = field(default_factory=list)  # the uninterrupted run already breaks the checks
    seconds: float = 0.0  # wall time of the whole sweep (clean run included)

    @property
    def survived(self) -> int:
        return sum(1 for p in self.points if p.ok)

    @property
    def total(self) -> int:
        """Points whose moment came (a missed point says nothing about vcwave, and is reported apart)."""
        return sum(1 for p in self.points if not p.missed)

    @property
    def missed(self) -> int:
        return sum(1 for p in self.points if p.missed)

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.survived == self.total and not self.clean_problems

    def by_kind(self) -> dict[str, str]:
        """survived/total per kind of point (lab:<event> and after:<record> kept apart: they are the figures)."""
        kinds = sorted({p.point.kind for p in self.points})
        return {k: f"{sum(p.ok for p in self.points if p.point.kind == k)}/"
                   f"{sum(not p.missed for p in self.points if p.point.kind == k)}" for k in kinds}

    def figure(self) -> str:
        return f"{self.survived}/{self.total}" + (f" ({self.missed} missed)" if self.missed else "")

    @property
    def hit(self) -> int:
        return sum(1 for p in self.points if p.hit)

    @property
    def in_reboot(self) -> int:
        return sum(1 for p in self.points if p.hit and p.in_reboot)

    def installs(self) -> str:
        """Installs per node per the lab's record, over every point hit: `psc-a 1` when each point left one."""
        seen: dict[str, set[int]] = collections.defaultdict(set)
        for p in self.points:
            for node, n in p.installs.items():
                seen[node].add(n)
        return ", ".join(f"{node} {min(v)}" + (f"-{max(v)}" if max(v) != min(v) else "")
                         for node, v in sorted(seen.items())) or "none recorded"

    def figures(self) -> dict[str, str]:
        """What `bench.faults` prints per sweep (issue 14): the points hit, how many landed inside a reboot,
        whether every re-run converged, the installs per node per the lab's record, the wall time."""
        return {"kill points hit": f"{self.hit} of {len(self.points)} ({self.missed} missed)",
                "inside a reboot": str(self.in_reboot),
                "every re-run converged": f"{'yes' if self.ok else 'no'} ({self.figure()})",
                "installs per node (lab record)": self.installs(),
                "wall time": f"{self.seconds:.0f} s"}

    def summary(self) -> str:
        lines = [f"crash points {self.name + ' ' if self.name else ''}on {self.inventory} -> {self.target} "
                 f"({len(self.points)} of {self.enumerated} enumerated)"]
        if self.clean_problems:
            lines.append("the clean run (no kill) already FAILS the checks: " + "; ".join(self.clean_problems))
        lines += [p.line() for p in self.points]
        lines.append("by kind: " + ", ".join(f"{k} {v}" for k, v in self.by_kind().items()))
        lines += [f"{k}: {v}" for k, v in self.figures().items()]
        return "\n".join(lines)


def lab_versions(lab_dir: str | Path) -> dict[str, str]:
    """{node: release} as the lab twin runs them (its control API, not vcwave's view)."""
    from lab import manage
    st = manage.control(lab_dir, "/lab/state")
    return {n: d["version"] for n, d in st["nodes"].items()}


_lab_versions = lab_versions


@contextlib.contextmanager
def _lab(inventory: str, lab_dir: Path, time_scale: float, faults: str | None = None):
    from lab import manage
    with manage.running(inventory, lab_dir, time_scale=time_scale, faults=faults, warm=forked()) as info:
        yield info


def _faults_file(workdir: Path, sw: "Sweep") -> str | None:
    """The sweep's fault spec (the rollback's failing vCenter install, slowed nodes), written beside its run
    (the lab reads a file)."""
    entries = (ROLLBACK_FAULTS["faults"] if sw.rollback else []) + list(sw.faults)
    if not entries:
        return None
    path = workdir / "faults.yml"
    path.write_text(dump_plain({"seed": sw.seed, "faults": entries}))
    return str(path)


def _reached(point: CrashPoint, watch: JournalWatch, base_seq: int, lab: kills.LabWatch, lab_base: int,
             started: float) -> tuple[bool, float]:
    """Has the point's moment come? (and how long to pause before asking again)"""
    if point.kind == "boundary":
        return watch.boundaries(base_seq) >= point.n, 0.003
    if point.kind == "mid":
        return watch.mids(base_seq) >= point.n, 0.003
    entries = [] if point.kind == kills.RANDOM else lab.poll(lab_base)
    when = kills.kill_time(point.kind, point.n, point.at, entries, started)
    return when is not None and time.time() >= when, LAB_POLL


def _run_killed(cmd: Cmd, cwd: Path, env: dict[str, str], watch: JournalWatch, point: CrashPoint,
                lab_dir: Path, timeout: float = CMD_TIMEOUT) -> tuple[bool, Any, str, str]:
    """Run cmd; SIGKILL its process group when the point's moment comes. (killed?, proc, what, the node
    whose install reboot the kill landed in or "")."""
    base_seq = watch.max_seq()
    lab = kills.LabWatch(lab_dir)
    lab_base = lab.seq()
    if point.kind.startswith("after:"):
        env = {**env, ENV_KILL_AFTER: f"{point.kind[6:]}:{point.n}"}
    proc = spawn(list(cmd.args), cwd, env)
    started = time.time()
    deadline = time.monotonic() + timeout
    if point.kind.startswith("after:"):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False, proc, "timeout", ""
        if proc.returncode == -signal.SIGKILL:
            return (True, proc, f"killed itself at journal seq {watch.max_seq()}",
                    kills.in_any_reboot(lab.poll(lab_base), time.time()))
        return False, proc, f"exited {proc.returncode} before the point", ""
    try:
        while proc.poll() is None:
            reached, pause = _reached(point, watch, base_seq, lab, lab_base, started)
            if reached:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                killed_at = time.time()
                proc.wait()
                lab.poll(lab_base)  # the record up to the kill (a random point never read it)
                return _landed(point, lab, killed_at, f"killed at journal seq {watch.max_seq()}", proc)
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return False, proc, "timeout", ""
            time.sleep(pause)
    finally:
        watch.close()
    return False, proc, f"exited {proc.returncode} before the point", ""


def _landed(point: CrashPoint, lab: kills.LabWatch, killed_at: float, what: str,
            proc: Any) -> tuple[bool, Any, str, str]:
    """A reboot point counts only when the kill landed inside the reboot (said either way); any point may
    land inside one."""
    inside = kills.in_any_reboot(lab.entries, killed_at)
    if point.kind != kills.REBOOT:
        return True, proc, what + (f", inside {inside}'s reboot" if inside else ""), inside
    rb = kills.reboots(lab.entries)[point.n - 1]
    if kills.landed_in_reboot(lab.entries, point.n, killed_at):
        return (True, proc, f"{what}, {killed_at - rb['t']:.2f}s into {rb['node']}'s {rb['seconds']:.2f}s reboot",
                inside)
    return False, proc, f"{what}: {rb['node']}'s reboot was over before the kill landed", ""


# Read-only steps an administrator may run again on purpose (`invoke precheck` re-runs every precheck: the
# window opens only after a recent one), so a second success after a resumed precheck is no repeated change.
REPEATABLE = frozenset({"precheck"})


def check_domain(lab_dir: Path, workdir: Path, lab_inventory: str, target: str) -> list[str]:
    """What must hold after any crash + resume of the upgrade; returns the problems (empty = fine)."""
    from orchestrator.core.history import fold
    from orchestrator.core.inventory import load_inventory
    from orchestrator.engine.journal import Journal, JournalCorrupt

    problems: list[str] = []
    inv = load_inventory(lab_inventory)
    path = journal_file(workdir, inv.domain)
    if not path.exists():
        return [f"no journal at {path}"]
    try:
        j = Journal.open(path)
    except JournalCorrupt as exc:
        return [f"journal corrupt: {exc}"]
    try:
        events = j.events()
    finally:
        j.close()
    hist = fold(inv, events)
    for n in inv.nodes:
        h = hist.nodes[n.name]
        if h.upgraded != 1:
            problems.append(f"{n.name} upgraded {h.upgraded} times (journal)")
        if h.version.release != target:
            problems.append(f"{n.name} at {h.version.release} in the journal, not {target}")
        if h.verified_at != target:
            problems.append(f"{n.name} not verified at {target} (verified_at {h.verified_at!r})")
    dup = collections.Counter((e.step, e.node) for e in events if e.kind == "backup")
    problems += [f"backup of {node} recorded {c} times for step {step}" for (step, node), c in dup.items() if c > 1]
    ids = collections.Counter((e.node, e.data.get("backup_id")) for e in events if e.kind == "backup")
    problems += [f"backup id {bid} of {node} recorded {c} times" for (node, bid), c in ids.items() if c > 1]
    problems += changes_repeated(events)
    if hist.running_steps:
        problems.append(f"steps left started: {', '.join(hist.running_steps)}")
    return problems + _lab_problems(lab_dir, {n.name: target for n in inv.nodes}, installs=True)


def changes_repeated(events: Iterable[Any]) -> list[str]:
    """Steps that changed the domain and succeeded more than once (a crash made vcwave redo finished work);
    a read-only step run again on purpose (REPEATABLE) is not one."""
    succeeded: collections.Counter = collections.Counter()
    for e in events:
        if e.kind == "step" and e.action not in REPEATABLE and (
                e.status == "succeeded" or (e.status == "reconciled" and e.data.get("outcome") == "succeeded")):
            succeeded[(e.node, e.step)] += 1
    return [f"step {step} on {node} succeeded {c} times" for (node, step), c in succeeded.items() if c > 1]


def check_rollback(lab_dir: Path, before: dict) -> list[str]:
    """After the bad day's rollback: every node answering at the version and with the instance UUID it had
    before anything started, only its own VM powered on (judged from the lab alone)."""
    return _lab_problems(lab_dir, {n: d["version"] for n, d in before["nodes"].items()},
                         uuids={n: d["instance_uuid"] for n, d in before["nodes"].items()})


def _lab_problems(lab_dir: Path, versions: dict[str, str], *, installs: bool = False,
                  uuids: dict[str, str] | None = None) -> list[str]:
    lab = kills.LabWatch(lab_dir)
    try:
        problems = kills.whole(lab.state(), versions, uuids)
        return problems + (kills.installed_once(lab.counts(), versions) if installs else [])
    except OSError as exc:
        return [f"lab unreachable: {exc}"]


def _standin(target: str) -> str:
    from lab.installer_standin import standin_path
    return str(standin_path(target))


RECORD_KINDS = ("backup", "source_appliance")


@dataclass(frozen=True)
class Sweep:
    """What a sweep runs and where it aims: the inventory's sequence (or the bad day's, `rollback`), the lab's
    clock, which kinds of point (None = all), `randoms` seeded random moments per command, and lab faults
    (e.g. `slow` on one node: its install, reboot included, lasts longer, in real proportions, while the rest
    of the domain keeps the fast clock)."""

    inventory: str
    target: str
    time_scale: float = DEFAULT_SCALE
    rollback: bool = False
    kinds: frozenset[str] | None = None
    mid_job: bool = True
    seed: int = 0
    randoms: int = 1
    faults: tuple[dict, ...] = ()
    restore: str = "snapshot-set"  # the rollback's way back: snapshot-set, or file (restores, see sequence())

    def wants(self, p: CrashPoint) -> bool:
        if not self.mid_job and p.kind not in ("boundary",) and not p.kind.startswith("after:"):
            return False
        return self.kinds is None or p.kind in self.kinds or p.kind.split(":")[0] in self.kinds


def enumerate_points(inventory: str, target: str, workdir: Path, *, mid_job: bool = True,
                     records_too: bool = True, time_scale: float = DEFAULT_SCALE,
                     sweep: Sweep | None = None) -> tuple[list[CrashPoint], list[str]]:
    """A clean run of the sequence; counts each command's boundaries / mid-job events / lab events.

    The run starts from an empty workdir: a plan and journal left by an earlier sweep would make every
    command "already done" and leave nothing to count (a second `invoke bench.faults` once reported 0/0)."""
    sw = sweep or Sweep(inventory, target, time_scale, mid_job=mid_job)
    wd = Path(workdir)
    if wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True)
    lab_dir = wd / "lab"
    points: list[CrashPoint] = []
    rng = random.Random(sw.seed)
    with _lab(sw.inventory, lab_dir, sw.time_scale, _faults_file(wd, sw)) as info:
        env = cli_env(lab_dir, sw.time_scale)
        cmds = sequence(info["inventory"], wd, sw.target, _standin(sw.target), sw.rollback, sw.restore)
        watch = JournalWatch(journal_file(wd))
        before = kills.LabWatch(lab_dir).state()
        for i, cmd in enumerate(cmds):
            if cmd.deploy_for_restore:
                deploy_for_restore(lab_dir, before)
                continue
            base, lab = watch.max_seq(), kills.LabWatch(lab_dir)
            lab_base, t0 = lab.seq(), time.monotonic()
            r = run_cli(list(cmd.args), wd, env)
            if r.returncode != 0 and not cmd.may_fail:
                raise RuntimeError(f"clean run: {cmd.name} exited {r.returncode}:\n{r.stderr[-2000:]}")
            seconds = time.monotonic() - t0
            b, m = watch.boundaries(base), watch.mids(base)
            records = {kind: watch.query(f"kind = '{kind}'", base) for kind in RECORD_KINDS}
            watch.close()
            if sw.rollback and cmd.name != "rollback":
                continue  # the bad day's points are in its rollback
            found = [CrashPoint(i, cmd.name, "boundary", n) for n in range(1, b + 1)]
            found += [CrashPoint(i, cmd.name, "mid", n) for n in range(1, m + 1)]
            if records_too:
                for kind, count in records.items():
                    found += [CrashPoint(i, cmd.name, f"after:{kind}", n) for n in range(1, count + 1)]
            found += [CrashPoint(i, cmd.name, k, n, at)
                      for k, n, at in kills.lab_points(lab.poll(lab_base), seconds, rng, sw.randoms)]
            points += [p for p in found if sw.wants(p)]
        problems = _check(sw, lab_dir, wd, info["inventory"], before)
    return points, problems


def _check(sw: Sweep, lab_dir: Path, wd: Path, lab_inventory: str, before: dict) -> list[str]:
    return check_rollback(lab_dir, before) if sw.rollback else check_domain(lab_dir, wd, lab_inventory, sw.target)


def run_point(inventory: str, target: str, workdir: Path, point: CrashPoint, *,
              time_scale: float = DEFAULT_SCALE, sweep: Sweep | None = None) -> PointResult:
    """One crash point on a fresh lab: run the sequence, kill at the point, resume, check."""
    sw = sweep or Sweep(inventory, target, time_scale)
    res = PointResult(point)
    t0 = time.monotonic()
    wd = Path(workdir)
    if wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True)
    lab_dir = wd / "lab"
    try:
        with _lab(sw.inventory, lab_dir, sw.time_scale, _faults_file(wd, sw)) as info:
            env = cli_env(lab_dir, sw.time_scale)
            cmds = sequence(info["inventory"], wd, sw.target, _standin(sw.target), sw.rollback, sw.restore)
            watch = JournalWatch(journal_file(wd))
            before = kills.LabWatch(lab_dir).state()
            for i, cmd in enumerate(cmds):
                if cmd.deploy_for_restore:
                    deploy_for_restore(lab_dir, before)
                    continue
                if i == point.cmd:
                    killed, proc, what, res.in_reboot = _run_killed(cmd, wd, env, watch, point, lab_dir)
                    res.hit, res.killed_at = killed, what
                    if not killed:
                        res.missed = point.kind in (kills.REBOOT, kills.RANDOM) and "timeout" not in what
                        res.problems.append(f"crash point not reached ({what}): "
                                            f"{(proc.stderr.read() if proc.stderr else '')[-500:]}")
                    if proc.stderr:
                        proc.stderr.close()
                    args = list(cmd.args) + (["--break-stale-lock"] if cmd.breakable else [])
                    r = run_cli(args, wd, env)
                    if r.returncode != 0 and not cmd.may_fail:
                        res.problems.append(f"resume of `{cmd.name}` exited {r.returncode}: "
                                            f"{_last_lines(r.stderr + r.stdout)}")
                        break
                    continue
                r = run_cli(list(cmd.args), wd, env)
                if r.returncode != 0 and not cmd.may_fail:
                    res.problems.append(f"`{cmd.name}` after the crash exited {r.returncode}: "
                                        f"{_last_lines(r.stderr + r.stdout)}")
                    break
            res.problems += _check(sw, lab_dir, wd, info["inventory"], before)
            res.installs = kills.installs(kills.LabWatch(lab_dir).counts(), before["nodes"])
    except Exception as exc:  # noqa: BLE001 - a harness error is a failed point, reported
        res.problems.append(f"harness error: {type(exc).__name__}: {exc}")
    res.ok = res.hit and not res.problems
    res.seconds = time.monotonic() - t0
    return res


def _last_lines(text: str, n: int = 6) -> str:
    keep = [l for l in text.splitlines() if l.strip() and "[info" not in l and "[debug" not in l]
    return " | ".join(keep[-n:])[-1500:]


def spread(points: list[CrashPoint], limit: int | None) -> list[CrashPoint]:
    """`limit` points spread over the list, keeping every kind represented when possible."""
    if limit is None or limit >= len(points):
        return list(points)
    if limit <= 0:
        return []
    step = len(points) / limit
    chosen = [points[int(i * step)] for i in range(limit)]
    slot = len(chosen) - 1
    for kind in ("mid", kills.REBOOT, "lab:install_started", "lab:power_on", "after:backup", kills.RANDOM):
        cands = [p for p in points if p.kind == kind]
        if cands and slot > 0 and not any(p.kind == kind for p in chosen):
            chosen[slot] = cands[len(cands) // 2]
            slot -= 1
    return chosen


def crash_points(inventory: str | Path, target: str, workdir: str | Path, *, limit: int | None = None,
                 mid_job: bool = True, points: Iterable[CrashPoint] | None = None, workers: int = 2,
                 time_scale: float = DEFAULT_SCALE, say: Callable[[str], None] | None = None,
                 rollback: bool = False, kinds: Iterable[str] | None = None, seed: int = 0,
                 randoms: int = 1, name: str = "", faults: Iterable[dict] = (),
                 restore: str = "snapshot-set") -> HarnessResult:
    """Kill the rehearsal's commands at each crash point, resume, check; see the module docstring."""
    t0 = time.monotonic()
    wd = Path(workdir).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    sw = Sweep(str(Path(inventory).resolve()), target, time_scale, rollback,
               frozenset(kinds) if kinds is not None else None, mid_job, seed, randoms, tuple(faults), restore)
    if points is not None:  # given points: no enumerating clean run (CI keeps it short)
        enumerated = chosen = list(points)
    else:
        enumerated, clean = enumerate_points(sw.inventory, target, wd / "clean", sweep=sw)
        chosen = spread(enumerated, limit)
    # A clean run that already fails is reported, not raised: the points still say what a kill adds.
    result = HarnessResult(sw.inventory, target, enumerated=len(enumerated), name=name,
                           clean_problems=clean if points is None else [])

    def one(ix_point: tuple[int, CrashPoint]) -> PointResult:
        ix, p = ix_point
        r = run_point(sw.inventory, target, wd / f"point-{ix:03d}", p, sweep=sw)
        if say:
            say(r.line())
        if r.ok:
            shutil.rmtree(wd / f"point-{ix:03d}", ignore_errors=True)
        return r

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        result.points = list(pool.map(one, enumerate(chosen)))
    result.seconds = time.monotonic() - t0
    return result


# ----------------------------------------------------------------------------------------------- transient
def transient_spec(probability: float = 0.2, seed: int = 7) -> dict[str, Any]:
    """~probability of the calls hit a fault, in the proportions of examples/faults/transient.yml: half answer
    503, a quarter lose their connection, and every session expires after 25 calls (~4 %, the rest)."""
    return {"seed": seed, "faults": [
        {"type": "http_503", "node": "*", "probability": round(probability * 0.5, 4)},
        {"type": "reset", "node": "*", "probability": round(probability * 0.25, 4)},
        {"type": "expire_sessions", "node": "*", "after_calls": 25},
    ]}


def transient(inventory: str | Path, workdir: str | Path, probability: float = 0.2, *, target: str | None = None,
              time_scale: float = DEFAULT_SCALE, seed: int = 7, say: Callable[[str], None] = lambda s: None) -> int:
    """A full rehearsal under transient faults; raises unless it upgraded the domain. Returns the retries."""
    from lab.rehearse import Rehearsal, default_target
    from orchestrator.clients import retry

    wd = Path(workdir).resolve()
    if wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True)
    faults = wd / "faults.yml"
    faults.write_text(dump_plain(transient_spec(probability, seed)))
    tgt = target or default_target(inventory)
    before = retry.retry_count()
    r = Rehearsal(str(inventory), tgt, wd, time_scale, str(faults), say=say)
    summary = r.run()
    retries = retry.retry_count() - before
    if r.rolled_back or r.failed or "outcome: upgraded" not in summary:
        raise RuntimeError(f"the rehearsal under transient faults did not complete: {r.failed}\n{summary}")
    return retries


# ----------------------------------------------------------------------------------------------- CLI
def sweeps(limit: int | None = None) -> list[dict[str, Any]]:
    """The kill sweeps of `bench.faults`: every point of the update and installer paths at the usual clock,
    inside reboots (and at seeded random moments) at a clock where a reboot lasts seconds, and in the bad
    day's rollback, from the cold snapshot set and by file restores."""
    ex = ROOT / "examples"
    return [
        {"name": "update", "inventory": ex / "two-site.yml", "target": "6.7 U3", "limit": limit},
        {"name": "installer", "inventory": ex / "two-site-6.0.yml", "target": "6.5 U1", "limit": limit},
        {"name": "reboots", "inventory": ex / "two-site.yml", "target": "6.7 U3", "time_scale": REBOOT_SCALE,
         "kinds": (kills.REBOOT, kills.RANDOM), "randoms": 1, "seed": 14, "limit": limit},
        {"name": "long reboots", "inventory": ex / "two-site.yml", "target": "6.7 U3", "faults": SLOW_REBOOTS,
         "kinds": (kills.REBOOT,), "seed": 14, "limit": limit},
        {"name": "rollback", "inventory": ex / "two-site.yml", "target": "6.7 U3", "rollback": True,
         "randoms": 2, "seed": 14, "limit": limit},
        {"name": "file restore", "inventory": ex / "two-site.yml", "target": "6.7 U3", "rollback": True,
         "restore": "file", "randoms": 2, "seed": 14, "limit": limit},
    ]


def main_report(limit: int | None = None, as_json: bool = False, workdir: str | Path = ".vcwave/harness",
                only: Iterable[str] | None = None) -> str:
    """`invoke bench.faults`: the kill sweeps (sweeps()), transient faults at 20 %, and the bad-inputs corpus;
    `only` names some sweeps (then nothing else runs: on two shared cores one sweep at a time is what a
    session can afford). Raises (non-zero exit) when any of them fails; prints the figures, per sweep and
    per kind of point."""
    from lab.badinputs import bad_inputs
    from orchestrator.errors import InputError, StepFailed
    wd = Path(workdir)
    chosen = [sw for sw in sweeps(limit) if only is None or sw["name"] in set(only)]
    unknown = sorted(set(only or ()) - {sw["name"] for sw in sweeps()})
    if unknown:
        raise InputError(f"--sweep: no sweep named {', '.join(unknown)} (the sweeps: "
                         f"{', '.join(sw['name'] for sw in sweeps())})")
    crash = {}
    for sw in chosen:
        name = sw.pop("name")
        crash[name] = crash_points(sw.pop("inventory"), sw.pop("target"), wd / f"crash-{name}", say=print,
                                   name=name, **sw)
        print(crash[name].summary(), flush=True)
    figures = {}
    for k, r in crash.items():
        figures[f"sweep {k}"] = "the clean run already FAILS the checks" if r.clean_problems else "clean run ok"
        figures.update({f"  {k}: {what}": v for what, v in r.figures().items()})
        figures.update({f"  {k}: {kind}": v for kind, v in r.by_kind().items()})
    bad = None
    if only is None:
        figures["transient faults at 20 %: rehearsal completed, retries"] = str(
            transient(ROOT / "examples" / "two-site.yml", wd / "transient", 0.2))
        bad = bad_inputs(wd / "bad")
        figures["bad inputs refused (exit 2, nothing changed)"] = (f"{sum(c.ok for c in bad.results)}/"
                                                                   f"{len(bad.results)}")
    text = json.dumps(figures, indent=1) if as_json else "\n".join(
        ([bad.table()] if bad else []) + [f"{k}: {v}" for k, v in figures.items()])
    if not (all(r.ok for r in crash.values()) and (bad is None or bad.ok)):
        raise StepFailed(text)
    return text


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["invoke"]:
        _fast_invoke(argv[1:])
        return 0
    ap = argparse.ArgumentParser(prog="python -m lab.harness")
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("crash")
    c.add_argument("--inventory", default=str(ROOT / "examples" / "two-site.yml"))
    c.add_argument("--target", default="6.7 U3")
    c.add_argument("--limit", type=int)
    c.add_argument("--no-mid-job", action="store_true")
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--workdir", default=".vcwave/harness/crash")
    c.add_argument("--time-scale", type=float, default=DEFAULT_SCALE,
                   help=f"the lab's clock ({REBOOT_SCALE}: an install's reboot lasts seconds)")
    c.add_argument("--rollback", action="store_true", help="the bad day: kill points in the rollback")
    c.add_argument("--kinds", help="comma-separated kinds of point (boundary,mid,after,lab,reboot,random)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--slow-reboots", action="store_true", help="psc-a's and vc-b's installs 24x slower (10.8 s reboots)")
    t = sub.add_parser("transient")
    t.add_argument("--inventory", default=str(ROOT / "examples" / "two-site.yml"))
    t.add_argument("--probability", type=float, default=0.2)
    t.add_argument("--workdir", default=".vcwave/harness/transient")
    b = sub.add_parser("bad")
    b.add_argument("--workdir", default=".vcwave/harness/bad")
    a = ap.parse_args(argv)
    if a.what == "crash":
        res = crash_points(a.inventory, a.target, a.workdir, limit=a.limit, mid_job=not a.no_mid_job,
                           workers=a.workers, say=print, time_scale=a.time_scale, rollback=a.rollback,
                           kinds=a.kinds.split(",") if a.kinds else None, seed=a.seed,
                           faults=SLOW_REBOOTS if a.slow_reboots else ())
        print(res.summary())
        return 0 if res.ok else 1
    if a.what == "transient":
        print(f"retries: {transient(a.inventory, a.workdir, a.probability)}")
        return 0
    from lab.badinputs import bad_inputs
    res = bad_inputs(a.workdir)
    print(res.table())
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())

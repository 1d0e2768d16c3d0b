"""Robustness harness for vcwave against the lab twin: crash points, transient faults, bad inputs.

Three tools, each driving vcwave the way an administrator does — real `invoke` commands in subprocesses —
and judging the outcome from outside (the journal opened read-only, the lab's `/lab/state`, its daemon log):

* :func:`crash_points` — the rehearsal's command sequence, SIGKILLed at every step boundary (a `started`
  or `succeeded` step event appears in the journal) and mid-job (a `started` event carrying a job id /
  install / installer progress; for the installer path also while the lab is *inside* the install), then
  resumed with the same command (`--break-stale-lock`: a SIGKILLed holder leaves its lock behind, and the
  lock never steals silently) and the rest of the sequence. Each point must end with every node upgraded
  exactly once, every backup recorded once, a journal that opens cleanly, and the domain at target, verified.
* :func:`transient` — a rehearsal with 503s, connection resets and session expiry on ~20 % of the calls;
  it must still complete; returns the number of retries.
* :func:`bad_inputs` — the corpus in tests/harness/bad/ (cases.yml): every bad inventory, playbook, plan,
  flag, credential and journal must be refused with exit 2, a message naming the file/field/node, and
  nothing changed (lab versions and journal event count identical).

Commands run through ``python -m lab.harness invoke ARGS`` = ``invoke -r <repo> ARGS`` with one tuning:
the engine's poll interval / job deadlines are scaled for the lab (the CLI has no flag for them; the
production default polls every 2 s, which would make a lab job of 0.3 s cost seconds). Everything else —
argument parsing, the `_cli` error mapping, exit codes, the commands — is the production path. Each such
command is a real process in its own session, forked from a warm process that has imported vcwave once
(lab/warmcli.py: a fresh interpreter spends ~0.6 s of CPU on imports; VCWAVE_HARNESS_FORK=0 turns it off).

CLI: ``python -m lab.harness crash [--inventory F] [--target T] [--limit N] [--no-mid-job] [--workdir D]``,
``python -m lab.harness transient ...``, ``python -m lab.harness bad [--workdir D]``.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shlex
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
BAD_DIR = ROOT / "tests" / "harness" / "bad"
ENV_POLL = "VCWAVE_HARNESS_POLL"
ENV_DEADLINE = "VCWAVE_HARNESS_DEADLINE_SCALE"
ENV_FORK = "VCWAVE_HARNESS_FORK"  # "0": every tuned command a fresh interpreter (see lab/warmcli.py)
ENV_KILL_AFTER = "VCWAVE_HARNESS_KILL_AFTER"  # "KIND:N": SIGKILL ourselves right after the N-th KIND event
DEFAULT_SCALE = 0.0005
DEFAULT_POLL = 0.02
CMD_TIMEOUT = 180.0


# ----------------------------------------------------------------------------------------------- commands
def _fast_invoke(argv: list[str]) -> None:
    """`invoke -r ROOT argv` in this process, with the engine's polling scaled for the lab (see module doc)."""
    from orchestrator.commands import session

    poll = float(os.environ.get(ENV_POLL, DEFAULT_POLL))
    scale = float(os.environ.get(ENV_DEADLINE, 0.01))
    original = session.CommonFlags.options

    def options(self):  # type: ignore[no-untyped-def]
        return original(replace(self, poll_interval=poll, deadline_scale=scale))

    session.CommonFlags.options = options
    if os.environ.get(ENV_KILL_AFTER):
        _kill_after(os.environ[ENV_KILL_AFTER])
    from invoke.main import program
    program.run(["invoke", "-r", str(ROOT), *argv])


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


def cli_env(lab_dir: str | Path | None = None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
           ENV_POLL: str(DEFAULT_POLL), "PYTHONUNBUFFERED": "1"}
    if lab_dir is not None:
        env["VCWAVE_LAB_DIR"] = str(Path(lab_dir).resolve())
    env.update(extra)
    return env


def fast_argv(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "lab.harness", "invoke", *args]


def invoke_argv(args: list[str]) -> list[str]:
    """The plain production CLI (no tuning): for commands that poll nothing (refusals, plan, status)."""
    return [sys.executable, "-m", "invoke", "-r", str(ROOT), *args]


def forked() -> bool:
    """Tuned commands are forked from a warm process (lab/warmcli.py) unless VCWAVE_HARNESS_FORK=0."""
    return os.environ.get(ENV_FORK, "1") != "0"


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


def sequence(lab_inventory: str, workdir: Path, target: str, installer: str) -> list[Cmd]:
    """The rehearsal's commands (lab/rehearse.py), as an administrator types them."""
    common = ("--inventory", lab_inventory, "--plan", str(workdir / "plan.json"), "--state-dir",
              str(workdir / "state"))
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


def installs_started(lab_dir: Path) -> int:
    """How many installer upgrades the lab has begun (its daemon log), i.e. install jobs in flight or done."""
    p = Path(lab_dir) / "daemon.log"
    try:
        return len(re.findall(r"installer: upgrading ", p.read_text(errors="replace")))
    except FileNotFoundError:
        return 0


def installs_per_node(lab_dir: Path) -> dict[str, int]:
    p = Path(lab_dir) / "daemon.log"
    try:
        return dict(collections.Counter(re.findall(r"installer: upgrading (\S+) ", p.read_text(errors="replace"))))
    except FileNotFoundError:
        return {}


# ----------------------------------------------------------------------------------------------- crash points
@dataclass(frozen=True)
class CrashPoint:
    cmd: int          # index into sequence()
    cmd_name: str
    kind: str         # boundary | mid | install | after:backup | after:source_appliance
    n: int            # the n-th such event of that command triggers the kill

    @property
    def label(self) -> str:
        return f"{self.cmd_name} #{self.n} {self.kind}"


@dataclass
class PointResult:
    point: CrashPoint
    hit: bool = False
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    killed_at: str = ""

    def line(self) -> str:
        state = "survived" if self.ok else "FAILED"
        more = "" if self.ok else ": " + "; ".join(self.problems)
        return f"  {self.point.label:<34} {state:<8} ({self.seconds:5.1f}s) {self.killed_at}{more}"


@dataclass
class HarnessResult:
    inventory: str
    target: str
    points: list[PointResult] = field(default_factory=list)
    enumerated: int = 0

    @property
    def survived(self) -> int:
        return sum(1 for p in self.points if p.ok)

    @property
    def total(self) -> int:
        return len(self.points)

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.survived == self.total

    def summary(self) -> str:
        lines = [f"crash points on {self.inventory} -> {self.target} ({self.total} of {self.enumerated} enumerated)"]
        lines += [p.line() for p in self.points]
        lines.append(f"crash points survived: {self.survived}/{self.total}")
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


def _run_killed(cmd: Cmd, cwd: Path, env: dict[str, str], watch: JournalWatch, point: CrashPoint,
                lab_dir: Path, timeout: float = CMD_TIMEOUT) -> tuple[bool, Any, str]:
    """Run cmd; SIGKILL its process group when the point's event appears. (killed?, proc, what)."""
    base_seq = watch.max_seq()
    base_installs = installs_started(lab_dir)
    if point.kind.startswith("after:"):
        env = {**env, ENV_KILL_AFTER: f"{point.kind[6:]}:{point.n}"}
    proc = spawn(list(cmd.args), cwd, env)
    deadline = time.monotonic() + timeout
    if point.kind.startswith("after:"):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False, proc, "timeout"
        if proc.returncode == -signal.SIGKILL:
            return True, proc, f"killed itself at journal seq {watch.max_seq()}"
        return False, proc, f"exited {proc.returncode} before the point"
    try:
        while proc.poll() is None:
            if point.kind == "boundary":
                reached = watch.boundaries(base_seq) >= point.n
            elif point.kind == "mid":
                reached = watch.mids(base_seq) >= point.n
            else:
                reached = installs_started(lab_dir) - base_installs >= point.n
            if reached:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True, proc, f"killed at journal seq {watch.max_seq()}"
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return False, proc, "timeout"
            time.sleep(0.003)
    finally:
        watch.close()
    return False, proc, f"exited {proc.returncode} before the point"


def check_domain(lab_dir: Path, workdir: Path, lab_inventory: str, target: str, *,
                 installer: bool = False) -> list[str]:
    """What must hold after any crash + resume; returns the problems (empty = fine)."""
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
    succeeded: collections.Counter = collections.Counter()
    for e in events:
        if e.kind == "step" and (e.status == "succeeded" or (e.status == "reconciled"
                                                            and e.data.get("outcome") == "succeeded")):
            succeeded[(e.node, e.step)] += 1
    problems += [f"step {step} on {node} succeeded {c} times" for (node, step), c in succeeded.items() if c > 1]
    if hist.running_steps:
        problems.append(f"steps left started: {', '.join(hist.running_steps)}")
    try:
        live = _lab_versions(lab_dir)
    except OSError as exc:
        problems.append(f"lab unreachable: {exc}")
    else:
        problems += [f"lab: {n} runs {v}, not {target}" for n, v in live.items() if v != target]
    if installer:
        per = installs_per_node(lab_dir)
        problems += [f"installer ran {c} times on {n}" for n, c in per.items() if c != 1]
        problems += [f"installer never ran on {n.name}" for n in inv.nodes if n.name not in per]
    return problems


def _standin(target: str) -> str:
    from lab.installer_standin import standin_path
    return str(standin_path(target))


RECORD_KINDS = ("backup", "source_appliance")


def enumerate_points(inventory: str, target: str, workdir: Path, *, mid_job: bool = True,
                     records_too: bool = True, time_scale: float = DEFAULT_SCALE) -> tuple[list[CrashPoint], list[str]]:
    """A clean run of the sequence; counts each command's boundaries / mid-job events / installs.

    The run starts from an empty workdir: a plan and journal left by an earlier sweep would make every
    command "already done" and leave nothing to count (a second `invoke bench.faults` once reported 0/0)."""
    wd = Path(workdir)
    if wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True)
    lab_dir = wd / "lab"
    points: list[CrashPoint] = []
    with _lab(inventory, lab_dir, time_scale) as info:
        env = cli_env(lab_dir)
        cmds = sequence(info["inventory"], wd, target, _standin(target))
        watch = JournalWatch(journal_file(wd))
        for i, cmd in enumerate(cmds):
            base, inst = watch.max_seq(), installs_started(lab_dir)
            r = run_cli(list(cmd.args), wd, env)
            if r.returncode != 0:
                raise RuntimeError(f"clean run: {cmd.name} exited {r.returncode}:\n{r.stderr[-2000:]}")
            b, m, k = watch.boundaries(base), watch.mids(base), installs_started(lab_dir) - inst
            records = {kind: watch.query(f"kind = '{kind}'", base) for kind in RECORD_KINDS}
            watch.close()
            points += [CrashPoint(i, cmd.name, "boundary", n) for n in range(1, b + 1)]
            if mid_job:
                points += [CrashPoint(i, cmd.name, "mid", n) for n in range(1, m + 1)]
                points += [CrashPoint(i, cmd.name, "install", n) for n in range(1, k + 1)]
            if records_too:
                for kind, count in records.items():
                    points += [CrashPoint(i, cmd.name, f"after:{kind}", n) for n in range(1, count + 1)]
        problems = check_domain(lab_dir, wd, info["inventory"], target, installer=_uses_installer(wd))
    return points, problems


def _uses_installer(wd: Path) -> bool:
    try:
        plan = json.loads((wd / "plan.json").read_text())
    except (OSError, ValueError):
        return False
    return any(s.get("method") == "installer" for ph in plan["phases"] for s in ph["steps"])


def run_point(inventory: str, target: str, workdir: Path, point: CrashPoint, *,
              time_scale: float = DEFAULT_SCALE) -> PointResult:
    """One crash point on a fresh lab: run the sequence, kill at the point, resume, check."""
    res = PointResult(point)
    t0 = time.monotonic()
    wd = Path(workdir)
    if wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True)
    lab_dir = wd / "lab"
    try:
        with _lab(inventory, lab_dir, time_scale) as info:
            env = cli_env(lab_dir)
            cmds = sequence(info["inventory"], wd, target, _standin(target))
            watch = JournalWatch(journal_file(wd))
            for i, cmd in enumerate(cmds):
                if i == point.cmd:
                    killed, proc, what = _run_killed(cmd, wd, env, watch, point, lab_dir)
                    res.hit, res.killed_at = killed, what
                    if not killed:
                        res.problems.append(f"crash point not reached ({what}): "
                                            f"{(proc.stderr.read() if proc.stderr else '')[-500:]}")
                    if proc.stderr:
                        proc.stderr.close()
                    args = list(cmd.args) + (["--break-stale-lock"] if cmd.breakable else [])
                    r = run_cli(args, wd, env)
                    if r.returncode != 0:
                        res.problems.append(f"resume of `{cmd.name}` exited {r.returncode}: "
                                            f"{_last_lines(r.stderr + r.stdout)}")
                        break
                    continue
                r = run_cli(list(cmd.args), wd, env)
                if r.returncode != 0:
                    res.problems.append(f"`{cmd.name}` after the crash exited {r.returncode}: "
                                        f"{_last_lines(r.stderr + r.stdout)}")
                    break
            res.problems += check_domain(lab_dir, wd, info["inventory"], target, installer=_uses_installer(wd))
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
    for kind in ("mid", "install", "after:backup"):
        cands = [p for p in points if p.kind == kind]
        if cands and slot > 0 and not any(p.kind == kind for p in chosen):
            chosen[slot] = cands[len(cands) // 2]
            slot -= 1
    return chosen


def crash_points(inventory: str | Path, target: str, workdir: str | Path, *, limit: int | None = None,
                 mid_job: bool = True, points: Iterable[CrashPoint] | None = None, workers: int = 2,
                 time_scale: float = DEFAULT_SCALE, say: Callable[[str], None] | None = None) -> HarnessResult:
    """Kill the rehearsal's commands at each crash point, resume, check; see the module docstring."""
    wd = Path(workdir).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    inventory = str(Path(inventory).resolve())
    if points is not None:  # given points: no enumerating clean run (CI keeps it short)
        enumerated = chosen = list(points)
    else:
        enumerated, clean = enumerate_points(inventory, target, wd / "clean", mid_job=mid_job,
                                             time_scale=time_scale)
        if clean:
            raise RuntimeError("the clean run itself does not satisfy the checks: " + "; ".join(clean))
        chosen = spread(enumerated, limit)
    result = HarnessResult(inventory, target, enumerated=len(enumerated))

    def one(ix_point: tuple[int, CrashPoint]) -> PointResult:
        ix, p = ix_point
        r = run_point(inventory, target, wd / f"point-{ix:03d}", p, time_scale=time_scale)
        if say:
            say(r.line())
        if r.ok:
            shutil.rmtree(wd / f"point-{ix:03d}", ignore_errors=True)
        return r

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        result.points = list(pool.map(one, enumerate(chosen)))
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
    faults.write_text(yaml.safe_dump(transient_spec(probability, seed)))
    tgt = target or default_target(inventory)
    before = retry.retry_count()
    r = Rehearsal(str(inventory), tgt, wd, time_scale, str(faults), say=say)
    summary = r.run()
    retries = retry.retry_count() - before
    if r.rolled_back or r.failed or "outcome: upgraded" not in summary:
        raise RuntimeError(f"the rehearsal under transient faults did not complete: {r.failed}\n{summary}")
    return retries


# ----------------------------------------------------------------------------------------------- bad inputs
@dataclass
class BadResult:
    name: str
    command: str
    code: int | None
    stderr: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class BadInputsResult:
    results: list[BadResult]

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def table(self) -> str:
        w = max(len(r.name) for r in self.results)
        lines = [f"{'case':<{w}}  exit  ok   message (stderr, first line)"]
        for r in self.results:
            msg = (r.stderr.strip().splitlines() or [""])[-1][:110]
            lines.append(f"{r.name:<{w}}  {str(r.code):>4}  {'yes' if r.ok else 'NO ':<3}  {msg}")
            lines += [f"{'':<{w}}              problem: {p}" for p in r.problems]
        lines.append(f"bad inputs refused cleanly: {sum(r.ok for r in self.results)}/{len(self.results)}")
        return "\n".join(lines)


def _tamper(kind: str, plan_path: Path, out: Path, lab_inventory: str) -> None:
    data = json.loads(plan_path.read_text())
    if kind == "edit-step":
        data["phases"][1]["steps"][0]["to"] = "6.7 U1"
    elif kind == "edit-hash":
        data["plan_hash"] = "0" * len(data["plan_hash"])
    elif kind == "edit-both":  # a step edited AND the hash "fixed" by hand to something else
        data["phases"][1]["steps"][0]["node"] = "vc-b"
        data["plan_hash"] = "f" * len(data["plan_hash"])
    elif kind == "wrong-format":
        data["format"] = "vcwave-plan/99"
    elif kind == "no-phases":
        data.pop("phases")
    elif kind == "other-domain":
        data["domain"] = "other.local"
    else:
        raise ValueError(f"unknown plan tampering {kind!r}")
    out.write_text(json.dumps(data, indent=1))


def _prepare(case: dict, ctx: dict[str, str], case_dir: Path) -> dict[str, str]:
    """Files a case needs, made from the running lab (plans, changed inventories, secrets...)."""
    v = dict(ctx)
    v["case_dir"] = str(case_dir)
    if "file" in case:
        src = BAD_DIR / case["file"]
        dst = case_dir / Path(case["file"]).name
        text = src.read_text()
        for k, val in ctx.items():
            text = text.replace("{" + k + "}", val)
        dst.write_text(text)
        v["bad"] = str(dst)
    prep = case.get("prepare", "")
    if prep.startswith("tamper:"):
        dst = case_dir / "plan.json"
        _tamper(prep.split(":", 1)[1], Path(ctx["plan"]), dst, ctx["lab_inv"])
        v["bad"] = str(dst)
    elif prep == "not-json":
        dst = case_dir / "plan.json"
        dst.write_text(Path(ctx["plan"]).read_text()[:200])
        v["bad"] = str(dst)
    elif prep == "inventory-changed":
        inv = yaml.safe_load(Path(ctx["lab_inv"]).read_text())
        inv["nodes"][3]["backup"]["location"] += "/moved"  # an edit after `invoke plan`
        dst = case_dir / "lab-inventory.yml"
        dst.write_text(yaml.safe_dump(inv, sort_keys=False))
        v["bad"] = str(dst)
    elif prep in ("password-env-missing", "password-file-0644"):
        text = Path(ctx["lab_inv"]).read_text()
        if prep == "password-env-missing":
            text = re.sub(r"password_file: \S+/secrets/sso", "password_env: VCWAVE_HARNESS_UNSET_SSO", text)
        else:
            sec = case_dir / "sso"
            sec.write_text(Path(ctx["lab_dir"], "secrets", "sso").read_text())
            os.chmod(sec, 0o644)
            text = re.sub(r"password_file: \S+/secrets/sso", f"password_file: {sec}", text)
        dst = case_dir / "lab-inventory.yml"
        dst.write_text(text)
        # a plan made from this very inventory, so the hash check passes and the credential is what fails
        r = run_cli(["plan", "--inventory", str(dst), "--target", ctx["target"], "--out", str(case_dir / "plan.json")],
                    case_dir, cli_env(ctx["lab_dir"]), fast=False)
        if r.returncode != 0:
            raise RuntimeError(f"prepare {prep}: plan failed: {r.stderr}")
        v["bad"], v["bad_plan"] = str(dst), str(case_dir / "plan.json")
    elif prep == "corrupt-journal":
        state = case_dir / "state"
        shutil.copytree(ctx["state"], state, ignore=shutil.ignore_patterns("lock"))
        with open(state / "vsphere.local" / "journal.sqlite", "ab") as fh:
            fh.write(b"\x00garbage tail after a torn write\xff" * 37)
        v["bad"] = str(state)
    elif prep:
        raise ValueError(f"unknown prepare {prep!r}")
    return v


def load_cases(corpus: Path = BAD_DIR) -> list[dict]:
    cases = yaml.safe_load((corpus / "cases.yml").read_text())
    names = [c["name"] for c in cases]
    dup = [n for n, c in collections.Counter(names).items() if c > 1]
    if dup:
        raise ValueError(f"cases.yml: duplicate case names {dup}")
    return cases


def _event_count(workdir: Path) -> int:
    w = JournalWatch(journal_file(workdir))
    try:
        return w.max_seq()
    finally:
        w.close()


def bad_inputs(workdir: str | Path, *, corpus: Path = BAD_DIR, only: Iterable[str] | None = None,
               time_scale: float = DEFAULT_SCALE) -> BadInputsResult:
    """Every case of the corpus as a real `invoke` subprocess against a running lab; see the module doc."""
    wd = Path(workdir).resolve()
    if wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True)
    cases = load_cases(corpus)
    if only is not None:
        keep = set(only)
        cases = [c for c in cases if c["name"] in keep]
    lab_dir = wd / "lab"
    target = "6.7 U3"
    results: list[BadResult] = []
    with _lab(str(ROOT / "examples" / "two-site.yml"), lab_dir, time_scale) as info:
        env = cli_env(lab_dir)
        ctx = {"lab_inv": info["inventory"], "plan": str(wd / "plan.json"), "state": str(wd / "state"),
               "lab_dir": str(lab_dir), "target": target, "root": str(ROOT), "installer": _standin(target)}
        # a journal with history: the plan, then the pre-window backups (so "nothing changed" is measurable)
        for args in (["plan", "--inventory", ctx["lab_inv"], "--target", target, "--out", ctx["plan"]],
                     ["backup", "--phase", "pre", "--inventory", ctx["lab_inv"], "--plan", ctx["plan"],
                      "--state-dir", ctx["state"]]):
            r = run_cli(args, wd, env)
            if r.returncode != 0:
                raise RuntimeError(f"bad_inputs setup: {args[0]} exited {r.returncode}: {r.stderr[-1500:]}")
        for case in cases:
            case_dir = wd / "cases" / case["name"]
            case_dir.mkdir(parents=True)
            v = _prepare(case, ctx, case_dir)
            args = [a.format(**v) for a in case["args"]]
            cenv = dict(env)
            for k in case.get("unset_env", []):
                cenv.pop(k, None)
            versions0, events0 = _lab_versions(lab_dir), _event_count(wd)
            plan0 = Path(ctx["plan"]).read_bytes()
            torn = Path(v["bad"]) / "vsphere.local" / "journal.sqlite" if case.get("prepare") == "corrupt-journal" \
                else None
            torn0 = torn.read_bytes() if torn else b""
            r = run_cli(args, case_dir, cenv, fast=False, timeout=60)
            res = BadResult(case["name"], "invoke " + " ".join(shlex.quote(a) for a in args), r.returncode, r.stderr)
            if r.returncode != case.get("exit", 2):
                res.problems.append(f"exit {r.returncode}, expected {case.get('exit', 2)}")
            low = r.stderr.lower()
            for frag in case.get("expect", []):
                frag = str(frag).format(**v)
                if frag.lower() not in low:
                    res.problems.append(f"stderr does not name {frag!r}")
            if "Traceback" in r.stderr:
                res.problems.append("a traceback instead of a clear message")
            if _lab_versions(lab_dir) != versions0:
                res.problems.append("lab versions changed")
            if _event_count(wd) != events0:
                res.problems.append(f"journal changed ({events0} -> {_event_count(wd)} events)")
            if torn is not None and torn.read_bytes() != torn0:
                res.problems.append("the corrupt journal was written to")
            if Path(ctx["plan"]).read_bytes() != plan0:
                res.problems.append("the saved plan was overwritten")
                Path(ctx["plan"]).write_bytes(plan0)
            if (Path(ctx["state"]) / "vsphere.local" / "lock").exists():
                res.problems.append("a lock file was left behind")
            results.append(res)
    return BadInputsResult(results)


# ----------------------------------------------------------------------------------------------- CLI
def main_report(limit: int | None = None, as_json: bool = False, workdir: str | Path = ".vcwave/harness") -> str:
    """`invoke bench.faults`: crash points on the update path and the installer path, transient faults at 20 %,
    and the bad-inputs corpus. Raises (non-zero exit) when any of them fails; prints the figures."""
    from orchestrator.errors import StepFailed
    wd = Path(workdir)
    crash = {name: crash_points(ROOT / "examples" / inv, target, wd / f"crash-{name}", limit=limit, say=print)
             for name, inv, target in (("update", "two-site.yml", "6.7 U3"),
                                       ("installer", "two-site-6.0.yml", "6.5 U1"))}
    retries = transient(ROOT / "examples" / "two-site.yml", wd / "transient", 0.2)
    bad = bad_inputs(wd / "bad")
    figures = {f"crash points survived ({k})": f"{sum(p.ok for p in r.points)}/{len(r.points)}"
               for k, r in crash.items()}
    figures["transient faults at 20 %: rehearsal completed, retries"] = str(retries)
    figures["bad inputs refused (exit 2, nothing changed)"] = f"{sum(c.ok for c in bad.results)}/{len(bad.results)}"
    text = json.dumps(figures, indent=1) if as_json else "\n".join(
        [r.summary() for r in crash.values()] + [bad.table()] + [f"{k}: {v}" for k, v in figures.items()])
    if not (all(r.ok for r in crash.values()) and bad.ok):
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
    t = sub.add_parser("transient")
    t.add_argument("--inventory", default=str(ROOT / "examples" / "two-site.yml"))
    t.add_argument("--probability", type=float, default=0.2)
    t.add_argument("--workdir", default=".vcwave/harness/transient")
    b = sub.add_parser("bad")
    b.add_argument("--workdir", default=".vcwave/harness/bad")
    a = ap.parse_args(argv)
    if a.what == "crash":
        res = crash_points(a.inventory, a.target, a.workdir, limit=a.limit, mid_job=not a.no_mid_job,
                           workers=a.workers, say=print)
        print(res.summary())
        return 0 if res.ok else 1
    if a.what == "transient":
        print(f"retries: {transient(a.inventory, a.workdir, a.probability)}")
        return 0
    res = bad_inputs(a.workdir)
    print(res.table())
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Run VMware's CLI installer (`vcsa-deploy upgrade`) on a template, without ever leaking a secret.

Why a client of its own: the installer is a process, not an API. It reads its passwords from the template
file, so the filled template exists only as a 0600 file (created O_CREAT|O_EXCL in a private 0700 folder
under the caller's state folder, never the shared system temp folder) for the life of the process and is
removed in `finally`, whatever happens (installer failure, timeout, exception, KeyboardInterrupt). A kill -9
runs no `finally`: the folder is named after the vcwave process, and `sweep_leftovers` (run by every next
command) removes the folders of dead runs whose installer is gone too. Every output line is scrubbed of
secret values before anyone sees it (`on_line`, the tail kept for errors); the engine turns lines into
progress events.

Command line (flags from the 6.5 installer readme and the 6.7 upgrade guide):

    <installer> upgrade --accept-eula --acknowledge-ceip [--verify-template-only | --precheck-only]
                        [--no-ssl-certificate-verification] --log-dir DIR <template.json>

The 6.5 installer spells the verify flag `--verify-only` and the SSL flag `--no-esx-ssl-verify`; the runner
picks them from the template's `__version` (`installer_template.verify_flag`/`no_ssl_flag`).

Exit codes. VMware does not document vcsa-deploy's exit codes beyond 0 = success (not found in any
source read); vcwave and the lab stand-in use this convention, and anything else non-zero is a failure:
    0 success · 2 template or command line refused (permanent: fix the template)
    3 precheck refused (path, back in time, vCenter newer than its PSC, credentials; permanent)
    4 source or target unreachable (transient: retry once it answers) · other: the upgrade failed.

Where the installer comes from: `--installer PATH` (flag) or env `VCWAVE_INSTALLER` (`resolve_installer`).
"""
from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Callable, Mapping

from orchestrator.core.installer_template import (TemplateError, fill_secrets, no_ssl_flag,
                                                  validate_template, verify_flag)
from orchestrator import scrub as scrubbing
from orchestrator import stop
from orchestrator.errors import InputError, StepFailed
from orchestrator.private import private_dirs
from orchestrator.processes import pid_alive
from orchestrator.secrets import Secret, reveal

ENV_INSTALLER = "VCWAVE_INSTALLER"
TAIL_LINES = 40
OUTPUT_LOG = "vcwave-installer-output.log"  # the installer writes here (a file, never a pipe), vcwave follows it
REDACTED = "********"
PRIVATE_PREFIX = "vcwave-installer-"  # + vcwave's pid: `sweep_leftovers` tells dead runs from live ones

EXIT_OK = 0
EXIT_TEMPLATE = 2
EXIT_PRECHECK = 3
EXIT_UNREACHABLE = 4


@dataclass(frozen=True)
class InstallerResult:
    exit_code: int
    log_dir: Path
    lines_tail: tuple[str, ...] = field(default=())


class InstallerNotConfigured(InputError):
    """No usable installer: says what to set. Exit 2, nothing done."""


class InstallerError(StepFailed):
    """The installer ended non-zero. `permanent`: retrying the same template cannot help."""

    permanent = False
    kind = "failed"

    def __init__(self, message: str, result: InstallerResult) -> None:
        self.result = result
        tail = "\n".join(result.lines_tail[-8:])
        super().__init__(f"{message} (installer exit {result.exit_code}; logs in {result.log_dir})"
                         + (f"\n{tail}" if tail else ""))


class InstallerTemplateRefused(InstallerError):
    permanent = True
    kind = "template-refused"


class InstallerPrecheckRefused(InstallerError):
    permanent = True
    kind = "precheck-refused"


class InstallerUnreachable(InstallerError):
    permanent = False
    kind = "unreachable"


class InstallerFailed(InstallerError):
    permanent = False
    kind = "failed"


_ERRORS: dict[int, tuple[type[InstallerError], str]] = {
    EXIT_TEMPLATE: (InstallerTemplateRefused, "the installer refused the template or command line"),
    EXIT_PRECHECK: (InstallerPrecheckRefused, "the installer's precheck refused the upgrade"),
    EXIT_UNREACHABLE: (InstallerUnreachable, "the installer could not reach the source or the target vCenter"),
}


def error_for(result: InstallerResult) -> InstallerError:
    cls, msg = _ERRORS.get(result.exit_code, (InstallerFailed, "the installer failed"))
    return cls(msg, result)


def resolve_installer(flag: str | os.PathLike | None = None,
                      environ: Mapping[str, str] | None = None) -> Path:
    """The installer to run: `--installer PATH`, else env VCWAVE_INSTALLER. Raises a clear error otherwise."""
    env = os.environ if environ is None else environ
    raw = str(flag) if flag else env.get(ENV_INSTALLER, "")
    if not raw:
        raise InstallerNotConfigured(
            f"no installer configured: pass --installer PATH or set {ENV_INSTALLER} to VMware's "
            f"vcsa-cli-installer/lin64/vcsa-deploy of the target release (the lab: python -m lab.installer_standin)")
    p = Path(raw).expanduser()
    origin = "--installer" if flag else ENV_INSTALLER
    if not p.is_file():
        raise InstallerNotConfigured(f"{origin} points at {p}, which is not a file: set it to the installer "
                                     f"(vcsa-cli-installer/lin64/vcsa-deploy)")
    if not os.access(p, os.X_OK):
        raise InstallerNotConfigured(f"{origin} points at {p}, which is not executable")
    return p


class Scrubber:
    """Replaces every secret value (raw and JSON-escaped) in a line. Longest first."""

    def __init__(self, secrets: Mapping[str, "str | Secret"]) -> None:
        vals: set[str] = set()
        for s in secrets.values():
            v = reveal(s)
            if v:
                vals.add(v)
                vals.add(json.dumps(v)[1:-1])
                scrubbing.register(v)  # structlog/journal redaction knows it too
        self.values = sorted(vals, key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for v in self.values:
            if v in line:
                line = line.replace(v, REDACTED)
        return scrubbing.scrub_text(line)


def private_run_dir(root: Path) -> Path:
    """A fresh 0700 folder for one run's filled template under `root` (0700), named after this process."""
    private_dirs(root)
    os.chmod(root, 0o700)
    return Path(tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{os.getpid()}-", dir=root))


def _owner_pid(folder: Path) -> int | None:
    parts = folder.name[len(PRIVATE_PREFIX):].split("-", 1)
    return int(parts[0]) if folder.name.startswith(PRIVATE_PREFIX) and parts[0].isdigit() else None


def _dead_run(folder: Path) -> bool:
    """A template folder nobody uses any more: not ours, its vcwave is gone, and no live process names it."""
    owner = _owner_pid(folder)
    if owner == os.getpid() or (owner is not None and pid_alive(owner)):
        return False
    return not installer_processes(folder)


def sweep_leftovers(root: Path) -> list[Path]:
    """Remove the template folders (passwords inside) that killed runs left under `root`. A folder that a
    live installer still names is kept: the installer outlived vcwave, and its step's reconcile removes the
    folder once it has ended. Returns the folders removed; creates nothing."""
    try:
        folders = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PRIVATE_PREFIX)]
    except OSError:  # no root yet: nothing to sweep
        return []
    removed = [f for f in folders if _dead_run(f)]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


class InstallerRunner:
    """Runs one installer binary. `ssl_verify=False` adds the release's no-SSL-verification flag.
    `private_root` holds the runs' 0700 template folders (under the state folder)."""

    def __init__(self, installer_path: Path | str, *, private_root: Path | str, log_root: Path | str | None = None,
                 ssl_verify: bool = True, timeout: float | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.installer = Path(installer_path)
        self.private_root = Path(private_root)
        self.log_root = Path(log_root) if log_root else None
        self.ssl_verify = ssl_verify
        self.timeout = timeout
        self.env = dict(env) if env is not None else None

    # public operations --------------------------------------------------------------------------------
    def verify_template(self, template: dict, secrets: Mapping[str, "str | Secret"], *,
                        on_line: Callable[[str], None] | None = None) -> InstallerResult:
        return self._run(template, secrets, verify_flag(template), on_line)

    def precheck(self, template: dict, secrets: Mapping[str, "str | Secret"], *,
                 on_line: Callable[[str], None] | None = None) -> InstallerResult:
        return self._run(template, secrets, "--precheck-only", on_line)

    def upgrade(self, template: dict, secrets: Mapping[str, "str | Secret"], *,
                on_line: Callable[[str], None] | None = None,
                on_start: Callable[[int, str], None] | None = None,
                on_launch: Callable[[str, str], None] | None = None) -> InstallerResult:
        """The real run. `on_start(pid, private_dir)` lets the caller journal the running installer: it runs in
        its own session and outlives a killed vcwave, which must then wait for it, never start a second one.
        `on_launch(log_dir, private_dir)` comes just before the process is started, so that a vcwave killed
        between the start and `on_start` can still find it (`installer_processes(private_dir)`)."""
        return self._run(template, secrets, None, on_line, on_start, on_launch)

    # the work ---------------------------------------------------------------------------------------------
    def command(self, template: dict, mode_flag: str | None, log_dir: Path, template_file: Path) -> list[str]:
        cmd = [str(self.installer), "upgrade", "--accept-eula", "--acknowledge-ceip"]
        if mode_flag:
            cmd.append(mode_flag)
        if not self.ssl_verify:
            cmd.append(no_ssl_flag(template))
        cmd += ["--log-dir", str(log_dir), str(template_file)]
        return cmd

    def _run(self, template: dict, secrets: Mapping[str, "str | Secret"], mode_flag: str | None,
             on_line: Callable[[str], None] | None,
             on_start: Callable[[int, str], None] | None = None,
             on_launch: Callable[[str, str], None] | None = None) -> InstallerResult:
        problems = validate_template(template)
        if problems:
            raise TemplateError("the installer template is incomplete: " + "; ".join(problems))
        filled = fill_secrets(template, {k: reveal(v) for k, v in secrets.items()})  # names, never values
        scrub = Scrubber(secrets)
        if self.log_root:  # 0700 like every folder vcwave makes (the installer's logs name hosts and users)
            private_dirs(self.log_root)
        log_dir = Path(tempfile.mkdtemp(prefix="vcsa-deploy-", dir=self.log_root))
        private = private_run_dir(self.private_root)
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        proc: subprocess.Popen | None = None
        watchdog: threading.Timer | None = None
        try:
            tfile = private / "upgrade.json"
            fd = os.open(tfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(filled, f, indent=2)
            del filled
            cmd = self.command(template, mode_flag, log_dir, tfile)
            # The installer writes to a file, not a pipe: if vcwave dies, the installer must not die of a
            # broken pipe halfway through a migration; vcwave follows the file instead.
            out_path = log_dir / OUTPUT_LOG
            if on_launch:
                on_launch(str(log_dir), str(private))
            with open(out_path, "wb") as out:
                try:
                    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=self.env, start_new_session=True)
                except OSError as e:
                    raise InstallerNotConfigured(f"cannot run the installer {self.installer}: {e.strerror}; set "
                                                 f"--installer PATH or {ENV_INSTALLER}") from None
            if on_start:
                on_start(proc.pid, str(private))
            if self.timeout:
                watchdog = threading.Timer(self.timeout, _stop, [proc])
                watchdog.daemon = True
                watchdog.start()
            for raw in _follow(out_path, proc):
                line = scrub(raw.rstrip("\r\n"))
                tail.append(line)
                if on_line:
                    on_line(line)
            code = proc.wait()
            if watchdog is not None and not watchdog.is_alive() and code < 0:
                tail.append(f"vcwave: the installer was stopped after {self.timeout:g}s")
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if proc is not None and proc.poll() is None:
                _stop(proc)
            shutil.rmtree(private, ignore_errors=True)
        result = InstallerResult(code, log_dir, tuple(tail))
        if code != EXIT_OK:
            raise error_for(result)
        return result


def installer_processes(private_dir: str | Path, proc_root: str | Path = "/proc") -> list[int]:
    """Live processes whose command line names a file of `private_dir` (the installer's template lives
    there, and that directory is unique to one run). How a resumed vcwave finds an installer whose pid it
    never journaled. Empty where /proc cannot be read."""
    needle = str(private_dir).encode()
    if not needle:
        return []
    pids = []
    try:
        entries = [e for e in os.listdir(proc_root) if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(os.path.join(proc_root, entry, "cmdline"), "rb") as f:
                if needle in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def installer_output_started(log_dir: str | Path) -> bool:
    """Whether the installer of that run wrote anything at all (VMware's installer prints its banner first)."""
    try:
        return (Path(log_dir) / OUTPUT_LOG).stat().st_size > 0
    except OSError:
        return False


def _follow(path: Path, proc: subprocess.Popen, interval: float = 0.05) -> Iterable[str]:
    """The lines of a growing file until the process has exited and everything it wrote was read."""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        pending = ""
        while True:
            chunk = f.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split("\n")
                yield from lines
            elif proc.poll() is not None:
                rest = f.read()
                pending += rest
                if not rest:
                    break
            else:
                stop.sleep(interval)  # Ctrl-C/SIGTERM: `_run`'s finally stops the installer
        if pending:
            yield pending


def _stop(proc: subprocess.Popen) -> None:
    """Stop the installer process we started (its own session: only its children go with it)."""
    try:
        os.killpg(proc.pid, 15)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()

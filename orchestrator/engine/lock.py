"""The domain lock: at most one vcwave command acts on an SSO domain at a time.

Why: two commands interleaving steps on the same PSCs/vCenters (or one upgrading while another rolls back)
would make the journal lie about where the domain stands. The lock is a file (``<state_dir>/<domain>/lock``
by convention) holding JSON ``{pid, host, command, started}`` so a refusal can say *who* holds it.

How, and why this way:

* **Exclusive creation.** The lock file is written completely in a private temp file (created with
  ``O_CREAT|O_EXCL``), ``flock``'ed, fsync'ed, and only then hard-linked to the lock path; ``link()`` fails
  if the path exists, exactly like ``O_EXCL`` on the final name, but nobody can ever see a half-written
  lock file.
* **flock as the liveness proof.** The holder keeps ``fcntl.flock(LOCK_EX)`` on the file for its whole
  life; the kernel drops it when the process dies however it dies (SIGKILL included). So a lock file whose
  flock we can take has no live holder.
* **Never steal silently.** If the file is there but unlocked and its pid is dead on this host, we raise
  :class:`StaleLock` telling the operator to re-run with ``--break-stale-lock`` (the dead run may have died
  mid-step; the journal will reconcile). ``break_stale=True`` takes it over (atomically, logged). A live
  holder is never broken: :class:`LockHeld`. When liveness cannot be proven dead (pid alive — maybe reused —
  or the holder is on another host) we also refuse: a wrong "stale" verdict could run two upgrades at once.
* **Release** (``__exit__``, also on exceptions) removes the file while still holding the flock, then
  closes it. A killed process leaves the file behind, which is exactly the stale case above.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import socket
from datetime import datetime, timezone
from pathlib import Path

from orchestrator.engine.durable import fsync_dir as _fsync_dir
from orchestrator.errors import RefusedError
from orchestrator.private import private_dirs
from orchestrator.processes import pid_alive
from orchestrator.slog import structlog

log = structlog.get_logger(__name__)

RULE = "one-command-per-domain"
_MAX_ATTEMPTS = 10


class LockHeld(RefusedError):
    """Another vcwave command holds (or may hold) the domain lock. Exit 2; nothing was done."""

    def __init__(self, message: str, holder: dict | None = None) -> None:
        self.holder = holder or {}
        super().__init__(message, rule=RULE)


class StaleLock(RefusedError):
    """The lock file's holder is dead. Exit 2; re-run with --break-stale-lock to take it over."""

    def __init__(self, message: str, holder: dict | None = None) -> None:
        self.holder = holder or {}
        super().__init__(message, rule=RULE)


def _remove_if_empty(folders: list[Path]) -> None:
    """A command refused under the lock (a guard, a bad answer before any event) leaves no empty state folder."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (the journal was written) or already gone: keep what is there
            return


def _describe(holder: dict) -> str:
    if holder.get("_unreadable"):
        return "an unknown process (the lock file content is unreadable)"
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} running "
        f"{holder.get('command', '?')!r} since {holder.get('started', '?')}"
    )


def inspect_lock(path: Path | str) -> tuple[str, str]:
    """Read-only look at a lock file, for `status`: ("", "") when there is none, ("stale", who) when its
    holder is provably dead on this host (a killed command: re-run with --break-stale-lock), else
    ("held", who). It takes no flock, so it never disturbs a command acquiring the lock."""
    try:
        holder = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return "", ""
    except (OSError, ValueError, UnicodeDecodeError):
        holder = {"_unreadable": True}
    if not isinstance(holder, dict):
        holder = {"_unreadable": True}
    pid = holder.get("pid")
    if isinstance(pid, int) and pid > 0 and holder.get("host") == socket.gethostname() and not pid_alive(pid):
        return "stale", _describe(holder)
    return "held", _describe(holder)


class DomainLock:
    """``with DomainLock(path, "vcwave upgrade ..."):`` — see the module docstring.

    Raises :class:`LockHeld` for a live (or unverifiable) holder, :class:`StaleLock` for a dead one unless
    ``break_stale=True``. Not re-entrant: acquiring the same path twice in one process is refused too.
    """

    def __init__(self, path: Path | str, command: str, *, break_stale: bool = False) -> None:
        self.path = Path(path)
        self.command = command
        self.break_stale = break_stale
        self.info: dict = {}
        self.broke: dict | None = None  # the stale holder we took over, if any
        self._fd: int | None = None
        self._tmp: Path = self.path
        self._made: list[Path] = []  # folders acquire() created: removed again if the command wrote nothing

    # ------------------------------------------------------------------ public
    def acquire(self) -> "DomainLock":
        if self._fd is not None:
            raise RuntimeError(f"lock {self.path} already acquired by this object")
        self._made = private_dirs(self.path.parent)
        for _ in range(_MAX_ATTEMPTS):
            fd = self._write_candidate()
            try:
                if self._try_link(fd):
                    self._fd = fd
                    return self
                if self._try_take_existing(fd):
                    self._fd = fd
                    return self
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # lost a race (file replaced/removed under us): look again
        raise LockHeld(f"domain lock {self.path} is contended; could not acquire it, try again")

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._is_current(fd):
                os.unlink(self.path)
                _fsync_dir(self.path.parent)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)  # drops the flock
            _remove_if_empty(self._made)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "DomainLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------------ internals
    def _write_candidate(self) -> int:
        """A complete, flock'ed, fsync'ed lock file at a private temp name; returns its fd."""
        self.info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, (json.dumps(self.info, sort_keys=True) + "\n").encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        self._tmp = tmp
        return fd

    def _try_link(self, fd: int) -> bool:
        try:
            os.link(self._tmp, self.path)
        except FileExistsError:
            return False
        os.unlink(self._tmp)
        _fsync_dir(self.path.parent)
        return True

    def _try_take_existing(self, my_fd: int) -> bool:
        """The lock path exists. Refuse, report stale, or (break_stale) take it over. False = retry."""
        try:
            try:
                other = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:
                return False  # released meanwhile
            try:
                try:
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                    holder = self._read(other)
                    raise LockHeld(
                        f"domain lock {self.path} is held by {_describe(holder)}; "
                        "only one vcwave command may act on a domain at a time — wait for it to finish",
                        holder,
                    ) from None
                # We hold the flock of whatever inode we opened; make sure it is still the lock file.
                if not self._is_current(other):
                    return False
                holder = self._read(other)
                self._judge_unlocked(holder)  # raises unless the holder is provably dead
                if not self.break_stale:
                    raise StaleLock(
                        f"domain lock {self.path} is stale: its holder {_describe(holder)} is no longer "
                        "running (it may have died mid-step). Re-run with --break-stale-lock to take it over; "
                        "the journal will reconcile any step left unconfirmed",
                        holder,
                    )
                # Atomic take-over: swap our complete, flock'ed file in while holding the old one's flock.
                os.replace(self._tmp, self.path)
                _fsync_dir(self.path.parent)
                self.broke = holder
                log.warning("domain_lock.stale_broken", path=str(self.path), dead_holder=holder,
                            new_holder=self.info)
                return True
            finally:
                os.close(other)
        finally:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass

    def _judge_unlocked(self, holder: dict) -> None:
        """Nobody holds the flock. Raise LockHeld unless the recorded holder is provably dead here."""
        pid, host = holder.get("pid"), holder.get("host")
        if not isinstance(pid, int) or pid <= 0 or not host:
            if holder.get("_unreadable"):
                return  # never written by a complete DomainLock and nobody holds it: dead
            raise LockHeld(f"domain lock {self.path} has unexpected content {holder!r}; remove it by hand "
                           "if you are sure no vcwave command is running on this domain", holder)
        if host != socket.gethostname():
            raise LockHeld(
                f"domain lock {self.path} is held by {_describe(holder)}: another host, so vcwave cannot check "
                "that process; remove the file by hand only if you are sure it is gone",
                holder,
            )
        if pid_alive(pid):
            raise LockHeld(
                f"domain lock {self.path} is held by {_describe(holder)}: the file is not flock'ed but pid {pid} "
                "is alive (pid reused?); vcwave never breaks a lock whose process may be live — remove the "
                "file by hand if you are sure no vcwave command is running on this domain",
                holder,
            )

    def _read(self, fd: int) -> dict:
        try:
            raw = os.pread(fd, 65536, 0)
            holder = json.loads(raw.decode())
            if isinstance(holder, dict):
                return holder
        except (OSError, ValueError, UnicodeDecodeError):
            pass
        return {"_unreadable": True}

    def _is_current(self, fd: int) -> bool:
        return self._exists_as(fd, self.path)

    @staticmethod
    def _exists_as(fd: int, path: Path) -> bool:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


__all__ = ["DomainLock", "LockHeld", "StaleLock"]

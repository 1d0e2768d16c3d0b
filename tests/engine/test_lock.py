"""Domain lock: one command per domain, stale locks reported (never stolen silently), live holders never broken."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from lab.harness import python_argv
from orchestrator.engine.lock import DomainLock, LockHeld, StaleLock, inspect_lock
from orchestrator.errors import RefusedError

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import os, sys
from orchestrator.engine.lock import DomainLock
with DomainLock(sys.argv[1], "vcwave upgrade --plan p.json"):
    print("locked", os.getpid(), flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""

DIES_HOLDING = """
import os, signal, sys
from orchestrator.engine.lock import DomainLock
lock = DomainLock(sys.argv[1], "vcwave upgrade --plan p.json").acquire()
print(os.getpid(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO))


class Holder(NamedTuple):
    """Another process holding the lock, and its pid as it says it (the process `python_argv` starts may be a
    relay to it: lab/warm_relay.py)."""
    proc: subprocess.Popen
    pid: int


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "vsphere.local" / "lock"


@pytest.fixture
def live_holder(lock_path: Path):
    proc = subprocess.Popen(python_argv("-c", HOLDER, str(lock_path)), env=_env(), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        said = proc.stdout.readline().split()
        assert said[:1] == ["locked"], proc.stderr.read()
        yield Holder(proc, int(said[1]))
    finally:
        if proc.poll() is None:
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(timeout=30)


def _dead_holder(lock_path: Path) -> int:
    proc = subprocess.run(python_argv("-c", DIES_HOLDING, str(lock_path)), env=_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return int(proc.stdout.strip())


def test_acquire_writes_holder_and_releases(lock_path: Path) -> None:
    with DomainLock(lock_path, "vcwave status") as lock:
        info = json.loads(lock_path.read_text())
        assert info["pid"] == os.getpid() and info["command"] == "vcwave status"
        assert info["host"] == socket.gethostname() and info["started"]
        assert lock.held
    assert not lock_path.exists()
    assert not lock_path.parent.exists()  # no temp files left behind, nor the folder the lock made


def test_released_on_exception(lock_path: Path) -> None:
    with pytest.raises(KeyError):
        with DomainLock(lock_path, "vcwave upgrade"):
            raise KeyError("boom")
    assert not lock_path.exists()
    with DomainLock(lock_path, "vcwave upgrade"):
        pass


def test_second_acquirer_in_same_process_refused(lock_path: Path) -> None:
    with DomainLock(lock_path, "vcwave upgrade"):
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            DomainLock(lock_path, "vcwave rollback").acquire()
        assert lock_path.exists()


def test_second_acquirer_in_other_process_refused_naming_holder(lock_path: Path, live_holder) -> None:
    with pytest.raises(LockHeld) as info:
        with DomainLock(lock_path, "vcwave rollback"):
            pytest.fail("must not get here")
    err = info.value
    assert isinstance(err, RefusedError) and err.exit_code == 2
    msg = str(err)
    assert f"pid {live_holder.pid}" in msg and "vcwave upgrade --plan p.json" in msg
    assert err.holder["started"] in msg
    assert json.loads(lock_path.read_text())["pid"] == live_holder.pid  # untouched


def test_live_holder_never_broken(lock_path: Path, live_holder) -> None:
    with pytest.raises(LockHeld):
        DomainLock(lock_path, "vcwave rollback", break_stale=True).acquire()
    assert json.loads(lock_path.read_text())["pid"] == live_holder.pid
    # and once it finishes, the lock is free again
    live_holder.proc.stdin.write("\n")
    live_holder.proc.stdin.flush()
    assert live_holder.proc.stdout.readline().strip() == "released"
    live_holder.proc.wait(timeout=30)
    with DomainLock(lock_path, "vcwave rollback"):
        pass


def test_stale_lock_of_dead_pid_reported_then_broken(lock_path: Path) -> None:
    dead = _dead_holder(lock_path)
    assert json.loads(lock_path.read_text())["pid"] == dead
    with pytest.raises(StaleLock) as info:
        DomainLock(lock_path, "vcwave upgrade").acquire()
    err = info.value
    assert err.exit_code == 2
    msg = str(err)
    assert "stale" in msg and f"pid {dead}" in msg and "--break-stale-lock" in msg
    assert "vcwave upgrade --plan p.json" in msg
    assert json.loads(lock_path.read_text())["pid"] == dead  # not stolen

    with DomainLock(lock_path, "vcwave upgrade --resume", break_stale=True) as lock:
        assert lock.broke["pid"] == dead
        info2 = json.loads(lock_path.read_text())
        assert info2["pid"] == os.getpid() and info2["command"] == "vcwave upgrade --resume"
        # the taken-over lock is a real lock: others are refused as for any live holder
        with pytest.raises(LockHeld):
            DomainLock(lock_path, "vcwave status", break_stale=True).acquire()
    assert not lock_path.exists()


def _forge(lock_path: Path, **holder) -> None:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": "vcwave upgrade",
            "started": "2030-01-01T00:00:00+00:00"}
    info.update(holder)
    lock_path.write_text(json.dumps(info))


def test_unlocked_file_with_live_pid_is_never_broken(lock_path: Path) -> None:
    """Not flock'ed but the pid is alive (pid reuse?): we cannot prove it dead, so we refuse."""
    _forge(lock_path, pid=os.getppid())
    with pytest.raises(LockHeld, match="alive"):
        DomainLock(lock_path, "vcwave upgrade", break_stale=True).acquire()
    assert lock_path.exists()


def test_other_host_is_never_broken(lock_path: Path) -> None:
    _forge(lock_path, host="some-other-host.example", pid=999_999_999)
    with pytest.raises(LockHeld, match="another host"):
        DomainLock(lock_path, "vcwave upgrade", break_stale=True).acquire()


RACER = """
import sys
from orchestrator.engine.lock import DomainLock, LockHeld, StaleLock, inspect_lock
try:
    lock = DomainLock(sys.argv[1], "racer", break_stale=True).acquire()
except LockHeld:
    print("held", flush=True)
    sys.exit(0)
print("won", flush=True)
sys.stdin.readline()
lock.release()
"""


def _verdict(proc: subprocess.Popen) -> str:
    for line in proc.stdout:  # skip log lines (the winner logs the take-over)
        if line.strip() in ("won", "held"):
            return line.strip()
    return "died: " + proc.stderr.read()


def test_racing_breakers_exactly_one_wins(lock_path: Path) -> None:
    """Several processes break the same stale lock at once: one takes it, every other one is refused."""
    _dead_holder(lock_path)
    procs = [subprocess.Popen(python_argv("-c", RACER, str(lock_path)), env=_env(), text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(8)]
    try:
        results = [_verdict(p) for p in procs]
        assert sorted(results) == ["held"] * 7 + ["won"], [p.stderr.read() for p in procs if p.poll()]
    finally:
        for p in procs:
            try:
                p.stdin.write("\n")
                p.stdin.close()
            except BrokenPipeError:  # a refused racer has already exited
                pass
            p.wait(timeout=30)
    assert not lock_path.exists()


def test_inspect_lock_tells_status_none_held_or_stale_without_touching_it(lock_path: Path) -> None:
    """`status` reads the lock (no flock taken): none, a live holder, a killed one (stale, named as such)."""
    assert inspect_lock(lock_path) == ("", "")
    with DomainLock(lock_path, "vcwave upgrade --wave psc"):
        kind, who = inspect_lock(lock_path)
        assert kind == "held" and f"pid {os.getpid()}" in who and "upgrade --wave psc" in who
    dead = _dead_holder(lock_path)
    before = lock_path.read_bytes()
    kind, who = inspect_lock(lock_path)
    assert kind == "stale" and f"pid {dead}" in who
    assert lock_path.read_bytes() == before
    _forge(lock_path, host="some-other-host.example", pid=999_999_999)
    assert inspect_lock(lock_path)[0] == "held"  # cannot be proven dead from here

"""vcwave commands as real processes, without paying their imports each time: forked from a warm process.

The fault harness drives vcwave the way an administrator does, one process per command, so that kill -9
hits a real process group and exit codes are the real ones. Each fresh `python -m ...` spends ~0.6 s of CPU
importing invoke, pyVmomi and the orchestrator before it does anything, and a crash point runs ten of them:
that, not the testing, was most of the suite's CPU. Here one server process imports all of it once and, for
each command, forks a child that starts its own session (its own process group, as `start_new_session`),
takes the caller's stdin/stdout/stderr (passed over a UNIX socket), working directory and environment, and
runs the very entry point `python -m lab.harness invoke ...` runs. The child's pid goes back to the caller at
once; its exit status (negative signal number when killed, like subprocess) when it ends.

The server is single-threaded (forking a threaded process is unsafe) and started lazily, one per process
that uses it, or by a parent for its children (the test session's controller, for its workers); it exits
when the process that started it does (its stdin is a pipe from it). Only commands that go through
the harness's tuned entry point are forked: the plain `python -m invoke` path stays a fresh interpreter, so
start-up and exit-code plumbing keep being exercised for real.
"""
from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import IO

from lab.warm_relay import ENV_SERVER_PID

ROOT = Path(__file__).resolve().parents[1]
PRELOAD = ("invoke", "invoke.main", "yaml", "orchestrator.connect", "orchestrator.commands.session",
           "orchestrator.commands.waves", "orchestrator.commands.plan", "orchestrator.commands.status",
           "orchestrator.commands.rollback", "orchestrator.commands.repoint", "orchestrator.commands.report",
           "orchestrator.log", "orchestrator.cli.program", "orchestrator.console", "lab.harness", "lab.daemon",
           "lab.vmevents", "lab.mgmt", "lab.vcsim", "lab.installer_standin")
# modules whose main(argv) a child may run (the installer stand-in through lab/warm_relay.py)
ENTRY_POINTS = ("lab.harness", "lab.daemon", "lab.installer_standin")
PYTHON = "python"  # or `python [-u] [-B] -c CODE` (a test session's xdist worker, through lab/warm_relay.py)
MAX_MSG = 1 << 20
SHARED_ENV = "VCWAVE_WARMCLI_SOCKET"  # a parent's server, adopted by WarmCli.shared (share_with_children)
SHARED_PID_ENV = ENV_SERVER_PID  # and its pid
PARENT_WAIT = 60.0  # seconds a child waits for its parent's server to listen (it imports everything first)
RELAY = Path(__file__).resolve().parent / "warm_relay.py"


def relay_argv(sock: str, program: str, args: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The command line of `program ARGS` (an entry point, or `python` with `[-u] [-B] -c CODE`) forked from the
    server listening at `sock`, through lab/warm_relay.py (which waits for a socket not there yet while the
    server lives, and runs a fresh interpreter when there is none)."""
    return [sys.executable, "-S", str(RELAY), "--socket", sock, program, *args]


# ------------------------------------------------------------------------------------------------- server
def _child(header: dict, fds: list[int], server_fds: tuple[int, ...], in_session: int) -> None:
    """In the forked child: become the command (own session, its stdio, cwd, env), run it, exit with its code.
    `in_session` is closed once the session exists: only then does the caller learn the pid (a kill -9 of the
    process group sent earlier would find no group)."""
    code = 1
    try:
        os.setsid()
        os.close(in_session)
        signal.set_wakeup_fd(-1)
        for fd in server_fds:
            os.close(fd)
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
        for fd in fds:
            os.close(fd)
        os.chdir(header["cwd"])
        os.environ.clear()
        os.environ.update(header["env"])
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the only handler the server changed: the rest (SIGPIPE
        # ignored, SIGINT -> KeyboardInterrupt) is what a fresh interpreter has too
        sys.stdout.reconfigure(write_through=True)
        module = header["module"]
        if module == PYTHON:
            code = _python_c(list(header["argv"]))
        elif module not in ENTRY_POINTS:
            raise SystemExit(f"warmcli: {module} is not an entry point it runs")
        else:
            sys.argv = [f"python -m {module}", *header["argv"]]
            code = int(importlib.import_module(module).main(list(header["argv"])) or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - what an uncaught exception does to a fresh interpreter
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed pipe: nothing left to say
                pass
        os._exit(code)


def _python_c(argv: list[str]) -> int:
    """`python [-u] [-B] -c CODE [ARGS]` in the child: CODE run as a fresh interpreter's `__main__`, then the
    exit functions a fresh interpreter runs (the child leaves through os._exit). -u is what the child's
    write-through stdout already is."""
    flags = argv[:argv.index("-c")] if "-c" in argv else argv
    if set(flags) - {"-u", "-B"} or "-c" not in argv or len(argv) <= len(flags) + 1:
        raise SystemExit(f"warmcli: only `python [-u] [-B] -c CODE` runs here, not {argv[:3]}")
    sys.dont_write_bytecode = sys.dont_write_bytecode or "-B" in flags
    code, sys.argv = argv[len(flags) + 1], ["-c", *argv[len(flags) + 2:]]
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    try:
        exec(compile(code, "<string>", "exec"), main.__dict__)  # noqa: S102 - the caller's own program
    finally:
        atexit._run_exitfuncs()
    return 0


def _exit_code(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def serve(sock_path: str, preload: tuple[str, ...] = ()) -> None:
    """Accept spawn requests until the parent goes away (stdin closes). `preload`: more modules to import
    first (what the starter's children will import: a test session's for its workers), or `module:function`
    to call once imported (a cache every child would fill for itself, filled once here)."""
    for name in (*PRELOAD, *preload):  # only a head start: a module that moved is imported by the child when it needs it
        module, _, function = name.partition(":")
        with contextlib.suppress(ImportError, AttributeError):
            loaded = importlib.import_module(module)
            if function:
                getattr(loaded, function)()
    # What every child inherits, out of the collector's sight: a child's first full collection walked (and so
    # wrote to) every inherited object, copying each page of the server's heap into the child (~90 ms of CPU for
    # a child of a test session's server). Frozen, a forked command costs ~20 % less (the harness's 57 commands
    # of a run: 11.2 -> 8.8 s of CPU). What is frozen is the imported modules: they live as long as the server.
    gc.freeze()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path + ".bind")
    srv.listen(64)
    os.rename(sock_path + ".bind", sock_path)  # the path appears only once it listens (WarmCli.shared waits for it)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ, "accept")
    sel.register(wake_r, selectors.EVENT_READ, "child")
    sel.register(sys.stdin, selectors.EVENT_READ, "parent")
    waiting: dict[int, socket.socket] = {}
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data == "parent" and not os.read(sys.stdin.fileno(), 1):
                return
            if key.data == "child":
                os.read(wake_r, 4096)
            elif key.data == "accept":
                _accept(srv, sel, waiting, (wake_r, wake_w))
            elif isinstance(key.data, int) and not _alive(key.fileobj):
                sel.unregister(key.fileobj)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(key.data, signal.SIGKILL)
        _reap(waiting, sel)


def _accept(srv: socket.socket, sel: selectors.BaseSelector, waiting: dict[int, socket.socket],
            wake: tuple[int, int]) -> None:
    """One spawn request. A caller that went away meanwhile (killed, timed out) costs its own request only: the
    server serves every other caller (a test session's workers share it)."""
    conn, _ = srv.accept()
    try:
        msg, fds, _flags, _addr = socket.recv_fds(conn, MAX_MSG, 3)
        header = json.loads(msg)
    except (OSError, ValueError):
        conn.close()
        return
    sys.stdout.flush()
    session_r, session_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(session_r)
        _child(header, fds, (srv.fileno(), conn.fileno(), *wake), session_w)
    os.close(session_w)
    os.read(session_r, 1)  # EOF once the child has its own session
    os.close(session_r)
    for fd in fds:
        os.close(fd)
    waiting[pid] = conn
    try:
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    except OSError:  # the caller is gone: its child is still reaped (and told nobody)
        return
    if header.get("tied"):  # the caller's end ends the child (lab/warm_relay.py)
        sel.register(conn, selectors.EVENT_READ, pid)


def _alive(conn: socket.socket) -> bool:
    """A tied caller said nothing: readable means it went away (EOF or reset)."""
    try:
        return bool(conn.recv(1))
    except OSError:
        return False


def _reap(waiting: dict[int, socket.socket], sel: selectors.BaseSelector) -> None:
    while waiting:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = waiting.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(conn)
            try:
                conn.sendall(json.dumps({"exit": _exit_code(status)}).encode() + b"\n")
            except OSError:
                pass  # the caller went away: nobody to tell
            conn.close()


# ------------------------------------------------------------------------------------------------- client
class WarmProcess:
    """The subset of subprocess.Popen the harness uses: pid, poll, wait, returncode, stderr."""

    def __init__(self, conn: socket.socket, stdout: IO[str] | None, stderr: IO[str] | None) -> None:
        self._conn, self._buf = conn, b""
        self.stdout, self.stderr = stdout, stderr
        self.pid = int(self._message(None)["pid"])
        self.returncode: int | None = None

    def _message(self, timeout: float | None) -> dict:
        self._conn.settimeout(timeout)
        while b"\n" not in self._buf:
            chunk = self._conn.recv(4096)
            if not chunk:
                raise OSError("the warm CLI server closed the connection (it died?)")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = int(self._message(0.0)["exit"])
            except (BlockingIOError, socket.timeout):
                return None
            self._done()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                self.returncode = int(self._message(timeout)["exit"])
            except socket.timeout:
                raise subprocess.TimeoutExpired("warm cli", timeout) from None
            self._done()
        return self.returncode

    def _done(self) -> None:
        self._conn.close()
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.seek(0)


class WarmCli:
    """One server per process, started on first use; or the one a parent process shares with its children
    (`share_with_children`: a test session's controller, so that its workers, which all fork commands, pay
    the server's imports once instead of once each)."""

    _lock = threading.Lock()
    _instance: "WarmCli | None" = None

    def __init__(self, adopt: str | None = None, *, wait: bool = True, preload: tuple[str, ...] = ()) -> None:
        self.proc: subprocess.Popen | None = None
        self._dir: str | None = None
        if adopt is not None:  # a parent's server: it owns it (and stops it)
            self.sock, self.pid = adopt, int(os.environ.get(SHARED_PID_ENV) or 0)
            return
        self._dir = tempfile.mkdtemp(prefix="vcwave-warmcli-")
        self.sock = os.path.join(self._dir, "s")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", ""))
                                                            if p)}
        env.pop(SHARED_ENV, None)
        env.pop(SHARED_PID_ENV, None)
        extra = [",".join(preload)] if preload else []
        self.proc = subprocess.Popen([sys.executable, "-m", "lab.warmcli", self.sock, *extra], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, cwd=str(ROOT))
        self.pid = self.proc.pid  # the server's: the commands it forks are its children
        atexit.register(self.close)
        if wait:
            line = self.proc.stdout.readline() if self.proc.stdout else b""
            if line.strip() != b"ready":
                raise RuntimeError(f"the warm CLI server did not start (exit {self.proc.poll()})")

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        try:  # a parent's server
            os.kill(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    @classmethod
    def shared(cls) -> "WarmCli":
        with cls._lock:
            if cls._instance is None or not cls._instance.running():
                parent = os.environ.get(SHARED_ENV, "") if cls._instance is None else ""  # adopted once only
                cls._instance = cls(parent) if parent and _appears(parent, PARENT_WAIT) else cls()
            return cls._instance

    @classmethod
    def share_with_children(cls, preload: tuple[str, ...] = ()) -> "WarmCli":
        """Start this process's server now, without waiting for it to be ready, and name its socket to every
        child process started from now on (they adopt it in `shared`, waiting for it to listen). `preload`:
        what those children import beyond the commands (a test session's workers, forked through
        lab/warm_relay.py)."""
        with cls._lock:
            if cls._instance is None or not cls._instance.running():
                cls._instance = cls(wait=False, preload=preload)
            os.environ[SHARED_ENV] = cls._instance.sock
            os.environ[SHARED_PID_ENV] = str(cls._instance.pid)
            return cls._instance

    def spawn(self, argv: list[str], cwd: str | Path, env: dict[str, str], *, module: str = "lab.harness",
              stdout: IO | None = None, capture_stdout: bool = True, capture_stderr: bool = True) -> WarmProcess:
        """Start `python -m MODULE ARGV` as a forked child in its own session; stdin is /dev/null. Output goes
        to `stdout` when given (stderr with it), else to text files read back after exit, or nowhere."""
        out = stdout or (tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") if capture_stdout else None)
        err = None if stdout else (tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
                                   if capture_stderr else None)
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            fds = [devnull, out.fileno() if out else devnull, (err or out).fileno() if (err or stdout) else devnull]
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(self.sock)
            header = json.dumps({"module": module, "argv": list(argv), "cwd": str(cwd), "env": dict(env)}).encode()
            socket.send_fds(conn, [header], fds)
        finally:
            os.close(devnull)
        return WarmProcess(conn, None if stdout else out, err)

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(self.sock)
            os.rmdir(self._dir)


def _appears(path: str, timeout: float) -> bool:
    """Wait until a server listens at `path` (its socket file exists once it is bound and listening)."""
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= end:
            return False
        time.sleep(0.02)
    return True


def run(argv: list[str], cwd: str | Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Like subprocess.run(capture_output=True, text=True, timeout=...) of `python -m lab.harness ARGV`."""
    proc = WarmCli.shared().spawn(argv, cwd, env)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return subprocess.CompletedProcess(["python -m lab.harness", *argv], code, out, err)


if __name__ == "__main__":
    serve(sys.argv[1], tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else ())

"""A process that is really a fork of the warm server: the installer stand-in, or a test session's worker.

Why: some processes the lab and the tests start are fresh interpreters that spend most of their CPU importing.
The product runs its installer as a process of its own, and in the lab that process was a fresh interpreter
importing the stand-in and vcwave's release data (~0.16 s of CPU) for a run that does ~30 ms of work; a test
suite runs it ~80 times. Each pytest-xdist worker imported pytest, Hypothesis, pyVmomi, cryptography and
vcwave (~0.9 s of CPU, six workers). When a warm server is there (lab/warmcli.py: the process that already
forks the lab and the harness's commands, with those modules imported), this relay, started with `python -S`
and the standard library only (~15 ms), has the server fork the program with the relay's own stdin, stdout,
stderr, working directory, environment and arguments, and lives exactly as long as it:

- its exit status is the program's (a program killed by a signal kills the relay with the same signal);
- a signal the relay gets (SIGTERM, SIGINT, SIGHUP: the product stopping its installer's process group) is
  passed on to the program's group; a relay killed outright (SIGKILL) closes its connection, and the server
  then kills the program: it never outlives the process that started it and watches;
- the relay's command line is the program's (the installer template's path in it, which is how a resumed
  vcwave finds an installer whose pid it never journaled).

Usage: `python -S warm_relay.py [--socket PATH] PROGRAM [ARGS...]`, PROGRAM one of the server's entry points
(`lab.installer_standin`: `python -m PROGRAM ARGS`) or `python` (`python ARGS`, ARGS being `[-u] [-B] -c CODE`:
execnet's bootstrap of an xdist worker). The socket is PATH, else $VCWAVE_WARM_SOCKET; a PATH not there yet
is waited for while its server lives (the test session's server imports before it listens). Without a
server (a rehearsal, a lab started by hand, a server gone), the relay becomes the program in a fresh
interpreter instead.
"""
from __future__ import annotations

# The interpreter's C modules only: `json`, `socket` and `signal` each cost ~15 ms of CPU to import (enum, re),
# which made a relay cost 35 ms of CPU instead of 22 ms, ~95 relays a test run (the installer stand-in, the workers).
import _json
import _signal
import _socket
import array
import os
import sys
import time

ENV_WARM_SOCKET = "VCWAVE_WARM_SOCKET"
ENV_SERVER_PID = "VCWAVE_WARMCLI_PID"  # the shared server's pid (lab/warmcli.py names it to its children)
PYTHON = "python"  # the program `python ARGS` (lab/warmcli.py runs its `-c CODE` form)
RELAYED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)
SOCKET_WAIT = 60.0  # seconds to wait for a --socket that is not there yet (its server is importing)


def _fresh(program: str, args: list[str]) -> None:
    """No warm server to ask: the program in a fresh interpreter (the caller's PYTHONPATH finds it)."""
    os.execv(sys.executable, [sys.executable, *(args if program == PYTHON else ["-m", program, *args])])


def alive(pid: int | None) -> bool:
    """The process `pid` runs (not a zombie; a pid of another user's counts as running): the lab's daemons and
    this relay's server alike (standard library only, like the rest of this file)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return True


def _connect(path: str, wait: float) -> _socket.socket | None:
    """The server's connection; a socket not there yet is waited for while its server (its pid in
    $VCWAVE_WARMCLI_PID, when set) lives, at most `wait` seconds."""
    end = time.monotonic() + wait
    server = int(os.environ.get(ENV_SERVER_PID) or 0)
    while not os.path.exists(path) and time.monotonic() < end and (not server or alive(server)):
        time.sleep(0.02)
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return None
    return conn


def _json_text(value: object) -> str:
    """JSON of the header (strings, lists of strings, a dict of strings, a bool), as json.dumps writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_json_text(k)}: {_json_text(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"warm_relay: cannot send {type(value).__name__}")


def _answer(conn: _socket.socket, pending: bytearray) -> int | None:
    """The server's next answer, `{"pid": N}` or `{"exit": N}` on a line of its own: N; None once it closed."""
    while b"\n" not in pending:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        pending += chunk
    line, _, rest = bytes(pending).partition(b"\n")
    pending[:] = rest
    return int(line.rpartition(b":")[2].strip(b" }"))


def main(argv: list[str]) -> int:
    path, wait = os.environ.get(ENV_WARM_SOCKET, ""), 0.0
    if argv[:1] == ["--socket"]:
        path, wait, argv = argv[1], SOCKET_WAIT, argv[2:]
    program, args = argv[0], argv[1:]
    conn = _connect(path, wait) if path else None
    if conn is None:
        _fresh(program, args)
    pending: list[int] = []
    child: list[int] = []

    def relay(signum: int, _frame: object) -> None:
        if not child:
            pending.append(signum)
            return
        try:
            os.killpg(child[0], signum)
        except ProcessLookupError:
            pass

    for s in RELAYED:
        _signal.signal(s, relay)
    header = {"module": program, "argv": args, "cwd": os.getcwd(), "env": dict(os.environ), "tied": True}
    fds = array.array("i", [0, 1, 2]).tobytes()  # what socket.send_fds sends: stdin, stdout, stderr
    conn.sendmsg([_json_text(header).encode()], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
    answers = bytearray()
    started = _answer(conn, answers)
    if started is None:  # the server went away before it forked: nothing ran, so run it fresh
        _fresh(program, args)
    child.append(started)
    for signum in pending:
        relay(signum, None)
    code = _answer(conn, answers)
    code = 1 if code is None else code
    if code < 0:  # killed by a signal: end the same way, so that the product sees what it would have seen
        if -code not in (_signal.SIGKILL, _signal.SIGSTOP):  # the two whose handling cannot be set (nor needs it)
            _signal.signal(-code, _signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

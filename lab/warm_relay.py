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

import json
import os
import signal
import socket
import sys
import time

ENV_WARM_SOCKET = "VCWAVE_WARM_SOCKET"
ENV_SERVER_PID = "VCWAVE_WARMCLI_PID"  # the shared server's pid (lab/warmcli.py names it to its children)
PYTHON = "python"  # the program `python ARGS` (lab/warmcli.py runs its `-c CODE` form)
RELAYED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
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


def _connect(path: str, wait: float) -> socket.socket | None:
    """The server's connection; a socket not there yet is waited for while its server (its pid in
    $VCWAVE_WARMCLI_PID, when set) lives, at most `wait` seconds."""
    end = time.monotonic() + wait
    server = int(os.environ.get(ENV_SERVER_PID) or 0)
    while not os.path.exists(path) and time.monotonic() < end and (not server or alive(server)):
        time.sleep(0.02)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return None
    return conn


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
        signal.signal(s, relay)
    header = {"module": program, "argv": args, "cwd": os.getcwd(), "env": dict(os.environ), "tied": True}
    socket.send_fds(conn, [json.dumps(header).encode()], [0, 1, 2])
    answers = conn.makefile("rb")
    started = answers.readline()
    if not started:  # the server went away before it forked: nothing ran, so run it fresh
        _fresh(program, args)
    child.append(int(json.loads(started)["pid"]))
    for signum in pending:
        relay(signum, None)
    line = answers.readline()
    code = int(json.loads(line)["exit"]) if line else 1
    if code < 0:  # killed by a signal: end the same way, so that the product sees what it would have seen
        if -code not in (signal.SIGKILL, signal.SIGSTOP):  # the two whose handling cannot be set (nor needs it)
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The installer stand-in as a warm fork: what `vcsa-deploy` runs when a warm server is there.

Why: the product runs its installer as a process of its own, and in the lab that process was a fresh
interpreter importing the stand-in and vcwave's release data (~0.16 s of CPU) for a run that does ~30 ms of
work; a test suite runs it ~80 times. When VCWAVE_WARM_SOCKET names a warm server (lab/warmcli.py: the
process that already forks the lab and the harness's commands), this relay, started with `python -S` and
the standard library only (~15 ms), has the server fork the stand-in with the relay's own stdin, stdout,
stderr, working directory, environment and arguments, and lives exactly as long as it:

- its exit status is the stand-in's (a stand-in killed by a signal kills the relay with the same signal);
- a signal the relay gets (SIGTERM, SIGINT, SIGHUP: the product stopping its installer's process group) is
  passed on to the stand-in's group; a relay killed outright (SIGKILL) closes its connection, and the server
  then kills the stand-in: the installer never outlives the process the product started and watches;
- the relay's command line is the installer's (the template's path in it, which is how a resumed vcwave finds
  an installer whose pid it never journaled).

Without a warm server (a rehearsal, a lab started by hand, a server gone), the wrapper runs the stand-in in
a fresh interpreter as before: `exec python -m lab.installer_standin`.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys

ENV_WARM_SOCKET = "VCWAVE_WARM_SOCKET"
MODULE = "lab.installer_standin"
RELAYED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _fresh(argv: list[str]) -> None:
    """No warm server to ask: the stand-in in a fresh interpreter (the wrapper's PYTHONPATH finds it)."""
    os.execv(sys.executable, [sys.executable, "-m", MODULE, *argv])


def _connect(path: str) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return None
    return conn


def main(argv: list[str]) -> int:
    path = os.environ.get(ENV_WARM_SOCKET, "")
    conn = _connect(path) if path else None
    if conn is None:
        _fresh(argv)
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
    header = {"module": MODULE, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "tied": True}
    socket.send_fds(conn, [json.dumps(header).encode()], [0, 1, 2])
    answers = conn.makefile("rb")
    started = answers.readline()
    if not started:  # the server went away before it forked: nothing ran, so run it fresh
        _fresh(argv)
    child.append(int(json.loads(started)["pid"]))
    for signum in pending:
        relay(signum, None)
    line = answers.readline()
    code = int(json.loads(line)["exit"]) if line else 1
    if code < 0:  # killed by a signal: end the same way, so that the product sees what it would have seen
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

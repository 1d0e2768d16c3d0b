"""Ports a lab keeps for its nodes for its whole life, even while a node is down.

Why: a node's REST twin stops listening while the node reboots (connection refused, as the real appliance)
and its vcsim is restarted on an install or a repoint; both come back on the SAME port, the one written in the
lab's inventory that vcwave connects to. A port taken from the kernel (bind to port 0) is an ephemeral port:
while the node is down, the kernel may hand it to another lab's vcsim (another xdist worker) or use it as a
client connection's source port, and the node cannot listen again (seen as "address already in use" on a
restarted vcsim in `tests/lab/test_installer_standin.py::test_full_lab_upgrade_keeps_identity`).

So the lab takes its ports from a range below the kernel's ephemeral range (ip_local_port_range), which no
port-0 bind and no client source port uses, and reserves each one with an flock on a file named after it in
a folder every lab on the machine shares. The lock lives as long as the daemon's open file: it is released
by `close()` and by the kernel when the daemon dies, even by kill -9, so a port is never leaked.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import tempfile
from pathlib import Path

FIRST_PORT = 20000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOCK_DIR = Path(tempfile.gettempdir()) / "vcwave-lab-ports"


class PortsExhausted(OSError):
    """Every port of the lab range is reserved by a running lab or in use."""


def lab_range() -> range:
    """The ports below the kernel's ephemeral range (32768 by default on Linux), from FIRST_PORT."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(FIRST_PORT, max(FIRST_PORT + 1, low))


def _free(port: int) -> bool:
    """Nothing listens on it now (a stopped lab's port in TIME_WAIT counts as free, as for the servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortBook:
    """The ports one lab holds; `reserve()` one per listening node, `close()` when the lab stops."""

    def __init__(self, lock_dir: Path = LOCK_DIR) -> None:
        self.lock_dir = lock_dir
        self.lock_dir.mkdir(mode=0o777, exist_ok=True)
        self._held: dict[int, int] = {}  # port -> fd of its locked file

    @property
    def ports(self) -> set[int]:
        return set(self._held)

    def reserve(self, preferred: int = 0) -> int:
        """`preferred` (the port a resumed lab's inventory names) when it is still free, else the next free
        port of the range after a per-process start point (labs started together do not race for one port)."""
        span = lab_range()
        if preferred in self._held:
            return preferred
        if preferred in span and self._take(preferred):
            return preferred
        start = os.getpid() * 7919 % len(span)
        for i in range(len(span)):
            port = span[(start + i) % len(span)]
            if port not in self._held and self._take(port):
                return port
        raise PortsExhausted(errno.EADDRINUSE, f"no free lab port in {span.start}-{span.stop - 1}")

    def _take(self, port: int) -> bool:
        fd = os.open(self.lock_dir / str(port), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        if not _free(port):
            os.close(fd)
            return False
        self._held[port] = fd
        return True

    def close(self) -> None:
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()

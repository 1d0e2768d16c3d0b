"""Whether a process id names a live process: the one answer that the domain lock (a stale holder), the
installer step (an installer outliving vcwave) and the installer client (a dead run's template) share."""
from __future__ import annotations

import os


def pid_alive(pid: int | str) -> bool:
    """True for a running process (ours or another user's); False for none, or a zombie waiting to be reaped."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[-1].split()[0] != "Z"
    except OSError:
        return True

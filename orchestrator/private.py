"""Where vcwave keeps its state on disk: folders 0700, files 0600, whatever the umask.

Why one module: the state folder holds secrets-adjacent data (the journal names every node, backup
location and session outcome; the event log is a debug stream; the installer's filled template carries
passwords while it lives). A default umask makes them 0755/0644, readable by every local user. The journal,
the event log, the lock and the plan writer all create their folders here, and their files with
`private_fd`, so that no file is world-readable even for an instant. Folders that already exist are left as
the operator made them (never chmod a folder vcwave did not create).
"""
from __future__ import annotations

import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_dirs(folder: Path) -> list[Path]:
    """Create `folder` and its missing ancestors, each 0700; return the ones created, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        try:
            made.mkdir(mode=FOLDER_MODE)
        except FileExistsError:  # another vcwave made it first
            continue
        os.chmod(made, FOLDER_MODE)  # mkdir's mode is filtered by the umask
    return missing


def private_fd(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """Open (creating it 0600) a file of the state folder."""
    return os.open(path, flags, FILE_MODE)

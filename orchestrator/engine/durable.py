"""Durability helpers shared by the journal and the lock: a rename or link is only durable once the
directory that holds it is fsync'ed."""
from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

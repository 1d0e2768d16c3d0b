"""Where a command writes (`--out`, `--state-dir`): checked before anything is computed or written.

Why: a folder given for a file, a path under a file or a place nobody may write ended in IsADirectoryError,
FileExistsError, NotADirectoryError or PermissionError tracebacks, after the work was done and with a stray
`.tmp` next to the target. Each is bad input (exit 2) naming the flag and the path; the structural checks run
first, and a write that still fails (a read-only filesystem, a full disk) is reported the same way, its
temporary file removed.
"""
from __future__ import annotations

import os
from pathlib import Path

from orchestrator.errors import InputError, Where
from orchestrator.private import private_dirs


def _refuse(flag: str, path: Path, why: str) -> InputError:
    return InputError(f"{path}: {why}", Where(field=flag))


def _nearest_existing(path: Path) -> Path:
    """`path` itself or the closest ancestor that exists (what a later mkdir would build under)."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_folder(flag: str, path: str | Path, *, shown: Path | None = None) -> Path:
    """A folder vcwave may create and write into: not a file, not under a file, in a writable place.
    `shown` is the path the user gave, when `path` is its folder (`check_file`)."""
    p = Path(path)
    shown = shown or p
    base = _nearest_existing(p)
    if not base.is_dir():
        why = ("is a file, not a folder" if base == shown.absolute()
               else f"{base} is a file, so nothing can be made under it")
        raise _refuse(flag, shown, why)
    if not os.access(base, os.W_OK | os.X_OK):
        raise _refuse(flag, shown, f"{base} is not writable")
    return p


def check_file(flag: str, path: str | Path) -> Path:
    """A file vcwave may (re)write: not an existing folder, in a folder `check_folder` accepts."""
    p = Path(path)
    if p.is_dir():
        raise _refuse(flag, p, f"is a folder; name a file in it instead (e.g. {p / 'plan.json'})")
    check_folder(flag, p.parent, shown=p)
    return p


def write_atomic(flag: str, path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename; a failure removes the temporary file
    and is reported as bad input naming `flag` (the target keeps its old content)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        private_dirs(path.parent)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _refuse(flag, path, f"cannot write it: {exc.strerror or exc}") from None

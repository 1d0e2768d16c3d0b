"""Errors that end a command with a clear message.

Why one module: every bad input (inventory, playbook, plan, flag, server answer) must say *where* it is
wrong (file, line, field, node) and exit 2 with nothing changed. The tasks layer maps these to exit codes.
"""
from __future__ import annotations

from dataclasses import dataclass


class VcwaveError(Exception):
    """Base for errors vcwave reports to the user. `exit_code` is what the command exits with."""

    exit_code = 1


@dataclass(frozen=True)
class Where:
    """A place in an input file, as precise as we know it."""

    file: str = ""
    line: int | None = None
    field: str = ""
    node: str = ""

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file + (f":{self.line}" if self.line else ""))
        if self.node:
            parts.append(f"node {self.node}")
        if self.field:
            parts.append(f"field '{self.field}'")
        return ", ".join(parts)


class InputError(VcwaveError):
    """Bad input: inventory, playbook, plan, flags. Nothing was done; exit 2."""

    exit_code = 2

    def __init__(self, message: str, where: Where | None = None, rule: str = "") -> None:
        self.where = where or Where()
        self.message = message
        self.rule = rule
        text = f"{self.where}: {message}" if str(self.where) else message
        if rule:
            text += f" [rule: {rule}]"
        super().__init__(text)


class RefusedError(VcwaveError):
    """A safety rule refuses the action (site-by-site plan, unsafe repoint, vCenter wave too early...). Exit 2."""

    exit_code = 2

    def __init__(self, message: str, rule: str = "", node: str = "") -> None:
        self.rule = rule
        self.node = node
        text = (f"node {node}: " if node else "") + message + (f" [rule: {rule}]" if rule else "")
        super().__init__(text)


class StepFailed(VcwaveError):
    """A step on a live node failed; the wave stopped in a journaled state. Exit 1, or 2 when what failed
    every step was a bad server answer (the README's promise for bad input of any kind)."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int = 1) -> None:
        self.exit_code = exit_code
        super().__init__(message)


def exit_code_of(exc: BaseException) -> int:
    """2 when a bad input or a bad server answer caused `exc` (anywhere in its chain of causes), else 1."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "exit_code", 1) == 2:
            return 2
        seen = seen.__cause__ or seen.__context__
    return 1

"""Secrets: read at run time from an environment variable or a 0600 file, never from the inventory.

`resolve_secret(cred) -> str` is the contract other modules use; `resolve(cred) -> Secret` returns the
masking wrapper the clients take. Every resolved value is registered with `orchestrator.scrub`,
so it is redacted from every log event, error text and cassette, whether or not it is revealed later.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator import scrub
from orchestrator.errors import InputError, Where

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.core.inventory import Credential


class Secret:
    """A secret string that prints as '***' (str, repr, format, logs); `.reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        object.__setattr__(self, "_value", value)
        scrub.register(value)

    def reveal(self) -> str:
        return self._value

    def __setattr__(self, name, value):  # immutable
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return scrub.MASK

    def __format__(self, spec: str) -> str:
        return scrub.MASK

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self):  # never pickle a secret by accident
        raise TypeError("a Secret cannot be pickled")


def as_secret(value: "Secret | str | None") -> "Secret | None":
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value)


def reveal(value: "Secret | str | None") -> str | None:
    return value.reveal() if isinstance(value, Secret) else value


def resolve(cred: "Credential") -> Secret:
    """Read a credential's secret (env var or 0600 file). Raises InputError naming the credential."""
    where = Where(field=f"credentials.{cred.name}")
    if cred.password_env:
        value = os.environ.get(cred.password_env)
        if value is None:
            raise InputError(f"credential '{cred.name}': environment variable {cred.password_env} is not set "
                             f"(export it, or use password_file)", where)
        if value == "":
            raise InputError(f"credential '{cred.name}': environment variable {cred.password_env} is empty", where)
        return Secret(value)
    if cred.password_file:
        path = Path(cred.password_file).expanduser()
        try:
            st = path.stat()
        except FileNotFoundError:
            raise InputError(f"credential '{cred.name}': password_file {path} does not exist", where) from None
        except OSError as exc:
            raise InputError(f"credential '{cred.name}': cannot read password_file {path}: {exc}", where) from None
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"credential '{cred.name}': password_file {path} is not a regular file", where)
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise InputError(f"credential '{cred.name}': password_file {path} has mode {mode:04o}; it must be "
                             f"0600 or stricter (chmod 600 {path})", where)
        try:
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise InputError(f"credential '{cred.name}': cannot read password_file {path}: {exc}", where) from None
        if not value:
            raise InputError(f"credential '{cred.name}': password_file {path} is empty", where)
        return Secret(value)
    raise InputError(f"credential '{cred.name}' names neither password_env nor password_file", where)


def resolve_secret(cred: "Credential") -> str:
    """The contract in docs/CONTRACTS.md: the secret as a plain str (registered for scrubbing)."""
    return resolve(cred).reveal()

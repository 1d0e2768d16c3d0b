"""Which key names hold secrets: the one list that the inventory, the journal, logs, the report and cassettes share.

Why one pure function: the inventory refuses a plaintext secret field, the journal refuses to store one,
and every scrubber masks one. Three lists used to disagree (`private_key` and `passphrase` were secret for
the journal and not for the logs), so a value refused in one place leaked through another. A key is cut
into words (`_`, `-`, `.`, spaces and camelCase humps); it is secret when its last word is a secret word
(`backup_password`, `clientSecret`, `set-cookie`) or its last two words form a secret pair (`private_key`,
`vmware-api-session-id`). Reference fields such as `password_env` or `password_file` name where a secret
lives, not the secret, so they are not secret keys.
"""
from __future__ import annotations

import re
from typing import Any

SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "token", "cookie", "authorization", "authorisation",
    "session",
})
SECRET_PAIRS = frozenset({
    ("private", "key"), ("api", "key"), ("session", "id"), ("session", "key"), ("access", "key"),
})

_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEP = re.compile(r"[^a-z0-9]+")


def key_words(key: str) -> list[str]:
    """'SFTP_Password' -> ['sftp', 'password']; 'clientSecret' -> ['client', 'secret']."""
    return [w for w in _SEP.split(_HUMP.sub("_", key).lower()) if w]


def is_secret_key(key: Any) -> bool:
    """True when a dict key / field / header name holds a secret value (see the module docstring)."""
    if not isinstance(key, str):
        return False
    words = key_words(key)
    if not words:
        return False
    return words[-1] in SECRET_WORDS or tuple(words[-2:]) in SECRET_PAIRS

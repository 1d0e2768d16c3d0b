"""SHA-256 certificate thumbprints as VMware shows them (`AA:BB:...:FF`, 32 colon-separated bytes).

Pure, so that the inventory can refuse a malformed pin when it is read, and the TLS layer compares the
same normal form (64 lower-case hex digits) with what the server presents.
"""
from __future__ import annotations

import hashlib

_HEX = frozenset("0123456789abcdef")


def normalize_thumbprint(text: str) -> str:
    """'AA:bb:..' or 'aabb..' -> 'aabb..'. Raises ValueError unless it is a SHA-256 thumbprint."""
    t = str(text).replace(":", "").replace(" ", "").lower()
    if len(t) != 64 or not set(t) <= _HEX:
        raise ValueError(f"thumbprint must be a SHA-256 fingerprint (32 colon-separated hex bytes, as the vSphere "
                         f"client or `openssl x509 -fingerprint -sha256` show it), got {text!r}")
    return t


def sha256_thumbprint(der: bytes) -> str:
    """The colon-separated upper-case SHA-256 fingerprint of a DER certificate."""
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))

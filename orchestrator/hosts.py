"""Host names: the one rule for 'loopback', which decides where plain http is allowed (only the local lab).
Both the inventory's validation and the clients' transport ask it, so they can never disagree."""
from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False

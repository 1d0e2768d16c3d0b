"""Host names: the one rule for 'loopback', which decides where plain http is allowed (only the local lab).
Both the inventory's validation and the clients' transport ask it, so they can never disagree."""
from __future__ import annotations

import ipaddress
import re


def is_loopback(host: str) -> bool:
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)


def host_problem(host: str) -> str | None:
    """Why `host` is not a host name or an IP address vcwave can connect to (None when it is).

    Why here: a URL ('https://vc…'), a 'host:port' or a typo with spaces would otherwise reach a client
    and fail as a confusing DNS error mid-wave; the inventory refuses it up front with its field and line."""
    h = host.strip()
    if "://" in h or "/" in h:
        return "is a URL, not a host name: give the bare name (the scheme and port have their own fields)"
    try:
        ipaddress.ip_address(h.strip("[]"))
        return None
    except ValueError:
        pass
    if ":" in h:
        return "carries a port: give the bare name and set 'port'"
    name = h[:-1] if h.endswith(".") else h
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        return "is not a valid host name (letters, digits, '-' and '.' only, labels of 1-63 characters)"
    return None


def canonical_host(host: str) -> str:
    """The identity of a host: case and the DNS root's trailing dot do not make another machine."""
    return host.strip().strip("[]").lower().rstrip(".")

"""The lab's own record of what happened to each node: installs, reboots, restores, reverts, power operations.

Why it exists: "every node installed exactly once" must be judged from the domain, not from vcwave's journal
(the journal is what is under test). The twin sees every accepted action whichever door it came through
(REST twin, installer stand-in, the management vCenter's VM tasks, the control API), so it keeps one
append-only list in its state document (``state.json`` key ``ledger``), served by ``GET /lab/record``.
Fault triggers (`after:` in lab/faults.py) read the same counts.

An entry: ``{"seq": n, "t": epoch, "node": name, "event": EVENT, ...detail}``.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

EVENTS = (
    "install_started",     # an update install (or stage-and-install) accepted; an installer upgrade begun
    "reboot_started",      # the install's packages are in: the appliance reboots (the version is the new one)
    "install_completed",   # the appliance answers again at the new version (update: after its reboot)
    "install_failed",
    "stage_started",
    "backup_started",
    "backup_completed",
    "restore_started",
    "restore_completed",
    "restore_failed",
    "snapshot",            # a snapshot of the node's VM (current or kept installer source)
    "revert",              # a snapshot revert brought the node's VM back to what it carried then
    "power_on",
    "power_off",
    "boot_started",        # nothing listens, then services start (503)
    "boot_completed",      # the appliance answers again
    "rollback",            # the installer's rollback: new appliance off, source back
    "down",
    "revive",
    "corrupt",
    "delete",
    "restore_mode",        # a new appliance deployed, waiting for a restore
    "lost_reply",          # an accepted action whose answer the client never got
    "decommission_started",  # an external PSC's decommission accepted by a converged vCenter (lab/decommission.py)
    "decommissioned",      # the PSC is shut down and out of the SSO domain
)


def append(ledger: list[dict], now: float, node: str, event: str, **detail: Any) -> dict:
    """Add one entry (the caller holds the state lock and saves)."""
    if event not in EVENTS:
        raise ValueError(f"unknown ledger event {event!r}")
    entry = {"seq": len(ledger) + 1, "t": now, "node": node, "event": event, **detail}
    ledger.append(entry)
    return entry


def counts(ledger: Iterable[dict]) -> dict[str, dict[str, int]]:
    """{node: {event: n}} — what a test or the harness asserts ("installed exactly once")."""
    out: dict[str, Counter] = {}
    for e in ledger:
        out.setdefault(e["node"], Counter())[e["event"]] += 1
    return {n: dict(c) for n, c in out.items()}


def met(ledger: list[dict], after: dict[str, Any], roles: dict[str, str]) -> bool:
    """Is a fault's `after` condition (lab/faults.py) true of the record? roles: {node: psc|vcenter}."""
    event, node, role, count = after["event"], after.get("node", "*"), after.get("role"), after.get("count", 1)
    nodes = [n for n, r in roles.items() if (node in ("*", n)) and (role in (None, r))]
    per = Counter(e["node"] for e in ledger if e["event"] == event and e["node"] in nodes)
    if count == "all":
        return bool(nodes) and all(per[n] >= 1 for n in nodes)
    return sum(per.values()) >= int(count)

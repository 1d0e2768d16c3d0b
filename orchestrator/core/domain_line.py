"""What every node of the domain runs, in one line (pure): the header of `status`.

Why its own module: the SSO domain's version (core.history.domain_version) is the version of the nodes that
carry SSO, and during the vCenter wave it reads as done while every vCenter is behind; an administrator
asking "where is my domain?" needs each role's versions, how many are at the target, and which nodes did not
answer (their version is unknown, never the one the journal last recorded).
"""
from __future__ import annotations

from typing import Iterable, Mapping

from orchestrator.core.inventory import Inventory
from orchestrator.core.versions import Version, parse_version

ROLE_WORDS = {"psc": "PSCs", "vcenter": "vCenters"}


def _role_part(role: str, seen: list[tuple[str, str]], target: str) -> str:
    """'PSCs 6.7 U3 (3/3 at target)', 'vCenters 6.7 U1 ×1, unknown (vc-b) (0/2 at target)'."""
    labels: dict[str, list[str]] = {}
    for name, label in seen:
        labels.setdefault(label, []).append(name)
    parts = [f"unknown ({', '.join(names)})" if label == "unknown" else
             label + (f" ×{len(names)}" if len(labels) > 1 else "")
             for label, names in sorted(labels.items(), key=lambda kv: _release_order(kv[0]))]
    at = sum(1 for _, label in seen if label == target)
    return f"{ROLE_WORDS.get(role, role)} {', '.join(parts)} ({at}/{len(seen)} at target)"


def _release_order(label: str) -> tuple[int, Version | None]:
    """Older releases first, "unknown" last."""
    return (1, None) if label == "unknown" else (0, parse_version(label))


def domain_summary(inv: Inventory, versions: Mapping[str, Version | None], target: str,
                   decommissioned: Iterable[str] = ()) -> str:
    """What every node runs, in one line: one version when the whole domain runs it, else each role's
    versions and how many are at the target. A node that does not answer is "unknown" (never the version
    the journal last gave it), so a domain whose PSCs are done but whose vCenters are behind never reads as
    done. Why not the SSO domain version: the PSCs alone say nothing about the vCenters behind them."""
    gone = sorted(set(decommissioned))
    tail = f"; decommissioned: {', '.join(gone)}" if gone else ""  # left the SSO domain: silent by design
    nodes = [n for n in inv.nodes if n.name not in gone]
    labels = {n.name: versions[n.name].release if versions[n.name] is not None else "unknown" for n in nodes}
    if len(set(labels.values())) == 1 and "unknown" not in labels.values():
        return f"{next(iter(labels.values()))} on every node{tail}"
    by_role: dict[str, list[tuple[str, str]]] = {}
    for n in nodes:
        by_role.setdefault(n.role, []).append((n.name, labels[n.name]))
    mixed = len({v for v in labels.values() if v != "unknown"}) > 1
    return (("mixed" if mixed else "partly unknown") + " — " +
            ", ".join(_role_part(role, seen, target) for role, seen in by_role.items()) + tail)

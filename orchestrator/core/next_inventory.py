"""The inventory of the domain as a finished hop left it: what the next hop's `plan` reads (pure).

Why written by vcwave: after a converge hop the domain has another shape (the vCenters embed SSO and link
with each other, the external PSCs are decommissioned), and every node runs a new release. Asking the
administrator to edit the inventory by hand between two hops is where a wrong version or a forgotten `psc:`
slips in. `invoke finalize` writes it from the live versions it has just checked, next to the journal;
everything else (credentials by environment name, placement, backup targets, TLS) is kept as it was.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

FILENAME = "next-inventory.yml"


def next_inventory(raw: Mapping[str, Any], live: Mapping[str, tuple[str, int | None]],
                   decommissioned: Iterable[str], vms: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`raw` (the hop's inventory as read from YAML) with every node at the release and build it answered
    with (`live`: node -> (release, build)), on the appliance VM that serves it now (`vms`: node -> VM name,
    the installer's new appliance once its source is removed), the decommissioned PSCs gone and, once no PSC
    is left, the vCenters embedded (`topology: embedded`, `embedded_psc: true`, no `psc`)."""
    gone = set(decommissioned)
    out = copy.deepcopy(dict(raw))
    nodes = [dict(n) for n in out.get("nodes") or () if n.get("name") not in gone]
    embedded = not any(n.get("role") == "psc" for n in nodes)
    for n in nodes:
        release, build = live[n["name"]]
        n["version"] = release
        if n["name"] in (vms or {}):
            n["vm"] = {**(n.get("vm") or {}), "name": (vms or {})[n["name"]]}
        if build:
            n["build"] = build
        else:
            n.pop("build", None)
        if embedded and n.get("role") == "vcenter":
            n.pop("psc", None)
            n["embedded_psc"] = True
    out["nodes"] = nodes
    if embedded:
        out["topology"] = "embedded"
    return out


def header(source: str, target: str) -> str:
    """The comment that says where the file came from (YAML keeps no comment through a load and dump)."""
    return (f"# Written by `invoke finalize` after the hop to {target}, from {source} and the versions the nodes\n"
            f"# answered with: the inventory of the next hop (`invoke plan --inventory <this file> ...`).\n")

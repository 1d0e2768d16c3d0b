"""Compare what the inventory declares about a node with what the node says about itself. Pure.

Why: a plan built on a wrong inventory (a vCenter that is really at 6.7 U2, or that points at the PSC of
another site) would upgrade in the wrong order. Each mismatch names the node, the field and both values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

from orchestrator.core.inventory import Node
from orchestrator.core.versions import Version, catalogue, parse_version


class _About(Protocol):
    version: str
    build: str
    instance_uuid: str


class _Psc(Protocol):
    host: str


@dataclass(frozen=True)
class Mismatch:
    node: str
    field: str
    declared: str
    actual: str

    def __str__(self) -> str:
        return f"node {self.node}: {self.field} declared {self.declared!r}, node says {self.actual!r}"


def _host(h: str) -> str:
    """'psc-a.corp:443' / 'PSC-A.corp' -> 'psc-a.corp' (ports are not part of the identity)."""
    h = (h or "").strip().lower().rstrip(".")
    if h.startswith("[") and "]" in h:
        return h[1:h.index("]")]
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def actual_version(about: _About) -> Version | None:
    """vim25 says '6.7.0' + build; the catalogue turns the build into the update level."""
    try:
        v = parse_version(about.version, int(about.build) if str(about.build).isdigit() else None)
    except ValueError:
        return None
    return catalogue().resolve(v)


def compare_declared(node: Node, about: _About | None, psc_pointer: _Psc | None,
                     psc_host_by_name: Mapping[str, str]) -> list[Mismatch]:
    """Version/build, instance UUID and (vCenters) the PSC pointer, declared vs live."""
    out: list[Mismatch] = []
    if about is not None:
        live = actual_version(about)
        declared = node.version
        if live is None:
            out.append(Mismatch(node.name, "version", declared.release, f"{about.version} build {about.build}"))
        else:
            known = bool(live.build and catalogue().by_build(live.build))
            if live.line != declared.line or (known and (live.update, live.letter) != (declared.update,
                                                                                      declared.letter)):
                out.append(Mismatch(node.name, "version", declared.release, live.release))
            if declared.build and live.build and declared.build != live.build:
                out.append(Mismatch(node.name, "build", str(declared.build), str(live.build)))
        if node.instance_uuid and about.instance_uuid and node.instance_uuid.lower() != about.instance_uuid.lower():
            out.append(Mismatch(node.name, "instance_uuid", node.instance_uuid, about.instance_uuid))
    if node.role == "vcenter" and node.psc:
        want = psc_host_by_name.get(node.psc)
        if psc_pointer is None:
            out.append(Mismatch(node.name, "psc", f"{node.psc} ({want or '?'})", "(no config.vpxd.sso.* settings)"))
        elif want is not None and _host(want) != _host(psc_pointer.host):
            out.append(Mismatch(node.name, "psc", f"{node.psc} ({_host(want)})", _host(psc_pointer.host)))
    return out

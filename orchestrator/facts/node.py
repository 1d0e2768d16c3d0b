"""Read-only questions to a live node (pyinfra's facts): which version it runs, its identity, its health,
the PSC it uses and its inventory fingerprint. Nothing here changes anything.

Each answer says where it came from, because 5.5/6.0 nodes have no appliance REST API and PSCs have no
vim25: a missing source is a fact too ("no appliance API"), never an error by itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from orchestrator.clients.retry import BadAnswer, ClientError, NotFound
from orchestrator.core.inventory import Node
from orchestrator.core.versions import Version, VersionError, catalogue, parse_appliance_version, parse_version
from orchestrator.facts.compare import actual_version


@dataclass(frozen=True)
class NodeFacts:
    node: str
    reachable: bool
    version: Version | None = None
    version_source: str = ""  # "appliance" | "vim25" | ""
    has_rest: bool | None = None
    health: str = ""
    health_items_not_green: tuple[str, ...] = ()  # storage, database-storage, swap...: free space among them
    services_down: tuple[str, ...] = ()
    instance_uuid: str = ""
    psc_host: str = ""
    hosts: tuple[str, ...] = ()
    vms: tuple[str, ...] = ()
    datastores: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    bad_answer: bool = False  # one of the errors is a garbage answer (bad input from the server: exit 2)

    def baseline(self) -> dict[str, Any]:
        """What the journal keeps as the pre-upgrade identity (continuity checks compare to it)."""
        return {"version": self.version.release if self.version else "", "instance_uuid": self.instance_uuid,
                "psc_host": self.psc_host, "hosts": list(self.hosts), "vms": list(self.vms),
                "datastores": list(self.datastores)}


def appliance_version(conns: Any, node: Node) -> tuple[Version | None, bool]:
    """(version, has_rest). A 404 on every path means the node has no appliance REST API (5.5/6.0)."""
    try:
        v = conns.appliance(node).version()
    except NotFound:
        return None, False
    try:
        ver = parse_appliance_version(v.version)
        if str(v.build).isdigit():
            ver = catalogue().resolve(parse_version(ver.release, int(v.build)))
        return ver, True
    except VersionError:
        return None, True


def gather(conns: Any, node: Node, *, fingerprint: bool = True, health: bool = True,
           services: bool = False) -> NodeFacts:
    """Ask the node. Unreachable parts are recorded in `errors`, so callers decide what matters.
    `health` asks the health items and the services; `services` alone asks only which services are down
    (one request instead of eight: what a look at the whole domain before every batch can afford)."""
    errors: list[str] = []
    garbage = False
    version, has_rest, source = None, None, ""
    health_level, down, not_green = "", (), ()
    try:
        version, has_rest = appliance_version(conns, node)
        source = "appliance" if version else ""
        if has_rest and health:
            levels = conns.appliance(node).health()
            health_level = levels.system
            not_green = tuple(f"{k}={v}" for k, v in levels.items if v not in ("green", ""))
        if has_rest and (health or services):
            down = tuple(s.name for s in conns.appliance(node).services()
                         if s.state != "STARTED" and s.startup_type.upper() == "AUTOMATIC")
    except ClientError as exc:
        errors.append(f"appliance: {exc}")
        garbage = garbage or isinstance(exc, BadAnswer)
    uuid = psc_host = ""
    hosts = vms = dss = ()
    if node.role == "vcenter":
        try:
            vs = conns.vsphere(node)
            vs.connect()
            about = vs.about()
            uuid = about.instance_uuid
            if version is None:
                version, source = actual_version(about), "vim25"
            ptr = vs.sso_psc()
            psc_host = ptr.host if ptr else ""
            if fingerprint:
                fp = vs.fingerprint()
                hosts, vms, dss = fp.hosts, fp.vms, fp.datastores
        except ClientError as exc:
            errors.append(f"vim25: {exc}")
            garbage = garbage or isinstance(exc, BadAnswer)
    reachable = source != "" or (has_rest is False and node.role == "psc" and not errors)
    return NodeFacts(node.name, reachable, version, source, has_rest, health_level, not_green, down, uuid,
                     psc_host, hosts, vms, dss, tuple(errors), bad_answer=garbage)


def sso_pointer(conns: Any, node: Node) -> str | None:
    """The address (host, `:port` unless 443) a vCenter's `config.vpxd.sso.admin.uri` names: "" when it has
    none (embedded SSO), None when the vCenter does not answer (unknown, never "points nowhere")."""
    try:
        vs = conns.vsphere(node)
        vs.connect()
        ptr = vs.sso_psc()
    except ClientError:
        return None
    if ptr is None:
        return ""
    netloc = urlsplit(ptr.admin_uri).netloc.lower()
    return netloc.removesuffix(":443")

"""The domain inventory: one YAML file describes one SSO domain (sites, PSCs, vCenters).

Pure core: `parse_inventory` turns YAML data into frozen dataclasses and validates every rule that can be
checked without touching a node. Each error names the file, the line and the field, so an administrator
can fix it; nothing else happens (exit 2). Secrets are never in the file: credentials name an environment
variable or a 0600 file to read at run time (`orchestrator.secrets`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.secret_keys import is_secret_key
from orchestrator.core.thumbprint import normalize_thumbprint
from orchestrator.core.versions import Version, VersionError, catalogue, parse_version
from orchestrator.core.yamlsrc import Located, load_yaml, loads_yaml
from orchestrator.errors import InputError, Where
from orchestrator.hosts import canonical_host, host_problem, is_loopback

ROLES = ("psc", "vcenter")
PLATFORMS = ("appliance", "windows")
TOPOLOGIES = ("external-psc", "embedded")
BACKUP_METHODS = ("file", "snapshot-set", "external")
LOCATION_TYPES = ("FTP", "HTTP", "FTPS", "HTTPS", "SCP", "SFTP", "NFS", "SMB")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class Credential:
    """Who to log in as, and where the secret lives (never the secret itself)."""

    name: str
    user: str
    password_env: str | None = None
    password_file: str | None = None


@dataclass(frozen=True)
class VmRef:
    """Where a node's appliance VM lives: a management vCenter and the VM's name there."""

    vcenter: str
    name: str


@dataclass(frozen=True)
class BackupTarget:
    """How a node is backed up. `file`: REST backup job (6.5+); `external`: a site command + its verifier."""

    method: str
    location_type: str = ""
    location: str = ""
    credentials: str = ""
    command: str = ""
    verify: str = ""


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    site: str
    host: str
    version: Version
    port: int = 443
    sdk_port: int = 443
    scheme: str = "https"
    psc: str | None = None
    platform: str = "appliance"
    embedded_psc: bool = False
    vm: VmRef | None = None
    backup: BackupTarget | None = None
    instance_uuid: str | None = None
    deploy: tuple[tuple[str, Any], ...] = ()
    line: int = 0
    thumbprint: str | None = None  # `tls.thumbprint`: SHA-256 pin of the node's certificate (REST and SDK)

    @property
    def is_psc(self) -> bool:
        return self.role == "psc"

    def deploy_dict(self) -> dict[str, Any]:
        return dict(self.deploy)


@dataclass(frozen=True)
class Management:
    """A vCenter outside the upgraded domain that hosts the appliance VMs (snapshots, installer target)."""

    name: str
    host: str
    port: int = 443
    sdk_port: int = 443
    scheme: str = "https"
    credentials: str = "sso"
    thumbprint: str | None = None  # `tls.thumbprint`: SHA-256 pin of its certificate


@dataclass(frozen=True)
class Inventory:
    path: str
    domain: str
    topology: str
    sites: tuple[str, ...]
    nodes: tuple[Node, ...]
    management: tuple[Management, ...] = ()
    credentials: tuple[Credential, ...] = ()
    tls: tuple[tuple[str, str], ...] = ()

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def credential(self, name: str) -> Credential:
        for c in self.credentials:
            if c.name == name:
                return c
        raise KeyError(name)

    def management_vc(self, name: str) -> Management:
        for m in self.management:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def pscs(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "psc")

    @property
    def vcenters(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "vcenter")

    def vcenters_of(self, psc: str) -> tuple[Node, ...]:
        return tuple(n for n in self.vcenters if n.psc == psc)


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file. Raises InputError (exit 2) naming file, line and field."""
    data = load_yaml(path, "inventory")
    return parse_inventory(data, str(path))


def loads_inventory(text: str, filename: str = "<inventory>") -> Inventory:
    return parse_inventory(loads_yaml(text, filename, "inventory"), filename)


class _Checker:
    """Small helper that reads typed fields from a Located mapping and raises located errors."""

    def __init__(self, filename: str) -> None:
        self.file = filename

    def fail(self, msg: str, m: Any = None, key: str = "", node: str = "", rule: str = "") -> None:
        line = m.line_of(key) if isinstance(m, Located) and key else getattr(m, "line", None)
        raise InputError(msg, Where(file=self.file, line=line or None, field=key, node=node), rule=rule)

    def mapping(self, value: Any, what: str, parent: Any = None, key: str = "", node: str = "") -> Located:
        if not isinstance(value, Located):
            self.fail(f"{what} must be a mapping", parent, key, node)
        return value

    def text(self, m: Located, key: str, node: str = "", required: bool = True, default: str = "") -> str:
        if key not in m or m[key] is None:
            if required:
                self.fail(f"missing required field '{key}'", m, "", node)
            return default
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            self.fail(f"'{key}' must be a string", m, key, node)
        s = str(v).strip()
        if required and not s:
            self.fail(f"'{key}' must not be empty", m, key, node)
        return s

    def port(self, m: Located, key: str, node: str, default: int) -> int:
        if key not in m:
            return default
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
            self.fail(f"'{key}' must be a TCP port (1-65535), got {v!r}", m, key, node)
        return v

    def unknown(self, m: Located, allowed: set[str], what: str, node: str = "") -> None:
        for k in m:
            if is_secret_key(k):
                self.fail(f"plaintext secret field '{k}' is not allowed: name an environment variable "
                          f"('password_env') or a 0600 file ('password_file') instead", m, k, node)
            if k not in allowed:
                self.fail(f"unknown field '{k}' in {what} (allowed: {', '.join(sorted(allowed))})", m, k, node)


def parse_inventory(data: Any, filename: str) -> Inventory:
    """Validate YAML data into an Inventory. All checks are pure."""
    c = _Checker(filename)
    if not isinstance(data, Located):
        c.fail("inventory must be a YAML mapping with 'domain', 'sites' and 'nodes'")
    c.unknown(data, {"domain", "topology", "credentials", "sites", "management", "nodes", "tls"}, "inventory")
    domain = c.text(data, "domain")
    topology = c.text(data, "topology", required=False, default="external-psc")
    if topology not in TOPOLOGIES:
        c.fail(f"unknown topology '{topology}' (allowed: {', '.join(TOPOLOGIES)})", data, "topology")
    credentials = _credentials(c, data)
    sites = _sites(c, data)
    management = _management(c, data, {cr.name for cr in credentials})
    tls = _tls(c, data)
    nodes = tuple(_node(c, raw, i, data) for i, raw in enumerate(_list(c, data, "nodes")))
    inv = Inventory(filename, domain, topology, sites, nodes, management, credentials, tls)
    _cross_checks(c, inv, data)
    return inv


def _list(c: _Checker, data: Located, key: str, required: bool = True) -> list:
    v = data.get(key)
    if v is None:
        if required:
            c.fail(f"missing required field '{key}'", data)
        return []
    if not isinstance(v, list) or (required and not v):
        c.fail(f"'{key}' must be a non-empty list", data, key)
    return v


def _credentials(c: _Checker, data: Located) -> tuple[Credential, ...]:
    raw = data.get("credentials")
    if raw is None:
        c.fail("missing required field 'credentials' (at least 'sso': the SSO administrator)", data)
    raw = c.mapping(raw, "'credentials'", data, "credentials")
    out = []
    for name, entry in raw.items():
        e = c.mapping(entry, f"credential '{name}'", raw, name)
        c.unknown(e, {"user", "password_env", "password_file"}, f"credential '{name}'")
        user = c.text(e, "user")
        env = c.text(e, "password_env", required=False) or None
        pfile = c.text(e, "password_file", required=False) or None
        if bool(env) == bool(pfile):
            c.fail(f"credential '{name}' needs exactly one of 'password_env' or 'password_file'", e)
        out.append(Credential(name, user, env, pfile))
    if "sso" not in raw:
        c.fail("credentials must include 'sso' (the SSO administrator)", raw)
    return tuple(out)


def _sites(c: _Checker, data: Located) -> tuple[str, ...]:
    sites = _list(c, data, "sites")
    seen: list[str] = []
    for s in sites:
        if not isinstance(s, str) or not _NAME_RE.match(s):
            c.fail(f"site name {s!r} is not a valid name", data, "sites")
        if s in seen:
            c.fail(f"duplicate site '{s}'", data, "sites")
        seen.append(s)
    return tuple(seen)


def _tls(c: _Checker, data: Located) -> tuple[tuple[str, str], ...]:
    raw = data.get("tls")
    if raw is None:
        return ()
    raw = c.mapping(raw, "'tls'", data, "tls")
    c.unknown(raw, {"ca_bundle"}, "tls")
    return tuple((k, str(v)) for k, v in raw.items())


def _management(c: _Checker, data: Located, creds: set[str]) -> tuple[Management, ...]:
    out = []
    for raw in _list(c, data, "management", required=False):
        m = c.mapping(raw, "a management entry", data, "management")
        c.unknown(m, {"name", "host", "port", "sdk_port", "scheme", "credentials", "tls"}, "management entry")
        name = c.text(m, "name")
        host = _host(c, m, name)
        port = c.port(m, "port", name, 443)
        scheme = _scheme(c, m, host, name)
        cred = c.text(m, "credentials", required=False, default="sso")
        if cred not in creds:
            c.fail(f"management '{name}' names unknown credentials '{cred}'", m, "credentials", name)
        out.append(Management(name, host, port, c.port(m, "sdk_port", name, port), scheme, cred,
                              _pin(c, m, name)))
    return tuple(out)


def _host(c: _Checker, m: Located, node: str) -> str:
    host = c.text(m, "host", node=node)
    problem = host_problem(host)
    if problem:
        c.fail(f"host '{host}' {problem}", m, "host", node)
    return host


def _pin(c: _Checker, m: Located, node: str) -> str | None:
    """A node's or management vCenter's `tls: {thumbprint: "AA:BB:..."}`: the SHA-256 pin, normalized."""
    raw = _optional_mapping(c, m, "tls", {"thumbprint"}, node)
    if raw is None:
        return None
    text = c.text(raw, "thumbprint", node=node)
    try:
        return normalize_thumbprint(text)
    except ValueError as exc:
        c.fail(str(exc), raw, "thumbprint", node)


def _scheme(c: _Checker, m: Located, host: str, node: str) -> str:
    scheme = c.text(m, "scheme", required=False, default="https")
    if scheme not in ("https", "http"):
        c.fail(f"scheme must be https (or http for the loopback lab), got '{scheme}'", m, "scheme", node)
    if scheme == "http" and not is_loopback(host):
        c.fail(f"plain http is only allowed for the loopback lab, not for host '{host}'", m, "scheme", node)
    return scheme


_NODE_FIELDS = {"name", "role", "site", "host", "port", "sdk_port", "scheme", "version", "build", "psc",
                "platform", "embedded_psc", "vm", "backup", "instance_uuid", "deploy", "tls"}


def _node(c: _Checker, raw: Any, index: int, data: Located) -> Node:
    m = c.mapping(raw, f"node #{index + 1}", data, "nodes")
    name = c.text(m, "name")
    if not _NAME_RE.match(name):
        c.fail(f"node name '{name}' is not a valid name", m, "name", name)
    c.unknown(m, _NODE_FIELDS, "node", name)
    role = c.text(m, "role", node=name)
    if role not in ROLES:
        c.fail(f"unknown role '{role}' (allowed: {', '.join(ROLES)})", m, "role", name)
    host = _host(c, m, name)
    port = c.port(m, "port", name, 443)
    try:
        version = parse_version(c.text(m, "version", node=name))
    except VersionError as exc:
        c.fail(str(exc), m, "version", name)
    try:
        version = parse_version(version.release, m.get("build"))
    except VersionError as exc:
        c.fail(str(exc), m, "build", name)
    known = catalogue().by_release(version)
    if known is None:
        c.fail(f"version {version.release} is not a known vCenter/PSC release", m, "version", name)
    by_build = catalogue().by_build(version.build) if version.build else None
    if by_build is not None and not by_build.version.same_release(version):
        c.fail(f"version {version.release} and build {version.build} disagree: that build is "  # either may be wrong
               f"{by_build.version.release}; write version: \"{by_build.version.release}\" (quoted), or the build "
               f"of {version.release}", m, "version", name)
    version = version if version.build else known.version
    platform = c.text(m, "platform", required=False, default="appliance")
    if platform not in PLATFORMS:
        c.fail(f"unknown platform '{platform}' (allowed: {', '.join(PLATFORMS)})", m, "platform", name)
    embedded = m.get("embedded_psc", False)
    if not isinstance(embedded, bool):
        c.fail("'embedded_psc' must be true or false", m, "embedded_psc", name)
    uuid = c.text(m, "instance_uuid", required=False) or None
    deploy = m.get("deploy")
    if deploy is not None:
        deploy = c.mapping(deploy, "'deploy'", m, "deploy", name)
    return Node(
        name=name, role=role, site=c.text(m, "site", node=name), host=host, version=version, port=port,
        sdk_port=c.port(m, "sdk_port", name, port), scheme=_scheme(c, m, host, name),
        psc=c.text(m, "psc", required=False) or None, platform=platform, embedded_psc=embedded,
        vm=_vm(c, m, name), backup=_backup(c, m, name), instance_uuid=uuid,
        deploy=tuple(sorted((str(k), _freeze(v)) for k, v in (deploy or {}).items())), line=m.line,
        thumbprint=_pin(c, m, name),
    )


def _freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((str(k), _freeze(x)) for k, x in v.items()))
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v


def _optional_mapping(c: _Checker, m: Located, key: str, allowed: set[str], node: str) -> Located | None:
    """An optional sub-mapping of a node (`vm:`, `tls:`): None when absent, else checked for its keys."""
    raw = m.get(key)
    if raw is None:
        return None
    sub = c.mapping(raw, f"'{key}'", m, key, node)
    c.unknown(sub, allowed, key, node)
    return sub


def _vm(c: _Checker, m: Located, node: str) -> VmRef | None:
    v = _optional_mapping(c, m, "vm", {"vcenter", "name"}, node)
    if v is None:
        return None
    return VmRef(c.text(v, "vcenter", node=node), c.text(v, "name", node=node))


def _backup(c: _Checker, m: Located, node: str) -> BackupTarget | None:
    raw = m.get("backup")
    if raw is None:
        return None
    b = c.mapping(raw, "'backup'", m, "backup", node)
    c.unknown(b, {"method", "location_type", "location", "credentials", "command", "verify"}, "backup", node)
    method = c.text(b, "method", node=node)
    if method not in BACKUP_METHODS:
        c.fail(f"unknown backup method '{method}' (allowed: {', '.join(BACKUP_METHODS)})", b, "method", node)
    t = BackupTarget(method, c.text(b, "location_type", required=False).upper(), c.text(b, "location", required=False),
                     c.text(b, "credentials", required=False, default="backup"),
                     c.text(b, "command", required=False), c.text(b, "verify", required=False))
    if method == "file":
        if t.location_type not in LOCATION_TYPES:
            c.fail(f"backup location_type must be one of {', '.join(LOCATION_TYPES)}", b, "location_type", node)
        if not t.location:
            c.fail("a 'file' backup needs a 'location'", b, "location", node)
    if method == "external" and not (t.command and t.verify):
        c.fail("an 'external' backup needs both 'command' (runs the backup) and 'verify' (proves it)", b,
               "command" if not t.command else "verify", node)
    return t


def _cross_checks(c: _Checker, inv: Inventory, data: Located) -> None:
    """Rules across nodes: uniqueness, references, external-PSC topology."""
    raw_nodes = data["nodes"]
    by_name: dict[str, Located] = {}
    hosts: dict[tuple[str, int], str] = {}
    creds = {cr.name for cr in inv.credentials}
    mgmt = {m.name for m in inv.management}
    for node, raw in zip(inv.nodes, raw_nodes):
        if node.name in by_name:
            c.fail(f"duplicate node name '{node.name}'", raw, "name", node.name)
        by_name[node.name] = raw
        key = (canonical_host(node.host), node.port)
        if key in hosts:
            c.fail(f"host '{node.host}' (port {node.port}) is already used by node '{hosts[key]}'", raw, "host",
                   node.name)
        hosts[key] = node.name
        if node.site not in inv.sites:
            c.fail(f"site '{node.site}' is not declared in 'sites'", raw, "site", node.name)
        if node.vm and node.vm.vcenter not in mgmt:
            c.fail(f"vm.vcenter '{node.vm.vcenter}' is not a declared management vCenter", raw, "vm", node.name)
        if node.backup and node.backup.method == "file" and node.backup.credentials not in creds:
            c.fail(f"backup credentials '{node.backup.credentials}' are not declared", raw, "backup", node.name)
    pscs = {n.name: n for n in inv.pscs}
    for node, raw in zip(inv.nodes, raw_nodes):
        if node.role == "psc":
            if node.psc:
                c.fail("a PSC does not point at a PSC ('psc' is for vCenters)", raw, "psc", node.name)
            if node.embedded_psc:
                c.fail("'embedded_psc' is for vCenters", raw, "embedded_psc", node.name)
            continue
        _check_vcenter(c, inv, node, raw, pscs, by_name)
    if inv.topology == "external-psc":
        if not pscs:
            c.fail("an external-PSC domain needs at least one node with role 'psc'", data, "nodes")
        for site in inv.sites:
            members = [n for n in inv.nodes if n.site == site]
            if any(n.role == "vcenter" for n in members) and not any(n.role == "psc" for n in members):
                c.fail(f"site '{site}' has vCenters but no PSC: in an external-PSC domain each site with "
                       f"vCenters has its own PSC", data, "sites")


def _check_vcenter(c: _Checker, inv: Inventory, node: Node, raw: Located, pscs: dict[str, Node],
                   by_name: dict[str, Located]) -> None:
    if node.embedded_psc:
        if inv.topology == "external-psc":
            c.fail("an embedded-PSC vCenter cannot be part of an external-PSC domain "
                   "(it has its own SSO domain); list it in its own inventory", raw, "embedded_psc", node.name,
                   rule="external-psc-topology")
        return
    if not node.psc:
        c.fail("a vCenter with an external PSC must name it in 'psc'", raw, "", node.name)
    if node.psc not in pscs:
        other = "a vCenter, not a PSC" if node.psc in by_name else "not a PSC of this domain"
        c.fail(f"vCenter points at '{node.psc}', which is {other}", raw, "psc", node.name)
    psc = pscs[node.psc]
    if psc.site != node.site:
        c.fail(f"vCenter in site '{node.site}' points at PSC '{psc.name}' of site '{psc.site}': a vCenter uses "
               f"a PSC of its own SSO site", raw, "psc", node.name, rule="same-site-psc")
    if node.version.without_build() > psc.version.without_build():
        c.fail(f"vCenter version {node.version.release} is newer than its PSC '{psc.name}' "
               f"({psc.version.release}): a vCenter never runs newer than the PSCs it uses", raw, "version",
               node.name, rule="vcenter-not-newer-than-psc")

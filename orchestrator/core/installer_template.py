"""The JSON template of VMware's CLI installer (`vcsa-deploy upgrade <template.json>`) for one node. Pure.

A major upgrade (6.0 -> 6.5, 6.5 -> 6.7) is a migration: stage 1 deploys a NEW appliance VM (on the management
vCenter that hosts the node's VM) with a temporary network; stage 2 copies the source's configuration and
data over, powers the source off and takes over its name, IP, instance UUID and morefs. The installer reads
all of that from a template; this module builds it from the inventory, checks it, and keeps secrets out of it.

Secrets: `build_upgrade_template` never sees a password. Password fields hold a placeholder naming the
inventory credential (`${vcwave-secret:sso}`); `fill_secrets` swaps the real values in, and is called only
by the installer runner when it writes the 0600 file the installer reads. So the dict can be logged,
journaled and diffed.

Where the key names come from (read through the project's `search` tool; no template JSON file of VMware's
ISO is in the searchable index, so these are the documentation's tables and the installer's own readme):
- 6.5 (`__version` "2.3.0", dotted keys): VMware vSphere 6.5 Upgrade guide, "JSON Templates for CLI Upgrade"
  (docs.vmware.com/en/VMware-vSphere/6.5/com.vmware.vsphere.upgrade.doc/GUID-7DB7945F-698F-4954-9320-3AA80B6E9ABA.html):
  sections `new.vcsa` (subsections `esxi` | `vc`, `appliance`, `os` with only `ssh.enable`,
  `ovftool.arguments`, `temporary.network`, `user-options`), `source.vc`, `ceip`; the 6.5.1 edition of the
  same guide (tables 4-8..4-10: appliance `name`/`image`/`ovftool.path`, os `ssh.enable`, temporary.network
  `ip.family`/`mode`/`ip`/`dns.servers`/`prefix`/`gateway`); the upgrade `--template-help` text (pastebin
  jk6AbuSi: "__version: Set this field to \"2.3.0\"", `new.vcsa` -> `esxi`/`vc` -> `hostname`/`username`/
  `password`); the 6.5.0 `vcsa-cli-installer` readme (a public repository file; "new.vcsa section,
  user-options subsection, vcdb.migrateSet field" with values core | all | core_events_tasks;
  `deployment.option` is required; `ceip.enabled`; templates `upgrade/vcsa5.5|vcsa6.0/{embedded_vCSA,PSC,
  vCSA}_on_{ESXi,VC}.json`; PSC nodes upgraded before the vCenters that point to them; an empty or
  missing password makes the installer prompt for it).
- 6.7 (`__version` "2.13.0", underscore keys): vCenter Server 6.7 Installation guide, "JSON templates for
  CLI deployment" (GUID-457EAE1F-...: `new_vcsa` with `esxi`/`vc`/`appliance`/`network`/`os`/`sso`/
  `ovftool_arguments`), 6.5/7.0 "migration" parameter pages (`ssh_enable` for 6.7+, `ssh.enable` for 6.5),
  and the 6.7 converge template (`managing_esxi_or_vc` {hostname, username, password}, appliance
  {hostname, username, password, root_password}). `source_vc` / `vc_vcsa` / `user_options.vcdb_migrateSet`
  / `ceip.settings.ceip_enabled` follow the same dotted->underscore renaming; the "2.13.0" value itself
  was not found in a source I could read (it is what the brief and the 6.7 U-release ISOs are known for):
  treat it as *to confirm* against the ISO's `templates/upgrade/vcsa6.5/*.json`.
- `deployment.option` for an external PSC is `infrastructure`, for a vCenter with an external PSC
  `management-<size>`, for an embedded node `<size>` (vSphere 6.5/6.7 install guides, deployment options).
- The verify flag differs: the 6.5 readme says `--verify-only`, 6.7 docs `--verify-template-only`
  (see `verify_flag`).

Placement (datacenter, datastore, network, size, target, temporary network) comes from the node's `deploy`
mapping in the inventory; accepted keys: datacenter, datastore, network, deployment_size, target (or
cluster / host), vcenter (defaults to the node's vm.vcenter), vm_name, thin_disk_mode, ssh_enable,
ceip_enabled, vcdb_migrate_set, temporary_network {mode, ip_family, ip, prefix, gateway, dns_servers}.

Lab note: `source_vc.vc_vcsa.port` and `new_vcsa.vc.port` / `managing_esxi_or_vc.port` are written only when
a port is not 443 (the loopback lab); `port` is documented for the `esxi`/`vc` subsections, *to confirm* for
`vc_vcsa`.
"""
from __future__ import annotations

import copy
import ipaddress
import re
from typing import TYPE_CHECKING, Any, Iterable

from orchestrator.core import interop
from orchestrator.core.versions import Version
from orchestrator.errors import InputError, Where

if TYPE_CHECKING:  # annotations only: the lab's installer stand-in (a fresh process per run) reads this module's
    # schemas and constants, and the planner's and inventory's imports were a third of its start-up
    from orchestrator.core.inventory import Inventory, Node

PLACEHOLDER_RE = re.compile(r"^\$\{vcwave-secret:([A-Za-z0-9_.-]+)\}$")
VCDB_MIGRATE_SETS = ("core", "all", "core_events_tasks")
SIZES = ("tiny", "small", "medium", "large", "xlarge")
_STORAGE = ("", "-lstorage", "-xlstorage")
EMBEDDED_OPTIONS = tuple(s + st for s in SIZES for st in _STORAGE)
MANAGEMENT_OPTIONS = tuple("management-" + o for o in EMBEDDED_OPTIONS)
DEPLOYMENT_OPTIONS = EMBEDDED_OPTIONS + MANAGEMENT_OPTIONS + ("infrastructure",)


def placeholder(credential: str) -> str:
    """The value a password field holds until `fill_secrets` runs: names the inventory credential."""
    return "${vcwave-secret:" + credential + "}"


# -- schema per installer release line ------------------------------------------------------------------
# Canonical names are the 6.7 (underscore) ones; 6.5 renames them with dots (and `user-options`).
DOTTED_KEYS = {  # VMware's 6.5 spelling of each 6.7 key (both are the installer's own schema)
    "new_vcsa": "new.vcsa", "deployment_network": "deployment.network", "thin_disk_mode": "thin.disk.mode",
    "deployment_option": "deployment.option", "ssh_enable": "ssh.enable", "temporary_network": "temporary.network",
    "ip_family": "ip.family", "dns_servers": "dns.servers", "user_options": "user-options",
    "vcdb_migrateSet": "vcdb.migrateSet", "source_vc": "source.vc", "managing_esxi_or_vc": "managing.esxi.or.vc",
    "vc_vcsa": "vc.vcsa", "root_password": "root.password", "ceip_enabled": "ceip.enabled",
    "ovftool_arguments": "ovftool.arguments",
}
SCHEMAS: dict[tuple[int, int], dict[str, Any]] = {
    (6, 5): {"version": "2.3.0", "dotted": True, "verify_flag": "--verify-only",
             "no_ssl_flag": "--no-esx-ssl-verify", "sources": ("5.5", "6.0")},
    (6, 7): {"version": "2.13.0", "dotted": False, "verify_flag": "--verify-template-only",
             "no_ssl_flag": "--no-ssl-certificate-verification", "sources": ("6.0", "6.5")},
    # 7.0: the 6.7 (underscore) schema plus the `sso` section of a converge (see `_sso_section`). `__version`
    # "2.13.0" is confirmed for the 7.0 U3 and 8.0 ISOs' install templates (docs/vsphere-facts-7-8.md,
    # "Installer templates of 7.0 and 8.0"); for their upgrade templates it is still *to confirm*, and the
    # installer's own --verify-template-only (vcwave's precheck) refuses a wrong one before anything changes.
    (7, 0): {"version": "2.13.0", "dotted": False, "verify_flag": "--verify-template-only",
             "no_ssl_flag": "--no-ssl-certificate-verification", "sources": ("6.5", "6.7")},
    # 8.0: the 7.0 schema; linked embedded vCenters 7.0 -> 8.0 (vSphere 8.0 Upgrade: "from version 6.7 or 7.0").
    # vcwave converges into 7.0 only (interop.yaml `converge_into`), so an 8.0 template never has an sso section.
    (8, 0): {"version": "2.13.0", "dotted": False, "verify_flag": "--verify-template-only",
             "no_ssl_flag": "--no-ssl-certificate-verification", "sources": ("6.7", "7.0")},
}
_BY_TEMPLATE_VERSION = {s["version"]: line for line, s in reversed(SCHEMAS.items())}  # first line wins


class TemplateError(InputError):
    """The inventory cannot give what the installer template needs (exit 2, nothing done)."""


def key(name: str, dotted: bool) -> str:
    return DOTTED_KEYS.get(name, name) if dotted else name


def schema_for_target(target: Version) -> dict[str, Any]:
    s = SCHEMAS.get(target.line)
    if s is None:
        lines = ", ".join(f"{a}.{b}" for a, b in SCHEMAS)
        raise TemplateError(f"vcwave writes installer templates for targets {lines} only, not {target.release}")
    return s


def line_of_template(t: dict) -> tuple[int, int] | None:
    """The installer release line a template is written for, from its `__version`."""
    return _BY_TEMPLATE_VERSION.get(str(t.get("__version", ""))) if isinstance(t, dict) else None


def verify_flag(t: dict) -> str:
    line = line_of_template(t)
    return SCHEMAS[line]["verify_flag"] if line else "--verify-template-only"


def no_ssl_flag(t: dict) -> str:
    line = line_of_template(t)
    return SCHEMAS[line]["no_ssl_flag"] if line else "--no-ssl-certificate-verification"


def _rename(obj: Any, dotted: bool) -> Any:
    if isinstance(obj, dict):
        return {key(k, dotted): _rename(v, dotted) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rename(x, dotted) for x in obj]
    return obj


def _thaw(v: Any) -> Any:
    """Inventory `deploy` values are frozen (dict -> tuple of pairs, list -> tuple); give them back."""
    if isinstance(v, tuple):
        if v and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in v):
            return {k: _thaw(x) for k, x in v}
        return [_thaw(x) for x in v]
    return v


def template_kind(node: Node) -> str:
    if node.role == "psc":
        return "PSC"
    return "embedded_vCSA" if node.embedded_psc else "vCSA"


def deployment_option(node: Node, size: str) -> str:
    """The installer's `deployment_option` for this node and size (`small` -> `management-small`...)."""
    size = str(size).strip()
    if node.role == "psc":
        return "infrastructure"
    if node.embedded_psc:
        return size
    return size if size.startswith("management-") else f"management-{size}"


def build_upgrade_template(inv: Inventory, node: Node, target: Version, *,
                           management_password_placeholder: str | None = None) -> dict:
    """The upgrade template for `node` -> `target`, with placeholders where secrets go. Pure.

    Raises TemplateError (naming node and field) when the inventory lacks something the template needs.
    """
    where = lambda fld: Where(file=inv.path, line=node.line or None, field=fld, node=node.name)  # noqa: E731
    schema = schema_for_target(target)
    if node.platform != "appliance":
        raise TemplateError("a vCenter on Windows is migrated (Migration Assistant), not upgraded with an "
                            "appliance upgrade template", where("platform"))
    src_line = f"{node.version.major}.{node.version.minor}"
    if src_line not in schema["sources"]:
        raise TemplateError(f"the {target.major}.{target.minor} installer upgrades appliances "
                            f"{' or '.join(schema['sources'])}, not {node.version.release}", where("version"))
    if node.role == "psc" and not interop.supports_external_psc(target):
        raise TemplateError(f"{target.release} has no external Platform Services Controller: a PSC is not "
                            f"upgraded to it, its vCenters converge it", where("role"))
    if node.vm is None:
        raise TemplateError("the installer needs the node's appliance VM and the vCenter managing it: add "
                            "'vm: {vcenter, name}'", where("vm"))
    deploy = {k: _thaw(v) for k, v in node.deploy_dict().items()}
    try:
        mgmt = inv.management_vc(node.vm.vcenter)
    except KeyError:
        raise TemplateError(f"management vCenter '{node.vm.vcenter}' is not declared", where("vm")) from None
    target_vc_name = str(deploy.get("vcenter") or mgmt.name)
    try:
        target_vc = inv.management_vc(target_vc_name)
    except KeyError:
        raise TemplateError(f"deploy.vcenter '{target_vc_name}' is not a declared management vCenter",
                            where("deploy")) from None
    creds = {}
    for cname, why in (("sso", "the SSO administrator of the source"), ("root", "the source appliance's root"),
                       (mgmt.credentials, f"management vCenter '{mgmt.name}'"),
                       (target_vc.credentials, f"management vCenter '{target_vc.name}'")):
        try:
            creds[cname] = inv.credential(cname)
        except KeyError:
            raise TemplateError(f"the installer template needs credentials '{cname}' ({why}): declare it "
                                f"under 'credentials'", where("credentials")) from None
    mgmt_pw = management_password_placeholder or placeholder(mgmt.credentials)

    target_place = deploy.get("target", deploy.get("cluster", deploy.get("host")))
    new_vc: dict[str, Any] = {
        "hostname": target_vc.host,
        "username": creds[target_vc.credentials].user,
        "password": (management_password_placeholder if target_vc.name == mgmt.name
                     and management_password_placeholder else placeholder(target_vc.credentials)),
        "deployment_network": deploy.get("network"),
        "datacenter": deploy.get("datacenter"),
        "datastore": deploy.get("datastore"),
        "target": target_place,
    }
    if target_vc.port != 443:
        new_vc["port"] = target_vc.port
    appliance = {
        "thin_disk_mode": bool(deploy.get("thin_disk_mode", True)),
        "deployment_option": (deployment_option(node, deploy["deployment_size"])
                              if deploy.get("deployment_size") else None),
        "name": str(deploy.get("vm_name") or f"{node.vm.name}-{target.major}{target.minor}"),
    }
    tmp = deploy.get("temporary_network") or {}
    if not isinstance(tmp, dict):
        raise TemplateError("deploy.temporary_network must be a mapping", where("deploy"))
    ip = tmp.get("ip")
    mode = str(tmp.get("mode") or ("static" if ip else "dhcp"))
    temporary: dict[str, Any] = {"ip_family": str(tmp.get("ip_family") or _family(ip)), "mode": mode}
    if mode == "static":
        dns = tmp.get("dns_servers")
        temporary.update(ip=ip, prefix=None if tmp.get("prefix") is None else str(tmp.get("prefix")),
                         gateway=tmp.get("gateway"),
                         dns_servers=[str(d) for d in dns] if isinstance(dns, list) else dns)
    new_vcsa: dict[str, Any] = {"vc": new_vc, "appliance": appliance,
                                "os": {"ssh_enable": bool(deploy.get("ssh_enable", False))},
                                "temporary_network": temporary}
    if node.role == "vcenter":
        new_vcsa["user_options"] = {"vcdb_migrateSet": str(deploy.get("vcdb_migrate_set", "core"))}
    managing: dict[str, Any] = {"hostname": mgmt.host, "username": creds[mgmt.credentials].user,
                                "password": mgmt_pw}
    if mgmt.port != 443:
        managing["port"] = mgmt.port
    vc_vcsa: dict[str, Any] = {"hostname": node.host, "username": creds["sso"].user,
                               "password": placeholder("sso"), "root_password": placeholder("root")}
    if node.port != 443:
        vc_vcsa["port"] = node.port
    folder = f"vcsa{src_line}"
    canonical = {
        "__version": schema["version"],
        "__comments": [f"vcwave: {node.name} ({node.role}, {node.version.release}) -> {target.release}; "
                       f"from VMware's templates/upgrade/{folder}/{template_kind(node)}_on_VC.json"],
        "new_vcsa": new_vcsa,
        "source_vc": {"managing_esxi_or_vc": managing, "vc_vcsa": vc_vcsa},
        "ceip": {"settings": {"ceip_enabled": bool(deploy.get("ceip_enabled", False))}},
    }
    if node.psc and not interop.supports_external_psc(target):
        canonical["sso"] = _sso_section(inv, node)
    return _rename(canonical, schema["dotted"])


def _sso_section(inv: Inventory, node: Node) -> dict[str, Any]:
    """The converge's replication parameters (vSphere 7.0 Upgrade guide, GUID-039644F5-...: "The replication
    parameters in the JSON upgrade template are located in the sso section of the template, and are
    first_instance and replication_partner_hostname"): the first vCenter of the SSO domain is the first
    instance, every next one names a vCenter already converged (the planner's order, `converge_partners_of`).
    `replication_partner_port` is written only for a partner not on 443 (the loopback lab), like the other
    port keys of this module (*to confirm* as a key of the real installer)."""
    from orchestrator.core.plan import converge_partners_of  # see the TYPE_CHECKING import above
    partner = converge_partners_of(inv)[node.name]
    if partner is None:
        return {"first_instance": True}
    p = inv.node(partner)
    out: dict[str, Any] = {"first_instance": False, "replication_partner_hostname": p.host}
    if p.port != 443:
        out["replication_partner_port"] = p.port
    return out


def _family(ip: Any) -> str:
    try:
        return "ipv6" if ipaddress.ip_address(str(ip)).version == 6 else "ipv4"
    except ValueError:
        return "ipv4"


# -- secrets -------------------------------------------------------------------------------------------
def secret_names(template: Any) -> set[str]:
    """Credential names the template's placeholders ask for."""
    out: set[str] = set()
    for v in _walk_values(template):
        m = PLACEHOLDER_RE.match(v) if isinstance(v, str) else None
        if m:
            out.add(m.group(1))
    return out


def _walk_values(obj: Any) -> Iterable[Any]:
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk_values(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk_values(v)
    else:
        yield obj


def fill_secrets(template: dict, secrets: dict[str, str]) -> dict:
    """A copy of `template` with each placeholder replaced by its secret. Only for the 0600 file.

    Raises TemplateError naming the missing credential (never a value) when a placeholder has no secret.
    """
    missing = sorted(n for n in secret_names(template) if not secrets.get(n))
    if missing:
        raise TemplateError(f"no secret for credential(s) {', '.join(missing)} (the installer would prompt)")

    def sub(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: sub(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [sub(v) for v in obj]
        if isinstance(obj, str):
            m = PLACEHOLDER_RE.match(obj)
            if m:
                return secrets[m.group(1)]
        return obj

    return sub(copy.deepcopy(template))


# -- validation ----------------------------------------------------------------------------------------
def _get(t: Any, path: list[str]) -> tuple[bool, Any]:
    cur = t
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return False, None
        cur = cur[p]
    return True, cur


def validate_template(t: Any) -> list[str]:
    """Every missing or invalid field of an upgrade template, named by its JSON path. [] when fine."""
    if not isinstance(t, dict):
        return ["<root>: the template must be a JSON object"]
    line = line_of_template(t)
    if line is None:
        known = ", ".join(s["version"] for s in SCHEMAS.values())
        return [f"__version: missing or unknown ({t.get('__version')!r}; known: {known})"]
    dotted = SCHEMAS[line]["dotted"]
    errors: list[str] = []

    def path(*names: str) -> list[str]:
        return [key(n, dotted) for n in names]

    def show(p: list[str]) -> str:
        return ".".join(p)

    def need(names: tuple[str, ...], check=None, what: str = "") -> Any:
        p = path(*names)
        ok, v = _get(t, p)
        if not ok or v is None or (isinstance(v, str) and not v.strip()) or v == []:
            errors.append(f"{show(p)}: missing")
            return None
        if check is not None and not check(v):
            errors.append(f"{show(p)}: invalid {v!r}" + (f" ({what})" if what else ""))
            return None
        return v

    is_str = lambda v: isinstance(v, str)  # noqa: E731
    is_bool = lambda v: isinstance(v, bool)  # noqa: E731
    str_or_list = lambda v: is_str(v) or (isinstance(v, list) and all(is_str(x) and x for x in v))  # noqa: E731

    for sec in ("new_vcsa", "source_vc", "ceip"):
        if not isinstance(_get(t, path(sec))[1], dict):
            errors.append(f"{show(path(sec))}: missing")
    has_esxi = _get(t, path("new_vcsa", "esxi"))[0]
    has_vc = _get(t, path("new_vcsa", "vc"))[0]
    if has_esxi and has_vc:
        errors.append(f"{show(path('new_vcsa'))}: fill in either 'esxi' or 'vc', not both")
    if has_esxi and not has_vc:
        for f in ("hostname", "username", "password", "deployment_network", "datastore"):
            need(("new_vcsa", "esxi", f), is_str, "a string")
    else:
        for f in ("hostname", "username", "password", "deployment_network", "datastore"):
            need(("new_vcsa", "vc", f), is_str, "a string")
        need(("new_vcsa", "vc", "datacenter"), str_or_list, "a name or a folder path list")
        need(("new_vcsa", "vc", "target"), str_or_list, "a cluster/host name or path list")
    need(("new_vcsa", "appliance", "thin_disk_mode"), is_bool, "true or false")
    option = need(("new_vcsa", "appliance", "deployment_option"), lambda v: v in DEPLOYMENT_OPTIONS,
                  "see vcsa-deploy --supported-deployment-sizes")
    need(("new_vcsa", "appliance", "name"), _valid_vm_name,
         "ASCII, no '%', '\\' or '/', at most 80 characters")
    need(("new_vcsa", "os", "ssh_enable"), is_bool, "true or false")
    family = need(("new_vcsa", "temporary_network", "ip_family"), lambda v: v in ("ipv4", "ipv6"),
                  "ipv4 or ipv6")
    mode = need(("new_vcsa", "temporary_network", "mode"), lambda v: v in ("static", "dhcp"), "static or dhcp")
    if mode == "static":
        need(("new_vcsa", "temporary_network", "ip"), lambda v: _ip_ok(v, family), f"an {family or 'IP'} address")
        need(("new_vcsa", "temporary_network", "gateway"), lambda v: _ip_ok(v, family),
             f"an {family or 'IP'} address")
        maxp = 128 if family == "ipv6" else 32
        need(("new_vcsa", "temporary_network", "prefix"),
             lambda v: not isinstance(v, bool) and str(v).isdigit() and 0 <= int(v) <= maxp, f"0-{maxp}")
        need(("new_vcsa", "temporary_network", "dns_servers"),
             lambda v: (isinstance(v, list) and all(_ip_ok(x, None) for x in v))
             or (is_str(v) and all(_ip_ok(x.strip(), None) for x in v.split(","))), "IP addresses")
    if option is not None and option != "infrastructure":
        need(("new_vcsa", "user_options", "vcdb_migrateSet"), lambda v: v in VCDB_MIGRATE_SETS,
             " | ".join(VCDB_MIGRATE_SETS))
    for f in ("hostname", "username", "password"):
        need(("source_vc", "managing_esxi_or_vc", f), is_str, "a string")
    for f in ("hostname", "username", "password", "root_password"):
        need(("source_vc", "vc_vcsa", f), is_str, "a string")
    for p in (("new_vcsa", "vc", "port"), ("source_vc", "managing_esxi_or_vc", "port"),
              ("source_vc", "vc_vcsa", "port")):
        ok, v = _get(t, path(*p))
        if ok and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535):
            errors.append(f"{show(path(*p))}: invalid {v!r} (a TCP port)")
    need(("ceip", "settings", "ceip_enabled"), is_bool, "true or false")
    return errors


def _valid_vm_name(v: Any) -> bool:
    return (isinstance(v, str) and 0 < len(v) <= 80 and v.isascii()
            and not any(c in v for c in "%\\/"))


def _ip_ok(v: Any, family: str | None) -> bool:
    try:
        a = ipaddress.ip_address(str(v))
    except ValueError:
        return False
    return family is None or (a.version == 6) == (family == "ipv6")

"""The lab's `vcsa-deploy`: a stand-in for VMware's CLI installer that upgrades nodes of the lab twin.

    python -m lab.installer_standin upgrade --accept-eula --acknowledge-ceip
        [--verify-template-only | --verify-only | --precheck-only] [--no-ssl-certificate-verification |
         --no-esx-ssl-verify] [--log-dir DIR] [--terse] TEMPLATE.json

Same command line and template schema as the real installer (`upgrade/vcsaX.Y/*_on_VC.json` templates:
6.5 = `__version` 2.3.0 with dotted keys `new.vcsa`, `source.vc`...; 6.7 = 2.13.0 with `new_vcsa`,
`source_vc`...), so vcwave cannot tell it from the real one. Which release it installs (the real installer
is the one on a given ISO): env `VCWAVE_STANDIN_VERSION` (e.g. "6.5 U1"; the wrapper written by
`standin_path(target)` sets it), else the newest release of the line the template's `__version` is for.

It refuses what the real installer refuses, with its own copy of the checks (a twin, not the product's
validator): template field missing or wrong, template for another installer release, EULA not accepted,
CEIP enabled without --acknowledge-ceip, source appliance unreachable, wrong credentials, deployment option
not matching the node's role, no direct upgrade path, back in time (source update released after the
target), already at or above the target, and a vCenter target newer than its PSC ("PSC nodes must be
upgraded before the vCenter nodes which point to them", 6.5 installer readme). Release facts (builds,
GA dates, paths) come from `orchestrator.core.versions` / `interop` data.

Exit codes: VMware does not document them beyond 0 = success (not found in any source read); this is our
choice, shared with `orchestrator.clients.installer`: 0 success, 2 template or command line refused,
3 precheck refused, 4 source / management vCenter / lab unreachable, 1 the upgrade itself failed.

What it does to the twin: `POST {control_url}/lab/installer/upgrade` {source, target_version, target_build,
new_vm_name, rebuild: false}; the lab deploys the new appliance VM on the management vcsim, moves the node's
identity (same instance UUID and morefs) to the target version and powers the source VM off. The lab dir is
env `VCWAVE_LAB_DIR` (else ./.vcwave/lab); its `lab.json` gives `control_url`, `time_scale` and the nodes'
ports, matched against the template's source hostname/port. Stage 1/stage 2 progress lines go to stdout,
durations scaled by the lab's time scale. --verify-template-only and --precheck-only change nothing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from orchestrator.core.interop import interop_data
from orchestrator.core.installer_template import DEPLOYMENT_OPTIONS, DOTTED_KEYS, SCHEMAS
from orchestrator.hosts import is_loopback
from orchestrator.core.versions import Version, VersionError, catalogue, parse_version
from orchestrator.core.yamlsrc import load_trusted

from .converge import EXTERNAL_PSC_LINES, converge_problem, version_of
from .warm_relay import ENV_WARM_SOCKET

EXIT_OK, EXIT_FAILED, EXIT_TEMPLATE, EXIT_PRECHECK, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
ENV_VERSION = "VCWAVE_STANDIN_VERSION"
ENV_LAB_DIR = "VCWAVE_LAB_DIR"
ENV_SCALE = "VCWAVE_STANDIN_TIME_SCALE"
STAGE1_SECONDS = 1200.0   # real-world stage 1 (OVF deploy + first boot); stage 2 is the lab's "upgrade" job

# Template versions of the installer releases the stand-in plays (see orchestrator/core/installer_template.py
# for where they come from). dotted: the 6.5 naming (new.vcsa, ssh.enable, user-options...).
# The installer's template schema is VMware's, so the stand-in reads the same facts the product writes from
# (key spellings per release, deployment options); its *checks* are its own, as the real installer's are.
TEMPLATE_VERSIONS = {line: (sch["version"], sch["dotted"]) for line, sch in SCHEMAS.items()}
_DOTTED = DOTTED_KEYS
OPTIONS = set(DEPLOYMENT_OPTIONS)


class Refusal(Exception):
    def __init__(self, code: int, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or []


class Out:
    """stdout + the log file in --log-dir (never a secret: nothing printed comes from a password field)."""

    def __init__(self, log_dir: str | None, terse: bool) -> None:
        self.terse = terse
        self.f = None
        if log_dir:
            d = Path(log_dir) / f"workflow_{int(time.time() * 1000)}"
            d.mkdir(parents=True, exist_ok=True)
            self.f = open(d / "vcsa-cli-installer.log", "a")

    def __call__(self, line: str, detail: bool = False) -> None:
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        if self.f:
            self.f.write(f"{stamp} {line}\n")
            self.f.flush()
        if not (detail and self.terse):
            print(line, flush=True)

    def close(self) -> None:
        if self.f:
            self.f.close()


# -- template ---------------------------------------------------------------------------------------------
class Tpl:
    def __init__(self, t: dict, dotted: bool) -> None:
        self.t, self.dotted = t, dotted

    def k(self, name: str) -> str:
        return _DOTTED.get(name, name) if self.dotted else name

    def path(self, *names: str) -> str:
        return ".".join(self.k(n) for n in names)

    def get(self, *names: str) -> Any:
        cur: Any = self.t
        for n in names:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(self.k(n))
        return cur


def _ip(v: Any) -> bool:
    try:
        ipaddress.ip_address(str(v).strip())
        return True
    except ValueError:
        return False


def template_problems(t: Tpl, acknowledge_ceip: bool) -> list[str]:
    """What the real installer's template verification would reject (own copy of its rules)."""
    errs: list[str] = []

    def req(*names: str, kind: str = "str", choices: Any = None) -> Any:
        v = t.get(*names)
        p = t.path(*names)
        if v is None or (isinstance(v, str) and not v.strip()) or v == []:
            errs.append(f"{p}: missing value")
            return None
        if kind == "str" and not isinstance(v, str):
            errs.append(f"{p}: expected a string, got {v!r}")
            return None
        if kind == "bool" and not isinstance(v, bool):
            errs.append(f"{p}: expected true or false, got {v!r}")
            return None
        if kind == "path" and not (isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))):
            errs.append(f"{p}: expected a string or a list of strings, got {v!r}")
            return None
        if choices is not None and v not in choices:
            errs.append(f"{p}: invalid value {v!r}")
            return None
        return v

    for sec in ("new_vcsa", "source_vc"):
        if not isinstance(t.get(sec), dict):
            errs.append(f"{t.path(sec)}: section missing")
    if isinstance(t.get("new_vcsa", "esxi"), dict):
        errs.append(f"{t.path('new_vcsa', 'esxi')}: the lab deploys on its management vCenter; use 'vc'")
    for f in ("hostname", "username", "password", "deployment_network", "datastore"):
        req("new_vcsa", "vc", f)
    req("new_vcsa", "vc", "datacenter", kind="path")
    req("new_vcsa", "vc", "target", kind="path")
    req("new_vcsa", "appliance", "thin_disk_mode", kind="bool")
    req("new_vcsa", "appliance", "deployment_option", choices=OPTIONS)
    name = req("new_vcsa", "appliance", "name")
    if isinstance(name, str) and (len(name) > 80 or not name.isascii() or any(c in name for c in "%\\/")):
        errs.append(f"{t.path('new_vcsa', 'appliance', 'name')}: invalid VM name {name!r}")
    req("new_vcsa", "os", "ssh_enable", kind="bool")
    mode = req("new_vcsa", "temporary_network", "mode", choices=("static", "dhcp"))
    req("new_vcsa", "temporary_network", "ip_family", choices=("ipv4", "ipv6"))
    if mode == "static":
        for f in ("ip", "gateway"):
            v = t.get("new_vcsa", "temporary_network", f)
            if not _ip(v):
                errs.append(f"{t.path('new_vcsa', 'temporary_network', f)}: "
                            + ("missing value" if v in (None, "") else f"not an IP address: {v!r}"))
        pfx = t.get("new_vcsa", "temporary_network", "prefix")
        if pfx is None or isinstance(pfx, bool) or not str(pfx).isdigit() or int(pfx) > 128:
            errs.append(f"{t.path('new_vcsa', 'temporary_network', 'prefix')}: "
                        + ("missing value" if pfx is None else f"invalid prefix {pfx!r}"))
        dns = t.get("new_vcsa", "temporary_network", "dns_servers")
        dl = dns if isinstance(dns, list) else (str(dns).split(",") if isinstance(dns, str) else None)
        if not dl or not all(_ip(x) for x in dl):
            errs.append(f"{t.path('new_vcsa', 'temporary_network', 'dns_servers')}: "
                        + ("missing value" if dns in (None, "", []) else f"invalid {dns!r}"))
    opt = t.get("new_vcsa", "appliance", "deployment_option")
    if opt != "infrastructure":
        req("new_vcsa", "user_options", "vcdb_migrateSet", choices=("core", "all", "core_events_tasks"))
    for f in ("hostname", "username", "password"):
        req("source_vc", "managing_esxi_or_vc", f)
    for f in ("hostname", "username", "password", "root_password"):
        req("source_vc", "vc_vcsa", f)
    if t.get("sso") is not None:
        first = req("sso", "first_instance", kind="bool")
        if first is False:
            req("sso", "replication_partner_hostname")
    ceip = t.get("ceip", "settings", "ceip_enabled")
    if not isinstance(ceip, bool):
        errs.append(f"{t.path('ceip', 'settings', 'ceip_enabled')}: expected true or false, got {ceip!r}")
    elif ceip and not acknowledge_ceip:
        errs.append("ceip is enabled in the template: --acknowledge-ceip is required")
    return errs


# -- the lab ----------------------------------------------------------------------------------------------
def lab_dir() -> Path:
    return Path(os.environ.get(ENV_LAB_DIR) or Path.cwd() / ".vcwave" / "lab")


def _http(method: str, url: str, body: Any = None, timeout: float = 600.0) -> tuple[int, Any]:
    """One JSON call to the lab's control API (plain HTTP on loopback). http.client, not urllib.request: the
    stand-in is a fresh interpreter per installer run and urllib.request's imports cost ~20 ms of CPU each."""
    data = json.dumps(body).encode() if body is not None else None
    u = urllib.parse.urlsplit(url)
    conn = HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=timeout)
    try:
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=data,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
    finally:
        conn.close()
    if r.status < 400:
        return r.status, json.loads(raw or b"null")
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, {"error": raw.decode(errors="replace")}


def _port_open(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _as_port(v: Any, default: int = 443) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


class Lab:
    def __init__(self, d: Path) -> None:
        self.dir = d
        p = d / "lab.json"
        try:
            self.info = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise Refusal(EXIT_UNREACHABLE, f"cannot read the lab's {p} ({e}); set {ENV_LAB_DIR}") from None
        self.control = self.info.get("control_url")
        if not self.control:
            raise Refusal(EXIT_UNREACHABLE, f"{p} has no control_url: is the lab daemon running?")
        try:
            st, self.state = _http("GET", self.control + "/lab/state", timeout=15)
        except OSError as e:
            raise Refusal(EXIT_UNREACHABLE, f"the lab's control API {self.control} does not answer ({e})") from None
        if st != 200:
            raise Refusal(EXIT_UNREACHABLE, f"the lab's control API answered {st}")

    @property
    def time_scale(self) -> float:
        env = os.environ.get(ENV_SCALE)
        return float(env) if env else float(self.info.get("time_scale", self.state.get("time_scale", 1.0)))

    def nodes_info(self) -> dict[str, dict]:
        raw = self.info.get("nodes") or {}
        if isinstance(raw, list):
            return {n["name"]: n for n in raw if isinstance(n, dict) and "name" in n}
        return raw

    def find_node(self, host: str, port: int | None) -> str | None:
        infos = self.nodes_info()
        if is_loopback(host):
            cands = [n for n, i in infos.items()
                     if port is None or port in (i.get("rest_port"), i.get("sdk_port"))]
            return cands[0] if len(cands) == 1 else None
        return None

    def management_listening(self, host: str, port: int) -> bool | None:
        """None: the lab runs no vcsim for that management vCenter (REST-only lab): nothing to check."""
        for m in (self.info.get("management") or {}).values():
            if m.get("sdk_port") == port or (m.get("sdk_url") or "").endswith(f":{port}"):
                return _port_open(host, port) if m.get("sdk_url") else None
        if all(not m.get("sdk_url") for m in (self.info.get("management") or {}).values()):
            return None
        return _port_open(host, port)

    def secret(self, name: str) -> str | None:
        f = self.dir / "secrets" / name
        try:
            return f.read_text().strip()
        except OSError:
            return None

    def mgmt_credential(self) -> str:
        try:
            inv = load_trusted((self.dir / "lab-inventory.yml").read_text())
            return (inv.get("management") or [{}])[0].get("credentials", "sso")
        except Exception:
            return "sso"


# -- checks -----------------------------------------------------------------------------------------------
def installer_version(template_line: tuple[int, int] | None) -> Version:
    raw = os.environ.get(ENV_VERSION)
    if raw:
        try:
            return catalogue().resolve(parse_version(raw))
        except VersionError as e:
            raise Refusal(EXIT_TEMPLATE, f"{ENV_VERSION}: {e}") from None
    if template_line is None:
        raise Refusal(EXIT_TEMPLATE, "cannot tell which installer release to play: set " + ENV_VERSION)
    rels = [r.version for r in catalogue().releases if r.version.line == template_line]
    return max(rels)


def path_problem(src: Version, target: Version) -> str:
    """The installer's own view of source -> target (release facts from vcwave's data)."""
    s, t = src.without_build(), target.without_build()
    if t <= s:
        return (f"the source appliance runs {src.release}, which is not older than this installer's "
                f"{target.release}: nothing to upgrade")
    if s.line == t.line:
        return f"{src.release} -> {target.release} is a patch: use the appliance update, not the installer"
    allowed = interop_data().upgrade_paths.get(f"{t.major}.{t.minor}", ())
    if f"{s.major}.{s.minor}" not in allowed:
        return (f"upgrade from {src.release} to {target.release} is not supported (this installer upgrades "
                f"{' and '.join(allowed)} appliances)")
    sd, td = catalogue().release_date(s), catalogue().release_date(t)
    if sd and td and sd > td:
        return (f"upgrade from {src.release} (released {sd}) to {target.release} (released {td}) is not "
                f"supported: the source is newer than the target (back in time); use a later update")
    return ""


def converge_info(t: Tpl, lab: Lab) -> dict | None:
    """The template's sso section as the lab reads it: first instance, or the partner node it names."""
    sso = t.get("sso")
    if not isinstance(sso, dict):
        return None
    port = t.get("sso", "replication_partner_port")
    host = sso.get("replication_partner_hostname")
    partner = lab.find_node(str(host), port if isinstance(port, int) else None) if host else None
    return {"first_instance": sso.get("first_instance"), "partner": partner}


def precheck(t: Tpl, lab: Lab, target: Version, out: Out) -> tuple[str, dict]:
    host = str(t.get("source_vc", "vc_vcsa", "hostname"))
    port = t.get("source_vc", "vc_vcsa", "port")
    name = lab.find_node(host, port if isinstance(port, int) else None)
    where = f"{host}" + (f":{port}" if port else "")
    if name is None:
        raise Refusal(EXIT_UNREACHABLE, f"Unable to connect to the source appliance {where}: no appliance answers "
                                        f"there")
    node = (lab.state.get("nodes") or {}).get(name)
    if node is None:
        raise Refusal(EXIT_UNREACHABLE, f"Unable to connect to the source appliance {where}")
    info = lab.nodes_info().get(name, {})
    rest_port = info.get("rest_port") or port
    if node.get("down") or node.get("listening") is False or (
            isinstance(rest_port, int) and not _port_open(host, rest_port)):
        raise Refusal(EXIT_UNREACHABLE, f"Unable to connect to the source appliance {where} ({name}): "
                                        f"{node.get('down_reason') or 'connection refused'}")
    out(f"Source appliance {where} is {name} ({node['role']}, {node['version']} build {node['build']})", True)
    mh = str(t.get("source_vc", "managing_esxi_or_vc", "hostname"))
    mp = _as_port(t.get("source_vc", "managing_esxi_or_vc", "port"))
    if lab.management_listening(mh, mp) is False:
        raise Refusal(EXIT_UNREACHABLE, f"Unable to connect to the vCenter Server {mh}:{mp} managing the source")
    vh, vp = str(t.get("new_vcsa", "vc", "hostname")), _as_port(t.get("new_vcsa", "vc", "port"))
    if lab.management_listening(vh, vp) is False:
        raise Refusal(EXIT_UNREACHABLE, f"Unable to connect to the target vCenter Server {vh}:{vp}")
    # credentials
    bad = []
    sso_user = lab.state.get("sso_user")
    if sso_user and t.get("source_vc", "vc_vcsa", "username") != sso_user:
        bad.append(f"{t.path('source_vc', 'vc_vcsa', 'username')}: not the SSO administrator of the source")
    for field, cred in (("password", "sso"), ("root_password", "root")):
        want = lab.secret(cred)
        if want is not None and t.get("source_vc", "vc_vcsa", field) != want:
            bad.append(f"{t.path('source_vc', 'vc_vcsa', field)}: invalid credentials for {host}")
    mwant = lab.secret(lab.mgmt_credential())
    for sect in (("source_vc", "managing_esxi_or_vc"), ("new_vcsa", "vc")):
        if mwant is not None and t.get(*sect, "password") != mwant:
            bad.append(f"{t.path(*sect, 'password')}: invalid credentials for {t.get(*sect, 'hostname')}")
    if bad:
        raise Refusal(EXIT_PRECHECK, "Authentication failed", bad)
    # the template kind matches the source's deployment type
    opt = t.get("new_vcsa", "appliance", "deployment_option")
    if node["role"] == "psc" and opt != "infrastructure":
        raise Refusal(EXIT_TEMPLATE, f"the source {name} is a Platform Services Controller: "
                                     f"{t.path('new_vcsa', 'appliance', 'deployment_option')} must be "
                                     f"'infrastructure', not {opt!r} (use PSC_on_VC.json)")
    if node["role"] == "vcenter" and node.get("psc") and not str(opt).startswith("management-"):
        raise Refusal(EXIT_TEMPLATE, f"the source {name} is a vCenter Server with an external Platform Services "
                                     f"Controller: {t.path('new_vcsa', 'appliance', 'deployment_option')} must "
                                     f"be management-<size>, not {opt!r} (use vCSA_on_VC.json)")
    if node.get("restore_mode"):
        raise Refusal(EXIT_PRECHECK, f"the source {name} is a freshly deployed appliance waiting for a restore")
    src = version_of(node)
    problem = path_problem(src, target)
    if problem:
        raise Refusal(EXIT_PRECHECK, problem)
    if node["role"] == "psc" and target.major >= 7:
        raise Refusal(EXIT_PRECHECK, f"{target.release} has no external Platform Services Controller")
    if node["role"] == "vcenter" and node.get("psc") and (target.major, target.minor) not in EXTERNAL_PSC_LINES:
        problem = converge_problem(lab.state.get("nodes") or {}, node, target, converge_info(t, lab), set())
        if problem:
            raise Refusal(EXIT_PRECHECK, problem)
    elif node["role"] == "vcenter" and node.get("psc"):
        psc = (lab.state.get("nodes") or {}).get(node["psc"])
        if psc is None:
            raise Refusal(EXIT_UNREACHABLE, f"Unable to connect to the Platform Services Controller {node['psc']}")
        if psc.get("down"):
            raise Refusal(EXIT_UNREACHABLE, f"Unable to connect to the Platform Services Controller {node['psc']}: "
                                            f"{psc.get('down_reason') or 'connection refused'}")
        pv = version_of(psc)
        if pv.without_build() < target.without_build():
            raise Refusal(EXIT_PRECHECK,
                          f"the vCenter Server {name} cannot be upgraded to {target.release}: its Platform Services "
                          f"Controller {node['psc']} runs {pv.release}; PSC nodes must be upgraded before the "
                          f"vCenter nodes which point to them (a vCenter never runs newer than its PSC)")
        behind = sorted(n for n, x in (lab.state.get("nodes") or {}).items()
                        if x.get("role") == "psc" and version_of(x).without_build() < target.without_build())
        if behind:
            raise Refusal(EXIT_PRECHECK,
                          f"the vCenter Server {name} cannot be upgraded to {target.release} while Platform Services "
                          f"Controllers of the SSO domain are older: {', '.join(behind)} (the lab enforces the "
                          f"documented order: all PSCs, across all sites, before any vCenter Server)")
    return name, node


# -- main -------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vcsa-deploy", description="vcwave lab stand-in for VMware's vcsa-deploy")
    ap.add_argument("--version", action="store_true", help="show the installer release and exit")
    sub = ap.add_subparsers(dest="command")
    up = sub.add_parser("upgrade", help="Upgrade an existing vCSA/PSC appliance")
    up.add_argument("--accept-eula", action="store_true")
    up.add_argument("--acknowledge-ceip", action="store_true")
    mode = up.add_mutually_exclusive_group()
    mode.add_argument("--verify-template-only", "--verify-only", dest="verify_only", action="store_true")
    mode.add_argument("--precheck-only", action="store_true")
    up.add_argument("--no-ssl-certificate-verification", "--no-esx-ssl-verify", dest="no_ssl", action="store_true")
    up.add_argument("--log-dir")
    up.add_argument("--terse", action="store_true")
    up.add_argument("--verbose", action="store_true")
    up.add_argument("template")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        v = installer_version(None) if os.environ.get(ENV_VERSION) else None
        print(f"vcsa-deploy (vcwave lab stand-in) {v.release + ' build ' + str(v.build) if v else ''}".strip())
        return EXIT_OK
    if args.command != "upgrade":
        print("vcsa-deploy: the lab stand-in implements the 'upgrade' sub-command only", file=sys.stderr)
        return EXIT_TEMPLATE
    out = Out(args.log_dir, args.terse)
    try:
        return _upgrade(args, out)
    except Refusal as r:
        out(f"ERROR: {r}")
        for d in r.details:
            out(f"    {d}")
        out({EXIT_TEMPLATE: "Template verification failed",
             EXIT_PRECHECK: "Precheck failed: nothing was changed",
             EXIT_UNREACHABLE: "Could not connect: nothing was changed",
             EXIT_FAILED: "Upgrade failed"}.get(r.code, "Failed"))
        return r.code
    finally:
        out.close()


def _upgrade(args: argparse.Namespace, out: Out) -> int:
    out("=" * 20 + " [START] vcsa-deploy upgrade (vcwave lab stand-in) " + "=" * 20)
    if not args.accept_eula:
        raise Refusal(EXIT_TEMPLATE, "You must accept the VMware end user license agreement: --accept-eula")
    try:
        raw = json.loads(Path(args.template).read_text())
    except OSError as e:
        raise Refusal(EXIT_TEMPLATE, f"cannot read the template {args.template}: {e.strerror}") from None
    except ValueError as e:
        raise Refusal(EXIT_TEMPLATE, f"the template is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise Refusal(EXIT_TEMPLATE, "the template must be a JSON object")
    tline = next((line for line, (ver, _) in TEMPLATE_VERSIONS.items() if raw.get("__version") == ver), None)
    target = installer_version(tline)
    out(f"Installer: vCenter Server Appliance {target.release} (build {target.build})", True)
    want = TEMPLATE_VERSIONS.get(target.line)
    if want is None:
        lines = ", ".join(f"{a}.{b}" for a, b in TEMPLATE_VERSIONS)
        raise Refusal(EXIT_TEMPLATE, f"the stand-in plays the {lines} installers, not {target.release}")
    if raw.get("__version") != want[0]:
        raise Refusal(EXIT_TEMPLATE, f"__version {raw.get('__version')!r} is not a template of this installer "
                                     f"({target.release} reads __version {want[0]!r}); take the template from "
                                     f"this ISO's templates/upgrade folder")
    t = Tpl(raw, want[1])
    problems = template_problems(t, args.acknowledge_ceip)
    if problems:
        raise Refusal(EXIT_TEMPLATE, "The template has missing or invalid values", problems)
    out("[SUCCEEDED] Template verification")
    if args.verify_only:
        out("Template verification completed successfully (nothing was changed)")
        return EXIT_OK
    lab = Lab(lab_dir())
    name, node = precheck(t, lab, target, out)
    out("[SUCCEEDED] Upgrade prechecks")
    if args.precheck_only:
        out(f"Precheck of {name} for the upgrade to {target.release} completed successfully (nothing was changed)")
        return EXIT_OK
    return _run_upgrade(t, lab, name, node, target, out)


def _progress(out: Out, stage: str, seconds: float, done: threading.Event | None = None) -> None:
    steps = 10
    for i in range(steps + 1):
        pct = i * 100 // steps
        if done is not None and i == steps:
            break
        out(f"{stage}: {pct}% complete")
        if done is not None:
            if done.wait(seconds / steps):
                return
        elif i < steps:
            time.sleep(seconds / steps)


def _run_upgrade(t: Tpl, lab: Lab, name: str, node: dict, target: Version, out: Out) -> int:
    new_vm = str(t.get("new_vcsa", "appliance", "name"))
    mgmt = t.get("new_vcsa", "vc", "hostname")
    scale = lab.time_scale
    out(f"Stage 1: deploying appliance {new_vm} ({target.release}) on {mgmt} with the temporary network ...")
    _progress(out, "Stage 1", STAGE1_SECONDS * scale)
    out(f"Stage 1: the appliance {new_vm} is deployed and powered on")
    out(f"Stage 2: exporting the configuration and data of {name}, importing them into {new_vm} ...")
    result: dict[str, Any] = {}
    done = threading.Event()

    def call() -> None:
        try:
            result["status"], result["body"] = _http("POST", lab.control + "/lab/installer/upgrade", {
                "source": name, "target_version": target.release, "target_build": target.build,
                "new_vm_name": new_vm, "rebuild": False, "sso": converge_info(t, lab)},
                timeout=max(600.0, 7200 * scale))
        except OSError as e:
            result["status"], result["body"] = 0, {"error": str(e)}
        finally:
            done.set()

    threading.Thread(target=call, daemon=True).start()
    _progress(out, "Stage 2", 3600.0 * scale, done)
    done.wait()
    st, body = result["status"], result["body"] or {}
    if st != 200:
        msg = body.get("error") if isinstance(body, dict) else str(body)
        kind = body.get("kind") if isinstance(body, dict) else ""
        if st == 400:
            raise Refusal(EXIT_UNREACHABLE if kind == "service_unavailable" else EXIT_PRECHECK,
                          f"Stage 2 refused: {msg}")
        raise Refusal(EXIT_FAILED, f"Stage 2 failed ({st or 'no answer'}): {msg}")
    if body.get("lost_reply"):  # lab fault: the upgrade happened, the installer never heard it end
        raise Refusal(EXIT_FAILED, f"Stage 2 failed: lost the connection to the new appliance {new_vm}; "
                                   f"its state is unknown")
    out("Stage 2: 100% complete")
    out(f"Stage 2: the source appliance {node['vm']['name']} is powered off; {new_vm} took over its network "
        f"identity")
    out(f"Upgrade of {name} to {body.get('version')} (build {body.get('build')}) completed successfully")
    return EXIT_OK


# -- the wrapper the product runs as its installer ----------------------------------------------------------
def standin_path(target: str | None = None, bin_dir: str | Path | None = None) -> Path:
    """Write (idempotently) an executable `vcsa-deploy` wrapper running this stand-in and return its path.

    `target`: the release the wrapper plays (e.g. "6.5 U1"; sets VCWAVE_STANDIN_VERSION), like the
    installer of one ISO; None: taken from each template's `__version`. Default dir: lab/bin.
    """
    root = Path(__file__).resolve().parents[1]
    d = Path(bin_dir) if bin_dir else Path(__file__).resolve().parent / "bin"
    d.mkdir(parents=True, exist_ok=True)
    env = ""
    name = "vcsa-deploy"
    if target:
        v = catalogue().resolve(parse_version(target))
        env = f"export {ENV_VERSION}='{v.release}'\n"
        name = f"vcsa-deploy-{v.release.replace(' ', '')}"
    p = d / name
    from lab.warmcli import RELAY as relay
    text = ("#!/bin/sh\n# vcwave lab: stand-in for VMware's vcsa-deploy (written by lab.installer_standin)\n"
            f"PYTHONPATH='{root}'${{PYTHONPATH:+:$PYTHONPATH}}\nexport PYTHONPATH\n{env}"
            "# forked from the warm server the tests and the harness run, when there is one (lab/warm_relay.py)\n"
            f"[ -S \"${{{ENV_WARM_SOCKET}:-}}\" ] && "
            f"exec '{sys.executable}' -S '{relay}' lab.installer_standin \"$@\"\n"
            f"exec '{sys.executable}' -m lab.installer_standin \"$@\"\n")
    if not p.exists() or p.read_text() != text:
        tmp = p.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")  # threads share a pid
        tmp.write_text(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, p)
    return p


if __name__ == "__main__":
    sys.exit(main())

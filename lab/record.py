"""Record the client cassettes (vcrpy) against a live lab, scrubbed BEFORE anything is written.

    python -m lab.record [--out cassettes]

Each scenario drives the REAL clients (orchestrator.clients.*) against the lab: vSphere about/SSO pointer/
fingerprint/snapshots (vcsim), appliance session/version/health/backup job/update precheck-stage-install (the
REST twin). `tests/clients/test_cassettes.py` replays them offline with record_mode="none".

Why the care:
- pyVmomi imports HTTPConnection/HTTPSConnection into `pyVmomi.SoapAdapter` and `pyVim.connect` at import
  time, so vcrpy's default patches never see its traffic: `custom_patches` patches those two modules too.
- Secrets never reach the disk: SOAP `<password ...>` elements, `vmware_soap_session` cookies (request and
  response headers), `vmware-api-session-id` (request header and the session response body), `Authorization`,
  `location_password`/`backup_password`, update `user_data` values, and every lab password (registered
  Secrets) are replaced by '***' in before_record_request/before_record_response.
- Matching is deterministic and port-free: method + path + query + scrubbed body; the host:port of every
  recorded request is rewritten to a fixed placeholder (ports differ between labs).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit


from orchestrator import scrub
from orchestrator.clients import retry
from orchestrator.clients.appliance import ApplianceClient
from orchestrator.clients.vsphere import VSphereClient
from orchestrator.secrets import Secret

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER_NETLOC = "lab.invalid:1"
SECRET_HEADERS = ("authorization", "cookie", "set-cookie", "vmware-api-session-id")


# -- scrubbing + matching ---------------------------------------------------------------------------------------
def _scrub_header_value(name: str, value: str) -> str:
    if name.lower() in ("authorization", "vmware-api-session-id"):
        return scrub.MASK
    return scrub.scrub_text(value)  # cookies: vmware_soap_session=*** (and any registered secret)


def _scrub_headers(headers: Any) -> None:
    for name in list(headers.keys()):
        if name.lower() in SECRET_HEADERS:
            v = headers[name]
            headers[name] = ([_scrub_header_value(name, x) for x in v] if isinstance(v, list)
                             else _scrub_header_value(name, v))


def _scrub_body(body: Any) -> Any:
    if body is None:
        return None
    if isinstance(body, bytes):
        return scrub.scrub_bytes(body)
    if isinstance(body, str):
        return scrub.scrub_text(body)
    return body


def before_record_request(request: Any) -> Any:
    u = urlsplit(request.uri)
    request.uri = urlunsplit((u.scheme, PLACEHOLDER_NETLOC, u.path, u.query, u.fragment))
    _scrub_headers(request.headers)
    request.body = _scrub_body(request.body)
    return request


def before_record_response(response: dict) -> dict:
    _scrub_headers(response.get("headers") or {})
    body = response.get("body") or {}
    if "string" in body:
        data = body["string"]
        if isinstance(data, bytes) and data.strip().startswith(b"{"):
            try:  # the appliance session answer {"value": "<sid>"}
                doc = json.loads(data)
                if isinstance(doc, dict) and isinstance(doc.get("value"), str) and len(doc) == 1 and \
                        _looks_like_session(doc["value"]):
                    data = json.dumps({"value": scrub.MASK}).encode()
            except ValueError:
                pass
        body["string"] = _scrub_body(data)
    return response


def _looks_like_session(v: str) -> bool:
    return len(v) >= 16 and all(c.isalnum() or c in "-_" for c in v) and not v.count(".") and " " not in v


def _norm_body(r: Any) -> bytes:
    b = r.body
    if b is None:
        return b""
    if isinstance(b, str):
        b = b.encode()
    return scrub.scrub_bytes(b)


def body_scrubbed(r1: Any, r2: Any) -> None:
    assert _norm_body(r1) == _norm_body(r2), "bodies differ"


def make_vcr(record_mode: str = "none") -> Any:
    """A vcr.VCR that records/replays the scenarios (vcrpy imported here: it pulls requests, botocore and
    pyOpenSSL in, ~0.1 s per process, and the test suite imports this module at collection for SCENARIOS)."""
    import pyVim.connect as pyvim_connect
    import pyVmomi.SoapAdapter as soap
    import vcr
    from vcr.stubs import VCRHTTPConnection, VCRHTTPSConnection
    v = vcr.VCR(
        record_mode=record_mode,
        match_on=("method", "path", "query", "body_scrubbed"),
        before_record_request=before_record_request,
        before_record_response=before_record_response,
        decode_compressed_response=True,
        custom_patches=((soap, "HTTPConnection", VCRHTTPConnection), (soap, "HTTPSConnection", VCRHTTPSConnection),
                        (pyvim_connect, "HTTPConnection", VCRHTTPConnection),
                        (pyvim_connect, "HTTPSConnection", VCRHTTPSConnection)),
    )
    v.register_matcher("body_scrubbed", body_scrubbed)
    return v


# -- endpoints + scenarios ------------------------------------------------------------------------------------
@dataclass
class Endpoints:
    """Where the scenarios connect. For replay, any loopback address works (nothing is contacted)."""

    rest: dict[str, str]                 # node -> base url
    vc_sdk: tuple[str, int]              # a vCenter of the domain (vc-a)
    mgmt_sdk: tuple[str, int]            # the management vCenter holding the appliance VMs
    sso_user: str = "administrator@vsphere.local"
    passwords: dict[str, str] = field(default_factory=dict)
    ca_bundle: str | None = None         # the lab CA (https); None: the replay placeholders (plain http)

    @classmethod
    def placeholder(cls) -> "Endpoints":
        rest = {n: "http://127.0.0.1:9" for n in ("psc-a", "psc-b", "vc-a", "vc-b")}
        pw = {"sso": "Replay-Sso-Pa55!", "root": "Replay-Root-Pa55!", "backup": "Replay-Bk-Pa55!"}
        return cls(rest, ("127.0.0.1", 9), ("127.0.0.1", 9), passwords=pw)


def _appliance(ep: Endpoints, node: str) -> ApplianceClient:
    return ApplianceClient(ep.rest[node], ep.sso_user, Secret(ep.passwords["sso"]), node=node,
                           verify=ep.ca_bundle or True)


def _vsphere(ep: Endpoints, where: tuple[str, int], node: str) -> VSphereClient:
    return VSphereClient(where[0], where[1], ep.sso_user, Secret(ep.passwords["sso"]), node=node,
                         scheme="https" if ep.ca_bundle else "http", verify=ep.ca_bundle or True)


def sc_vsphere_about_sso(ep: Endpoints) -> dict:
    c = _vsphere(ep, ep.vc_sdk, "vc-a").connect()
    out = {"about": c.about(), "psc": c.sso_psc()}
    c.disconnect()
    return out


def sc_vsphere_fingerprint(ep: Endpoints) -> dict:
    c = _vsphere(ep, ep.vc_sdk, "vc-a").connect()
    before = c.round_trips
    fp = c.fingerprint()
    out = {"fingerprint": fp, "round_trips": c.round_trips - before}
    c.disconnect()
    return out


def sc_vsphere_snapshot(ep: Endpoints) -> dict:
    c = _vsphere(ep, ep.mgmt_sdk, "mgmt-vc").connect()
    vm = c.vm_by_name("psc-a")
    states = c.vm_power_states(["psc-a", "vc-a"])
    moref = c.create_snapshot(vm, "vcwave-cassette", "recorded by lab/record.py")
    snaps = c.snapshots(vm)
    c.revert_snapshot(vm, "vcwave-cassette")
    c.power_on(vm)
    c.remove_snapshot(vm, "vcwave-cassette")
    out = {"states": states, "snapshot": moref, "snapshots": snaps, "after": c.snapshots(vm)}
    c.disconnect()
    return out


def sc_appliance_session(ep: Endpoints) -> dict:
    c = _appliance(ep, "psc-a")
    out = {"version": c.version(), "health": c.health(), "services": c.services()}
    c.logout()
    return out


def sc_appliance_backup(ep: Endpoints) -> dict:
    c = _appliance(ep, "vc-a")
    jid = c.backup_start(parts=["common"], location_type="SFTP", location="sftp://backup.example/vcwave/vc-a",
                         location_user="vcwave-backup", location_password=Secret(ep.passwords["backup"]),
                         backup_password=Secret("Cassette-Bk-9!"), comment="cassette")
    job = c.wait_job(lambda: c.backup_job(jid), deadline=60, what="backup", initial=0.01, cap=0.05)
    out = {"id": jid, "job": job, "jobs": c.backup_jobs()}
    c.logout()
    return out


def sc_appliance_update(ep: Endpoints) -> dict:
    c = _appliance(ep, "psc-b")
    pending = c.update_pending("LOCAL_AND_ONLINE")
    target = pending[0].version
    pre = c.update_precheck(target)
    c.update_stage(target)
    staged_state = c.wait_job(c.update_state, deadline=60, what="stage", initial=0.01, cap=0.05)
    staged = c.update_staged()
    c.update_install(target, {"vmdir.password": Secret(ep.passwords["sso"])})
    done = c.wait_job(c.update_state, deadline=120, what="install", initial=0.01, cap=0.05)
    out = {"target": target, "precheck": pre, "staged_state": staged_state, "staged": staged, "done": done,
           "version": c.version()}
    c.logout()
    return out


SCENARIOS: dict[str, Callable[[Endpoints], dict]] = {
    "vsphere_about_sso": sc_vsphere_about_sso,
    "vsphere_fingerprint": sc_vsphere_fingerprint,
    "vsphere_snapshot": sc_vsphere_snapshot,
    "appliance_session": sc_appliance_session,
    "appliance_backup": sc_appliance_backup,
    "appliance_update": sc_appliance_update,
}


# -- recording ---------------------------------------------------------------------------------------------
def record_all(out_dir: str | Path = "cassettes", *, inventory: str | Path | None = None,
               only: tuple[str, ...] = ()) -> dict[str, int]:
    """Start a lab, run every scenario with the real clients, write `out_dir/<scenario>.yaml`.
    Returns {scenario: interactions recorded}."""
    from lab import manage
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inv = Path(inventory) if inventory else ROOT / "examples" / "two-site.yml"
    work = Path(tempfile.mkdtemp(prefix="vcwave-record-"))
    old_policy = retry.set_default_policy(initial_wait=0.01, max_wait=0.05, attempts=8, deadline=60.0)
    # The lab runs in its own process, as for a user: vcrpy patches http.client for the whole process, so a
    # lab in this one would have its own SOAP traffic (its management vCenter session) recorded into a cassette,
    # which then never replays.
    info = manage.up(inv, work / "lab", time_scale=1e-4, warm=True)
    try:
        pw = {n: (work / "lab" / "secrets" / n).read_text().strip() for n in ("sso", "root", "backup")}
        for v in pw.values():
            Secret(v)  # registered: scrubbed wherever it appears
        sso_user = manage.control(work / "lab", "/lab/state")["sso_user"]
        rest = {n: node["rest_url"] for n, node in info["nodes"].items()}
        vc = urlsplit(info["nodes"]["vc-a"]["sdk_url"])
        mg = urlsplit(next(iter(info["management"].values()))["sdk_url"])
        vc_sdk, mgmt_sdk = (vc.hostname or "127.0.0.1", int(vc.port)), (mg.hostname or "127.0.0.1", int(mg.port))
        ep = Endpoints(rest, vc_sdk, mgmt_sdk, sso_user, pw, info["ca_bundle"])
        counts = {}
        rec = make_vcr("all")
        for name, fn in SCENARIOS.items():
            if only and name not in only:
                continue
            path = out / f"{name}.yaml"
            if path.exists():
                path.unlink()
            with rec.use_cassette(str(path)) as cass:
                fn(ep)
            counts[name] = len(cass)
            text = path.read_text()
            leaks = [k for k, v in pw.items() if v in text]
            if leaks:
                path.unlink()
                raise RuntimeError(f"cassette {path} contained the lab's {', '.join(leaks)} password: not written")
        return counts
    finally:
        retry.set_default_policy(old_policy)
        manage.down(work / "lab")
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "cassettes"))
    ap.add_argument("--inventory")
    ap.add_argument("--only", nargs="*", default=())
    a = ap.parse_args(argv)
    counts = record_all(a.out, inventory=a.inventory, only=tuple(a.only))
    for k, v in counts.items():
        print(f"{k}: {v} interactions")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The lab's installer converges external PSCs on the way to 7.0, and refuses what the real installer refuses.

The product's templates (core/installer_template.py, the planner's converge order) against the stand-in and
a REST-only lab: the first instance converges, a next vCenter whose replication partner is not at 7.0 yet is
refused, two converges at once fail, a PSC cannot go to 7.0, a template without the sso section is refused.
"""
from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from orchestrator.core.installer_template import fill_secrets
from tests.lab.conftest import TINY
from tests.lab.test_installer_standin import DEPLOY, Twin

CONVERGE_INV = f"""
domain: vsphere.local
credentials:
  sso:  {{user: administrator@vsphere.local, password_env: LAB_SSO}}
  root: {{user: root, password_env: LAB_ROOT}}
sites: [s1, s2]
management:
  - {{name: mgmt, host: 127.0.0.1, port: 9, scheme: http, credentials: sso}}
nodes:
  - {{name: p1, role: psc, site: s1, host: p1.example, version: "6.7 U3", vm: {{vcenter: mgmt, name: p1}}, deploy: {DEPLOY}}}
  - {{name: p2, role: psc, site: s2, host: p2.example, version: "6.7 U3", vm: {{vcenter: mgmt, name: p2}}, deploy: {DEPLOY}}}
  - {{name: v1, role: vcenter, site: s1, host: v1.example, version: "6.7 U3", psc: p1, vm: {{vcenter: mgmt, name: v1}},
      deploy: {DEPLOY}}}
  - {{name: v2, role: vcenter, site: s2, host: v2.example, version: "6.7 U3", psc: p2, vm: {{vcenter: mgmt, name: v2}},
      deploy: {DEPLOY}}}
  - {{name: v3, role: vcenter, site: s1, host: v3.example, version: "6.7 U3", psc: p1, vm: {{vcenter: mgmt, name: v3}},
      deploy: {DEPLOY}}}
"""
TARGET = "7.0 U3"


def _twin(make_lab, control_of, tmp_path, time_scale: float) -> Twin:
    inv = tmp_path / "lab-src.yml"
    inv.write_text(textwrap.dedent(CONVERGE_INV))
    lab = make_lab(inv, time_scale=time_scale)
    return Twin(lab, tmp_path, control_of(lab))


@pytest.fixture
def twin(make_lab, control_of, tmp_path):
    """The converge lab at the lab tests' tiny clock (conftest TINY): these tests assert outcomes, not durations."""
    return _twin(make_lab, control_of, tmp_path, TINY)


@pytest.fixture
def overlapping_twin(make_lab, control_of, tmp_path):
    """A clock at which an installer's stage 2 lasts 1.8 s: two runs started together are both inside it."""
    return _twin(make_lab, control_of, tmp_path, 0.0005)


def test_the_planners_order_converges_vcenter_by_vcenter(twin):
    """v1 is the first instance; v3 (same site) names v1; v2 (other site, none converged there) names v1 too.
    Each new appliance keeps the vCenter's identity and embeds SSO (no PSC pointer any more)."""
    assert twin.template("v1", TARGET)["sso"] == {"first_instance": True}
    early = twin.template("v3", TARGET)
    assert early["sso"]["first_instance"] is False and early["sso"]["replication_partner_port"] == twin.port_of("v1")
    code, out = twin.run(TARGET, early, "--precheck-only")
    assert code == 3 and "replication partner v1" in out and "not a running vCenter Server 7.0" in out, out
    before = twin.node("v1")
    code, out = twin.run(TARGET, twin.template("v1", TARGET))
    assert code == 0, out
    after = twin.node("v1")
    assert (after["version"], after["psc"]) == (TARGET, None)
    assert after["instance_uuid"] == before["instance_uuid"] and after["previous"]["psc"] == "p1"
    assert twin.lab.state.data["vms"]["mgmt"]["v1"] == "poweredOff"
    for name in ("v3", "v2"):
        code, out = twin.run(TARGET, twin.template(name, TARGET))
        assert code == 0, out
        assert (twin.node(name)["version"], twin.node(name)["psc"]) == (TARGET, None)
    assert {twin.node(p)["version"] for p in ("p1", "p2")} == {"6.7 U3"}  # PSCs are never upgraded


def test_two_converges_at_once_fail_like_the_real_installer(overlapping_twin):
    twin = overlapping_twin
    code, out = twin.run(TARGET, twin.template("v1", TARGET))
    assert code == 0, out
    procs = []
    for name in ("v2", "v3"):
        f = twin.tmp / f"par-{name}.json"
        f.write_text(json.dumps(fill_secrets(twin.template(name, TARGET), twin.secrets)))
        procs.append(subprocess.Popen([str(twin.installer(TARGET)), "upgrade", "--accept-eula", "--acknowledge-ceip",
                                       str(f)], env=twin.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    results = [(p.wait(timeout=120), p.stdout.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 3], results
    refused = next(out for code, out in results if code == 3)
    assert "parallel upgrades are not supported" in refused
    assert sorted(twin.node(n)["version"] for n in ("v2", "v3")) == ["6.7 U3", TARGET]


def test_a_psc_or_a_template_without_sso_is_refused(twin):
    psc = twin.template("v1", TARGET)  # a vCenter template aimed at the PSC p1
    psc["source_vc"]["vc_vcsa"]["port"] = twin.port_of("p1")
    code, out = twin.run(TARGET, psc, "--precheck-only")
    assert code in (2, 3) and "p1" in out, out
    no_sso = twin.template("v1", TARGET)
    del no_sso["sso"]
    code, out = twin.run(TARGET, no_sso, "--precheck-only")
    assert code == 3 and "sso section" in out, out
    assert twin.node("v1")["version"] == "6.7 U3"


def test_a_7_0_u2_or_later_node_serves_the_api_style_beside_rest(twin, rest_of):
    """After its converge v1 (7.0 U3) answers /api (session id as a bare JSON string, results unwrapped, maps
    as objects, /api error shape) and still /rest; v2 (6.7 U3) has no /api."""
    code, out = twin.run(TARGET, twin.template("v1", TARGET))
    assert code == 0, out
    r = rest_of(twin.lab, "v1", login=False)
    d = twin.lab.state.data
    st, sid = r.call("POST", "/api/session", auth=(d["sso_user"], d["sso_password"]))
    assert st == 200 and isinstance(sid, str) and sid
    st, version = r.call("GET", "/api/appliance/system/version", sid=sid)
    assert st == 200 and version["version"] == "7.0.3.00000" and "embedded" in version["type"]
    st, services = r.call("GET", "/api/appliance/vmon/service", sid=sid)
    assert st == 200 and isinstance(services, dict) and services["vpxd"]["state"] == "STARTED"
    st, wrapped = r.call("GET", "/rest/appliance/system/version", sid=sid)
    assert st == 200 and wrapped["value"] == version
    st, denied = r.call("GET", "/api/appliance/system/version", sid="nope")
    assert st == 401 and denied["error_type"] == "UNAUTHENTICATED"
    st, _ = rest_of(twin.lab, "v2", login=False).call("POST", "/api/session",
                                                      auth=(d["sso_user"], d["sso_password"]))
    assert st == 404

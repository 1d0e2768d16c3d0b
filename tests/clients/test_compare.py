"""compare_declared: version/build, instance UUID and PSC pointer, declared vs live (pure)."""
from __future__ import annotations

from orchestrator.clients.vsphere import About, PscPointer
from orchestrator.core.inventory import load_inventory
from orchestrator.facts.compare import compare_declared

from .conftest import ROOT

INV = load_inventory(ROOT / "examples" / "two-site.yml")
HOSTS = {n.name: n.host for n in INV.pscs}


def about(build="10244745", version="6.7.0", uuid="u-1"):
    return About(version, build, "6.7.1", uuid, f"VMware vCenter Server {version} build-{build}")


def ptr(host):
    return PscPointer(f"https://{host}/sso-adminserver/sdk/vsphere.local", f"https://{host}/sts", host.lower())


def test_match():
    assert compare_declared(INV.node("vc-a"), about(), ptr("psc-a.corp.example:443"), HOSTS) == []
    assert compare_declared(INV.node("psc-a"), about(), None, HOSTS) == []


def test_version_build_and_psc_mismatch_with_both_values():
    m = compare_declared(INV.node("vc-a"), about("13010631"), ptr("PSC-B.corp.example"), HOSTS)
    got = {(x.field, x.declared, x.actual) for x in m}
    assert ("version", "6.7 U1", "6.7 U2") in got
    assert ("build", "10244745", "13010631") in got
    assert ("psc", "psc-a (psc-a.corp.example)", "psc-b.corp.example") in got
    assert all("vc-a" in str(x) for x in m)


def test_other_line_and_missing_pointer():
    m = compare_declared(INV.node("vc-b"), about("5973321", "6.5.0"), None, HOSTS)
    assert {x.field for x in m} == {"version", "build", "psc"}

"""The installer template: key names per installer release, placement from `deploy`, no secrets, validation."""
from __future__ import annotations

import copy
import json

import pytest

from orchestrator.core.installer_template import (TemplateError, build_upgrade_template, fill_secrets, placeholder,
                                                  secret_names, validate_template, verify_flag)
from orchestrator.core.inventory import loads_inventory
from orchestrator.core.versions import catalogue, parse_version

DEPLOY = ("{datacenter: DC0, datastore: LocalDS_0, network: VM Network, deployment_size: small, target: DC0_C0, "
          "temporary_network: {ip: 10.0.0.50, prefix: 24, gateway: 10.0.0.1, dns_servers: [10.0.0.2, 10.0.0.3]}}")
PSC_ONLY = f"""
domain: vsphere.local
credentials:
  sso:  {{user: administrator@vsphere.local, password_env: T_SSO}}
  root: {{user: root, password_env: T_ROOT}}
  mgmt: {{user: admin@mgmt.local, password_env: T_MGMT}}
sites: [s1]
management:
  - {{name: mgmt-vc, host: mgmt.corp.example, credentials: mgmt}}
nodes:
  - {{name: p1, role: psc, site: s1, host: p1.corp.example, version: "@P@", vm: {{vcenter: mgmt-vc, name: p1}},
      deploy: {DEPLOY}}}
"""
INV = PSC_ONLY + f"""\
  - {{name: v1, role: vcenter, site: s1, host: v1.corp.example, version: "6.0 U3", psc: p1,
      vm: {{vcenter: mgmt-vc, name: v1}}, deploy: {DEPLOY}}}
  - {{name: v2, role: vcenter, site: s1, host: v2.corp.example, version: "@V2@", psc: p1,
      vm: {{vcenter: mgmt-vc, name: v2}}, deploy: {DEPLOY}}}
"""
INV60 = INV.replace("@P@", "6.0 U3").replace("@V2@", "6.0 U3")
SECRETS = {"sso": "Sso-Secret#1", "root": "Root\"Secret#2", "mgmt": "Mgmt-Secret#3"}


def V(s: str):
    return catalogue().resolve(parse_version(s))


@pytest.fixture(scope="module")
def inv():
    """PSC and v2 at 6.5 U1 (v1 still 6.0 U3)."""
    return loads_inventory(INV.replace("@P@", "6.5 U1").replace("@V2@", "6.5 U1"))


@pytest.fixture(scope="module")
def inv60():
    return loads_inventory(INV60)


def keys(obj, prefix=""):
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + k)
            out += keys(v, prefix + k + "/")
    return out


def test_65_template_uses_dotted_keys_and_version_2_3_0(inv60):
    t = build_upgrade_template(inv60, inv60.node("v1"), V("6.5 U1"))
    assert t["__version"] == "2.3.0"
    assert set(t) == {"__version", "__comments", "new.vcsa", "source.vc", "ceip"}
    nv = t["new.vcsa"]
    assert set(nv) == {"vc", "appliance", "os", "temporary.network", "user-options"}
    assert set(nv["vc"]) >= {"hostname", "username", "password", "deployment.network", "datacenter", "datastore",
                             "target"}
    assert set(nv["appliance"]) == {"thin.disk.mode", "deployment.option", "name"}
    assert nv["os"] == {"ssh.enable": False}
    assert set(nv["temporary.network"]) == {"ip.family", "mode", "ip", "prefix", "gateway", "dns.servers"}
    assert nv["user-options"] == {"vcdb.migrateSet": "core"}
    assert set(t["source.vc"]) == {"managing.esxi.or.vc", "vc.vcsa"}
    assert set(t["source.vc"]["vc.vcsa"]) == {"hostname", "username", "password", "root.password"}
    assert t["ceip"] == {"settings": {"ceip.enabled": False}}
    assert "vcsa6.0/vCSA_on_VC.json" in t["__comments"][0]
    assert verify_flag(t) == "--verify-only"
    assert validate_template(t) == []


def test_67_template_uses_underscore_keys_and_version_2_13_0(inv):
    t = build_upgrade_template(inv, inv.node("v2"), V("6.7 U1"))
    assert t["__version"] == "2.13.0"
    assert not [k for k in keys(t) if "." in k.split("/")[-1] or "-" in k.split("/")[-1]]
    assert t["new_vcsa"]["user_options"] == {"vcdb_migrateSet": "core"}
    assert set(t["source_vc"]["vc_vcsa"]) == {"hostname", "username", "password", "root_password"}
    assert t["new_vcsa"]["os"] == {"ssh_enable": False}
    assert t["ceip"]["settings"] == {"ceip_enabled": False}
    assert "vcsa6.5/vCSA_on_VC.json" in t["__comments"][0]
    assert verify_flag(t) == "--verify-template-only"
    assert validate_template(t) == []


def test_psc_template_is_infrastructure_without_database_options(inv60):
    t = build_upgrade_template(inv60, inv60.node("p1"), V("6.5 U1"))
    assert t["new.vcsa"]["appliance"]["deployment.option"] == "infrastructure"
    assert "user-options" not in t["new.vcsa"]
    assert "PSC_on_VC.json" in t["__comments"][0]
    assert validate_template(t) == []


def test_vcenter_with_external_psc_gets_a_management_size(inv60):
    t = build_upgrade_template(inv60, inv60.node("v1"), V("6.5 U1"))
    assert t["new.vcsa"]["appliance"]["deployment.option"] == "management-small"


def test_embedded_vcenter_gets_the_plain_size():
    text = INV60.replace("psc: p1,", "embedded_psc: true,").replace("sites: [s1]", "topology: embedded\nsites: [s1]")
    inv = loads_inventory(text)
    t = build_upgrade_template(inv, inv.node("v1"), V("6.7 U1"))
    assert t["new_vcsa"]["appliance"]["deployment_option"] == "small"
    assert "embedded_vCSA_on_VC.json" in t["__comments"][0]


def test_placement_and_managing_vcenter_come_from_the_inventory(inv60):
    node = inv60.node("v1")
    t = build_upgrade_template(inv60, node, V("6.5 U1"))
    vc = t["new.vcsa"]["vc"]
    assert (vc["hostname"], vc["username"]) == ("mgmt.corp.example", "admin@mgmt.local")
    assert (vc["datacenter"], vc["datastore"], vc["deployment.network"], vc["target"]) == (
        "DC0", "LocalDS_0", "VM Network", "DC0_C0")
    tn = t["new.vcsa"]["temporary.network"]
    assert tn == {"ip.family": "ipv4", "mode": "static", "ip": "10.0.0.50", "prefix": "24", "gateway": "10.0.0.1",
                  "dns.servers": ["10.0.0.2", "10.0.0.3"]}
    assert t["new.vcsa"]["appliance"]["name"] == "v1-65"
    m = t["source.vc"]["managing.esxi.or.vc"]
    assert (m["hostname"], m["username"], m["password"]) == ("mgmt.corp.example", "admin@mgmt.local",
                                                              placeholder("mgmt"))
    src = t["source.vc"]["vc.vcsa"]
    assert (src["hostname"], src["username"]) == ("v1.corp.example", "administrator@vsphere.local")
    assert "port" not in src and "port" not in vc  # 443: nothing written


def test_no_secret_in_the_template_and_fill_secrets_only_in_a_copy(inv60, monkeypatch):
    for k, v in (("T_SSO", SECRETS["sso"]), ("T_ROOT", SECRETS["root"]), ("T_MGMT", SECRETS["mgmt"])):
        monkeypatch.setenv(k, v)
    t = build_upgrade_template(inv60, inv60.node("v1"), V("6.5 U1"))
    text = json.dumps(t)
    assert not any(s in text for s in SECRETS.values())
    assert secret_names(t) == {"sso", "root", "mgmt"}
    before = copy.deepcopy(t)
    filled = fill_secrets(t, SECRETS)
    assert t == before
    assert filled["source.vc"]["vc.vcsa"]["root.password"] == SECRETS["root"]
    assert filled["source.vc"]["vc.vcsa"]["password"] == SECRETS["sso"]
    assert filled["new.vcsa"]["vc"]["password"] == SECRETS["mgmt"]
    assert not secret_names(filled)


def test_fill_secrets_names_the_missing_credential_never_a_value(inv60):
    t = build_upgrade_template(inv60, inv60.node("v1"), V("6.5 U1"))
    with pytest.raises(TemplateError) as e:
        fill_secrets(t, {"sso": SECRETS["sso"], "mgmt": SECRETS["mgmt"]})
    assert "root" in str(e.value) and SECRETS["sso"] not in str(e.value)


REQUIRED_67 = [
    ("new_vcsa",), ("source_vc",), ("ceip",),
    ("new_vcsa", "vc", "hostname"), ("new_vcsa", "vc", "username"), ("new_vcsa", "vc", "password"),
    ("new_vcsa", "vc", "deployment_network"), ("new_vcsa", "vc", "datacenter"), ("new_vcsa", "vc", "datastore"),
    ("new_vcsa", "vc", "target"), ("new_vcsa", "appliance", "thin_disk_mode"),
    ("new_vcsa", "appliance", "deployment_option"), ("new_vcsa", "appliance", "name"),
    ("new_vcsa", "os", "ssh_enable"), ("new_vcsa", "temporary_network", "ip_family"),
    ("new_vcsa", "temporary_network", "mode"), ("new_vcsa", "temporary_network", "ip"),
    ("new_vcsa", "temporary_network", "prefix"), ("new_vcsa", "temporary_network", "gateway"),
    ("new_vcsa", "temporary_network", "dns_servers"), ("new_vcsa", "user_options", "vcdb_migrateSet"),
    ("source_vc", "managing_esxi_or_vc", "hostname"), ("source_vc", "managing_esxi_or_vc", "username"),
    ("source_vc", "managing_esxi_or_vc", "password"), ("source_vc", "vc_vcsa", "hostname"),
    ("source_vc", "vc_vcsa", "username"), ("source_vc", "vc_vcsa", "password"),
    ("source_vc", "vc_vcsa", "root_password"), ("ceip", "settings", "ceip_enabled"),
]
DOT = {"new_vcsa": "new.vcsa", "deployment_network": "deployment.network", "thin_disk_mode": "thin.disk.mode",
       "deployment_option": "deployment.option", "ssh_enable": "ssh.enable", "temporary_network": "temporary.network",
       "ip_family": "ip.family", "dns_servers": "dns.servers", "user_options": "user-options",
       "vcdb_migrateSet": "vcdb.migrateSet", "source_vc": "source.vc", "managing_esxi_or_vc": "managing.esxi.or.vc",
       "vc_vcsa": "vc.vcsa", "root_password": "root.password", "ceip_enabled": "ceip.enabled"}


@pytest.mark.parametrize("target", ["6.5 U1", "6.7 U1"])
@pytest.mark.parametrize("path", REQUIRED_67, ids=lambda p: "/".join(p))
def test_validate_template_names_each_missing_field(inv60, target, path):
    t = build_upgrade_template(inv60, inv60.node("v1"), V(target))
    dotted = target.startswith("6.5")
    p = [DOT.get(k, k) if dotted else k for k in path]
    cur = t
    for k in p[:-1]:
        cur = cur[k]
    del cur[p[-1]]
    errors = validate_template(t)
    assert any(e.startswith(".".join(p) + ":") for e in errors), errors


@pytest.mark.parametrize("path,value,expect", [
    (("new_vcsa", "appliance", "deployment_option"), "huge", "deployment_option: invalid"),
    (("new_vcsa", "appliance", "name"), "a/b", "appliance.name: invalid"),
    (("new_vcsa", "temporary_network", "ip"), "10.0.0.300", "temporary_network.ip: invalid"),
    (("new_vcsa", "temporary_network", "prefix"), "40", "temporary_network.prefix: invalid"),
    (("new_vcsa", "temporary_network", "mode"), "auto", "temporary_network.mode: invalid"),
    (("new_vcsa", "os", "ssh_enable"), "no", "ssh_enable: invalid"),
    (("new_vcsa", "user_options", "vcdb_migrateSet"), "everything", "vcdb_migrateSet: invalid"),
    (("source_vc", "vc_vcsa", "port"), 70000, "vc_vcsa.port: invalid"),
])
def test_validate_template_catches_wrong_values(inv, path, value, expect):
    t = build_upgrade_template(inv, inv.node("v2"), V("6.7 U1"))
    cur = t
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    assert any(expect in e for e in validate_template(t)), validate_template(t)


def test_validate_template_unknown_version():
    assert validate_template({"__version": "9.9.9"})[0].startswith("__version:")
    assert validate_template([]) == ["<root>: the template must be a JSON object"]


def test_dhcp_temporary_network_needs_no_address():
    inv = loads_inventory(INV60.replace("temporary_network: {ip: 10.0.0.50, prefix: 24, gateway: 10.0.0.1, "
                                      "dns_servers: [10.0.0.2, 10.0.0.3]}", "temporary_network: {mode: dhcp}"))
    t = build_upgrade_template(inv, inv.node("v1"), V("6.5 U1"))
    assert t["new.vcsa"]["temporary.network"] == {"ip.family": "ipv4", "mode": "dhcp"}
    assert validate_template(t) == []


def test_missing_target_placement_is_reported():
    inv = loads_inventory(INV60.replace(" target: DC0_C0,", ""))
    t = build_upgrade_template(inv, inv.node("p1"), V("6.5 U1"))
    assert validate_template(t) == ["new.vcsa.vc.target: missing"]


def test_refusals_name_the_field(inv60):
    with pytest.raises(TemplateError, match="7.0"):
        build_upgrade_template(inv60, inv60.node("v1"), V("7.0 U1"))
    no_vm = loads_inventory(INV60.replace("psc: p1,\n      vm: {vcenter: mgmt-vc, name: v1},", "psc: p1,"))
    with pytest.raises(TemplateError, match="'vm"):
        build_upgrade_template(no_vm, no_vm.node("v1"), V("6.5 U1"))
    no_root = loads_inventory(INV60.replace("  root: {user: root, password_env: T_ROOT}\n", ""))
    with pytest.raises(TemplateError, match="credentials 'root'"):
        build_upgrade_template(no_root, no_root.node("p1"), V("6.5 U1"))


def test_67_installer_does_not_take_a_55_source():
    inv = loads_inventory(INV.replace("@P@", "5.5 U3").replace("@V2@", "5.5 U3")
                          .replace('version: "6.0 U3", psc: p1', 'version: "5.5 U3", psc: p1'))
    with pytest.raises(TemplateError, match="5.5"):
        build_upgrade_template(inv, inv.node("p1"), V("6.7 U1"))

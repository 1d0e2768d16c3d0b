"""Inventory loading: every bad file in tests/core/bad/ is refused (exit 2) naming file, line and field."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.inventory import load_inventory, loads_inventory
from orchestrator.core.versions import Version
from orchestrator.errors import InputError

BAD = Path(__file__).parent / "bad"
REPO = Path(__file__).resolve().parents[2]

# file (in bad/, without the "inventory-" prefix), field named in the error, message fragment, line (None:
# the error has no line, e.g. an empty file), rule ("" when the error is not a seed rule).
CASES = [
    ("unknown-role", "role", "unknown role 'hypervisor'", 31, ""),
    ("duplicate-name", "name", "duplicate node name 'vc-a'", 30, ""),
    ("duplicate-host", "host", "already used by node 'vc-a'", 33, ""),
    ("psc-missing", "psc", "not a PSC of this domain", 35, ""),
    ("psc-is-vcenter", "psc", "a vCenter, not a PSC", 35, ""),
    ("psc-other-site", "psc", "of site 'site-a'", 35, "same-site-psc"),
    ("site-without-psc", "psc", "vCenter in site 'site-c'", 42, "same-site-psc"),
    ("bad-version", "version", "not a vCenter/PSC version", 21, ""),
    ("bad-build", "build", "not a build number", 23, ""),
    ("unknown-release", "version", "6.6 U1 is not a known", 21, ""),
    ("password-in-node", "password", "plaintext secret", 30, ""),
    ("password-in-credentials", "password", "plaintext secret", 8, ""),
    ("credential-env-and-file", "password_env", "exactly one of", 7, ""),
    ("missing-sso", "sso", "credentials must include 'sso'", 5, ""),
    ("embedded-in-external", "embedded_psc", "cannot be part of an external-PSC domain", 36,
     "external-psc-topology"),
    ("http-remote", "scheme", "only allowed for the loopback lab", 30, ""),
    ("bad-scheme", "scheme", "got 'ftp'", 30, ""),
    ("bad-port", "port", "TCP port", 17, ""),
    ("unknown-field", "colour", "unknown field 'colour'", 17, ""),
    ("undeclared-site", "site", "'site-z' is not declared", 32, ""),
    ("vm-not-management", "vm", "not a declared management vCenter", 36, ""),
    ("file-backup-no-location", "location", "needs a 'location'", 18, ""),
    ("nfs-wrong-type", "location_type", "location_type must be one of", 17, ""),
    ("external-backup-no-verify", "verify", "'external' backup needs", 31, ""),
    ("malformed-yaml", None, "not valid YAML", 30, ""),
    ("empty", None, "inventory is empty", None, ""),
    ("vcenter-newer-than-psc", "version", "newer than its PSC 'psc-b'", 34, "vcenter-not-newer-than-psc"),
    ("duplicate-key", "version", "duplicate key 'version'", 17, ""),
    ("psc-with-psc", "psc", "a PSC does not point at a PSC", 22, ""),
    ("no-nodes", "nodes", "non-empty list", 10, ""),
]


def test_corpus_is_complete():
    files = {p.name for p in BAD.glob("inventory-*.yml")}
    assert files == {f"inventory-{c[0]}.yml" for c in CASES}
    assert len(CASES) >= 20


@pytest.mark.parametrize("name, field, fragment, line, rule", CASES, ids=[c[0] for c in CASES])
def test_bad_inventory(name, field, fragment, line, rule):
    path = BAD / f"inventory-{name}.yml"
    with pytest.raises(InputError) as info:
        load_inventory(path)
    err = info.value
    text = str(err)
    assert err.exit_code == 2
    assert str(path) in text
    assert fragment in text
    if line is not None:
        assert err.where.line == line, text
        assert f"{path}:{line}" in text
    if field is not None:
        assert f"'{field}'" in text, text
    assert err.rule == rule


def test_loads_the_same_errors_from_text():
    text = (BAD / "inventory-unknown-role.yml").read_text()
    with pytest.raises(InputError, match=r"x\.yml:31, node vc-b, field 'role'"):
        loads_inventory(text, "x.yml")


def test_missing_file():
    with pytest.raises(InputError, match="not found") as info:
        load_inventory(BAD / "no-such-inventory.yml")
    assert info.value.exit_code == 2


# ------------------------------------------------------------------ good inventories

def test_two_site_example():
    inv = load_inventory(REPO / "examples" / "two-site.yml")
    assert inv.domain == "vsphere.local" and inv.topology == "external-psc"
    assert inv.sites == ("site-a", "site-b")
    assert [n.name for n in inv.pscs] == ["psc-a", "psc-b"]
    assert [n.name for n in inv.vcenters] == ["vc-a", "vc-b"]
    vc = inv.node("vc-a")
    assert vc.psc == "psc-a" and vc.site == "site-a" and vc.version == Version(6, 7, 1, "", 10244745)
    assert vc.port == 443 and vc.sdk_port == 443 and vc.scheme == "https" and vc.platform == "appliance"
    assert vc.vm.vcenter == "mgmt-vc" and vc.backup.method == "file" and vc.backup.location_type == "SFTP"
    assert vc.backup.credentials == "backup"
    assert inv.credential("sso").password_env == "VCWAVE_SSO_PASSWORD"
    assert inv.management_vc("mgmt-vc").host == "mgmt-vc.corp.example"
    assert [n.name for n in inv.vcenters_of("psc-b")] == ["vc-b"]
    with pytest.raises(KeyError):
        inv.node("nope")


MINI = """\
domain: lab.local
credentials:
  sso: {{user: administrator@vsphere.local, password_file: /tmp/sso.secret}}
sites: [s1]
nodes:
  - {{name: psc-1, role: psc, site: s1, host: {host}, port: 8001, scheme: http, version: {version}}}
  - {{name: vc-1, role: vcenter, site: s1, host: {host}, port: 8002, sdk_port: 9002, scheme: http,
     version: {version}, psc: psc-1}}
"""


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "'::1'", "127.0.0.2"])
def test_http_allowed_on_loopback(host):
    inv = loads_inventory(MINI.format(host=host, version='"6.5 U1"'), "lab.yml")
    assert inv.topology == "external-psc"
    assert inv.node("psc-1").sdk_port == 8001 and inv.node("vc-1").sdk_port == 9002
    assert inv.node("vc-1").scheme == "http"


def test_version_fills_build_from_catalogue_and_accepts_yaml_numbers():
    inv = loads_inventory(MINI.format(host="127.0.0.1", version="6.5"), "lab.yml")
    assert inv.node("psc-1").version == Version(6, 5, 0, "", 4602587)
    assert inv.node("vc-1").version == Version(6, 5, 0, "", 4602587)


def test_examples_load():
    for p in sorted((REPO / "examples").glob("*.yml")):
        inv = load_inventory(p)
        assert inv.nodes


# ------------------------------------------------------------------ core bugs found while testing

def test_version_text_containing_build_is_blamed_on_version_field():
    """Regression: the field of a bad version was once chosen by `"build" in str(exc)`, and the message quotes
    the user's text, so `version: "6.7 build 10244745"` (no build key) was reported as field 'build'."""
    text = (REPO / "examples" / "two-site.yml").read_text().replace(
        'version: "6.7 U1"\n    build: 10244745\n    vm: {vcenter: mgmt-vc, name: psc-a}',
        'version: "6.7 build 10244745"\n    vm: {vcenter: mgmt-vc, name: psc-a}', 1)
    with pytest.raises(InputError) as info:
        loads_inventory(text, "x.yml")
    assert info.value.where.field == "version"


def test_build_of_another_release_is_refused():
    """`version: 6.5 U1` + `build: 8307201` (the 6.5 U2 build) contradict each other. Either may be the typo; a
    new user's was `version: 6.7` (unquoted, 'U1' left out) and the error blamed the build: it names the
    version field and says what the build is, so either fix is one edit."""
    text = MINI.format(host="127.0.0.1", version='"6.5 U1", build: 8307201')
    with pytest.raises(InputError) as info:
        loads_inventory(text, "x.yml")
    assert info.value.where.field == "version"
    assert "build 8307201 disagree: that build is 6.5 U2" in str(info.value) and '"6.5 U2"' in str(info.value)


@pytest.mark.parametrize("host, fragment", [
    ("bad host!!", "not a valid host name"),
    ("https://vc-a.corp.example", "is a URL"),
    ("vc-a.corp.example/ui", "is a URL"),
    ("vc-a.corp.example:443", "carries a port"),
    ("-vc.corp.example", "not a valid host name"),
    ("vc..corp.example", "not a valid host name"),
])
def test_bad_host_refused_with_line(host, fragment):
    text = (REPO / "examples" / "two-site.yml").read_text().replace("host: vc-b.corp.example", f"host: '{host}'")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.strip().startswith("host: '"))
    with pytest.raises(InputError, match=fragment) as ei:
        loads_inventory(text, "hosts.yml")
    assert (ei.value.where.node, ei.value.where.field, ei.value.where.line) == ("vc-b", "host", line)


@pytest.mark.parametrize("host", ["vc-b.corp.example", "VC-B.corp.example", "10.0.0.7", "::1", "[::1]",
                                  "vc-b.corp.example."])
def test_good_hosts_accepted(host):
    text = (REPO / "examples" / "two-site.yml").read_text().replace("host: vc-b.corp.example", f"host: '{host}'")
    assert loads_inventory(text, "hosts.yml").node("vc-b").host == host


def test_trailing_dot_duplicate_is_the_same_host():
    """'vc-a.corp.example.' is vc-a's host written as an absolute DNS name: one machine, two nodes."""
    text = (REPO / "examples" / "two-site.yml").read_text().replace("host: vc-b.corp.example",
                                                                    "host: VC-A.corp.example.")
    with pytest.raises(InputError, match="already used by node 'vc-a'"):
        loads_inventory(text, "hosts.yml")

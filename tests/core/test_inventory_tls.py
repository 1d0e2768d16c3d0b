"""`tls.thumbprint` per node and per management vCenter: read, normalized, refused when malformed, and handed
to both clients by `Connections`."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.connect import Connections
from orchestrator.core.inventory import load_inventory, loads_inventory
from orchestrator.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "single-site.yml"
PIN = ":".join(["5A"] * 32)


def _with_node_tls(tls: str) -> str:
    return EXAMPLE.read_text().replace("    host: vc-hq-1.corp.example\n",
                                       f"    host: vc-hq-1.corp.example\n    tls: {tls}\n")


def test_the_example_pins_its_management_vcenter_and_both_clients_get_the_pins(monkeypatch):
    inv = loads_inventory(_with_node_tls(f'{{thumbprint: "{PIN}"}}'), "inv.yml")
    assert inv.management_vc("mgmt-vc").thumbprint == load_inventory(EXAMPLE).management_vc("mgmt-vc").thumbprint
    assert inv.management_vc("mgmt-vc").thumbprint.startswith("3f8a11c2")
    assert inv.node("vc-hq-1").thumbprint == "5a" * 32 and inv.node("psc-hq").thumbprint is None
    monkeypatch.setenv("VCWAVE_SSO_PASSWORD", "Not-Used-9!")
    conns = Connections(inv)
    assert conns.appliance(inv.node("vc-hq-1"))._ctx.pin == "5a" * 32
    assert conns.vsphere(inv.node("vc-hq-1")).thumbprint == "5a" * 32
    assert conns.management("mgmt-vc").thumbprint == inv.management_vc("mgmt-vc").thumbprint


@pytest.mark.parametrize("tls,message", [
    ('{thumbprint: "12:34"}', "SHA-256 fingerprint"),
    ('{thumbprint: ""}', "thumbprint"),
    ('{sha1: "AB"}', "unknown field 'sha1'"),
    ('"AB:CD"', "'tls' must be a mapping"),
])
def test_bad_pins_are_refused_naming_the_node_and_field(tls: str, message: str):
    with pytest.raises(InputError, match=message) as e:
        loads_inventory(_with_node_tls(tls), "inv.yml")
    assert e.value.where.node == "vc-hq-1" and e.value.where.file == "inv.yml" and e.value.where.line

"""A route rehearsed hop by hop on one lab (`invoke rehearse --target "8.0 U3"`), as an administrator goes:
each hop planned, prechecked, backed up, upgraded, verified, backed up again and finalized, the next hop
planned from the inventory finalize wrote (no hand edit). The two-site domain goes 6.7 U1 -> 7.0 U3 (converge;
its PSCs decommissioned) -> 8.0 U3 (linked major); the seed's 6.0 U3 domain goes through 6.7 U3 first.

Needs the vcsim binary: FAILS when it is unavailable with CI=true, skipped otherwise. Full sweep only (40-70 s).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import require_vcsim

from lab.rehearse import rehearse

EX = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def vcsim_ok():
    return require_vcsim()


@pytest.mark.full
@pytest.mark.timeout(300)  # two or three whole hops, each a lab campaign of 20-40 s on a shared machine
@pytest.mark.parametrize("example, route", [
    ("two-site.yml", "6.7 U1 -> 7.0 U3 (converge) -> 8.0 U3 (linked-major)"),
    ("two-site-6.0.yml", "6.0 U3 -> 6.7 U3 (installer) -> 7.0 U3 (converge) -> 8.0 U3 (linked-major)"),
])
def test_every_hop_of_the_route_is_rehearsed_and_finalized_in_turn(vcsim_ok, tmp_path, example, route):
    out = rehearse(str(EX / example), "8.0 U3", workdir=str(tmp_path / "r"), say=lambda _: None)
    hops = route.count("(")
    assert f"(hop {hops} of {hops} to 8.0 U3)" in out and "outcome: upgraded" in out
    assert f"route: {route}; every hop rehearsed, each finalized before the next" in out
    assert "domain version now 8.0 U3;" in out
    for n in range(1, hops + 1):
        assert f"  hop {n} -> " in out
    for n in range(1, hops):  # every hop but the last finalized, the next planned from what it wrote
        assert ("finalize ok" if n == 1 else f"finalize (hop {n}) ok") in out
        assert f"plan (hop {n + 1}) ok" in out
    base = tmp_path / "r" / ("state" if hops == 2 else "hop2/state") / "vsphere.local" / "next-inventory.yml"
    converged = yaml.safe_load(base.read_text())  # what the converge hop's finalize wrote
    assert converged["topology"] == "embedded" and {n["role"] for n in converged["nodes"]} == {"vcenter"}

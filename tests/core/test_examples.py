"""Every inventory in examples/ loads and plans, for its natural target, with the default playbook."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core import interop
from orchestrator.core.inventory import load_inventory
from orchestrator.core.plan import build_plan, file_sha256
from orchestrator.core.playbook import load_playbook
from orchestrator.core.versions import parse_version

EX = Path(__file__).resolve().parents[2] / "examples"
NATURAL = {"two-site.yml": "6.7 U3", "two-site-6.0.yml": "6.5 U1", "single-site.yml": "6.7 U1",
           "large.yml": "6.7 U3", "linked-7.0.yml": "8.0 U3"}
FILES = sorted(p.name for p in EX.glob("*.yml"))


def natural_target(name: str, inv):
    if name in NATURAL:
        return parse_version(NATURAL[name])
    # a new example: the newest release every node reaches directly that keeps external PSCs
    from orchestrator.core.versions import catalogue
    ok = [r.version for r in catalogue().releases
          if interop.supports_external_psc(r.version)
          and all(interop.check_path(n.version, r.version).ok and r.version > n.version.without_build()
                  for n in inv.nodes)]
    assert ok, f"{name}: no natural target"
    return ok[-1]


def test_known_examples_exist():
    assert set(NATURAL) <= set(FILES)


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("playbook", ["default", "serial"])
def test_example_plans(name, playbook):
    inv = load_inventory(EX / name)
    target = natural_target(name, inv)
    plan = build_plan(inv, load_playbook(playbook), target, inventory_sha256=file_sha256(EX / name))
    ups = [s for s in plan.steps() if s.action == "upgrade"]
    assert sorted(s.node for s in ups) == sorted(n.name for n in inv.nodes)
    assert all(s.method in ("update", "installer") for s in ups)
    assert not plan.warnings, plan.warnings
    assert plan.plan_hash


def test_large_is_at_the_configuration_maximums():
    inv = load_inventory(EX / "large.yml")
    assert (len(inv.pscs), len(inv.vcenters), len(inv.sites)) == (10, 15, 3)
    assert {n.version.release for n in inv.nodes} == {"6.7 U1"}
    for site in inv.sites:
        assert 1 <= len([p for p in inv.pscs if p.site == site]) <= 4
    for p in inv.pscs:
        served = inv.vcenters_of(p.name)
        assert 1 <= len(served) <= 2 and all(v.site == p.site for v in served)
    assert all(n.vm and n.vm.vcenter == "mgmt-vc" and n.backup.method == "file" for n in inv.nodes)

"""finalize decided (pure): what a converge hop's finalize decommissions and through which vCenter, the live
rule that stops a decommission (a vCenter that points at the PSC, or does not answer), and the inventory of
the next hop written from the live versions (no hand edit between hops)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from orchestrator.core.campaign import domain_route
from orchestrator.core.finalize import address, decommission_blockers, plan_finalize, rollback_after_finalize
from orchestrator.core.history import fold
from orchestrator.core.inventory import load_inventory, loads_inventory
from orchestrator.core.next_inventory import next_inventory
from orchestrator.core.plan import build_plan
from orchestrator.core.playbook import load_playbook
from orchestrator.core.route import describe
from orchestrator.core.versions import parse_version
from orchestrator.errors import RefusedError

EX = Path(__file__).resolve().parents[2] / "examples"


def ev(seq: int, kind: str, status: str, node: str = "", step: str = "", action: str = "", **data):
    return SimpleNamespace(seq=seq, ts=float(seq), kind=kind, run_id="r", phase="", node=node, step=step,
                           action=action, status=status, data=data)


def converged_history(inv, verified: bool = True):
    """The journal of a finished converge hop: the window opened and closed, both vCenters at 7.0 U3."""
    events = [ev(1, "window", "opened")]
    for i, vc in enumerate(("vc-a", "vc-b")):
        events.append(ev(10 + i, "step", "succeeded", vc, f"vcenter/upgrade/{vc}", "upgrade", version_after="7.0 U3"))
        events.append(ev(20 + i, "source_appliance", "kept", vc, vm_name=vc, node_version="6.7 U1",
                         domain_version="6.7 U1+7.0 U3"))
        if verified:
            events.append(ev(30 + i, "step", "succeeded", vc, f"post/verify/{vc}", "verify"))
    events.append(ev(40, "window", "closed"))
    return fold(inv, events)


def test_a_converge_hop_decommissions_each_psc_through_a_vcenter_of_its_site_and_removes_the_sources():
    inv = load_inventory(EX / "two-site.yml")
    plan = build_plan(inv, load_playbook(), parse_version("7.0 U3"))
    work = plan_finalize(inv, plan, converged_history(inv))
    assert work.decommissions == (("psc-a", "vc-a"), ("psc-b", "vc-b"))
    assert [r.vm_name for r in work.removals] == ["vc-a", "vc-b"]


def test_a_psc_without_a_backup_that_can_work_is_refused_before_anything_changes(tmp_path):
    text = (EX / "two-site.yml").read_text()
    inv = loads_inventory(text.replace(
        '    backup: {method: file, location_type: SFTP, location: "sftp://backup.corp.example/vcwave/psc-b"}\n', "", 1),
        "two-site.yml")
    plan = build_plan(inv, load_playbook(), parse_version("7.0 U3"))
    with pytest.raises(RefusedError) as info:
        plan_finalize(inv, plan, converged_history(inv))
    assert info.value.rule == "finalize-psc-backup" and "psc-b: no backup declared" in str(info.value)


def test_a_converge_hop_is_not_finalized_before_every_vcenter_is_verified():
    inv = load_inventory(EX / "two-site.yml")
    plan = build_plan(inv, load_playbook(), parse_version("7.0 U3"))
    with pytest.raises(RefusedError) as info:
        plan_finalize(inv, plan, converged_history(inv, verified=False))
    assert info.value.rule == "finalize-unverified" and "vc-a, vc-b" in str(info.value)


@pytest.mark.parametrize("pointers, blocked", [
    ({"vc-a": "", "vc-b": "vc-b.corp.example"}, []),                      # embedded SSO; another node
    ({"vc-a": "psc-a.corp.example", "vc-b": ""}, ["vc-a still points at it"]),
    ({"vc-a": "", "vc-b": None}, ["vc-b does not answer (unknown: it may still point at the PSC)"]),
])
def test_a_psc_is_decommissioned_only_when_every_vcenter_answers_and_none_points_at_it(pointers, blocked):
    assert decommission_blockers(address("PSC-A.corp.example", 443), pointers) == blocked


def test_the_lab_names_nodes_by_address_and_port():
    assert address("127.0.0.1", 8443) == "127.0.0.1:8443" and address("Psc.Example", 443) == "psc.example"


def test_the_next_inventory_after_a_converge_is_embedded_linked_at_the_live_versions():
    raw = yaml.safe_load((EX / "two-site.yml").read_text())
    live = {"vc-a": ("7.0 U3", 18700403), "vc-b": ("7.0 U3", None)}
    nxt = next_inventory(raw, live, ["psc-a", "psc-b"])
    inv = loads_inventory(yaml.safe_dump(nxt), "next-inventory.yml")
    assert inv.topology == "embedded" and inv.pscs == ()
    assert {(n.name, n.version.release, n.embedded_psc, n.psc) for n in inv.nodes} == {
        ("vc-a", "7.0 U3", True, None), ("vc-b", "7.0 U3", True, None)}
    assert inv.node("vc-a").backup == load_inventory(EX / "two-site.yml").node("vc-a").backup
    assert describe(domain_route(inv, parse_version("8.0 U3"))) == "7.0 U3 -> 8.0 U3 (linked-major)"
    assert raw["nodes"][0]["name"] == "psc-a"  # the source is left as it was


def test_the_next_inventory_after_an_installer_hop_keeps_the_psc_topology():
    raw = yaml.safe_load((EX / "two-site-6.0.yml").read_text())
    live = {n["name"]: ("6.7 U3", None) for n in raw["nodes"]}
    inv = loads_inventory(yaml.safe_dump(next_inventory(raw, live, [])), "next-inventory.yml")
    assert inv.topology == "external-psc" and {n.version.release for n in inv.nodes} == {"6.7 U3"}
    assert describe(domain_route(inv, parse_version("8.0 U3"))) == "6.7 U3 -> 7.0 U3 (converge) -> 8.0 U3 (linked-major)"


def test_a_psc_decommissioned_by_an_interrupted_finalize_ends_the_rollback():
    """finalize stopped after psc-a left the SSO domain: no rollback would bring it back."""
    inv = load_inventory(EX / "two-site.yml")
    hist = fold(inv, [ev(1, "note", "finalize-decommissioned", "psc-a")])
    assert hist.finalized is None and hist.decommissioned == ("psc-a",)
    with pytest.raises(RefusedError) as info:
        rollback_after_finalize(hist)
    assert info.value.rule == "rollback-finalized" and "psc-a decommissioned" in str(info.value)

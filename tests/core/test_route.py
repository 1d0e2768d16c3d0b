"""Routes: the chain of hops to a target more than one upgrade away, from data; the campaign plan of hop 1."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.commands import plan as plan_cmd
from orchestrator.core import interop
from orchestrator.core.campaign import plan_campaign
from orchestrator.core.inventory import load_inventory
from orchestrator.core.plan import load_plan, save_plan
from orchestrator.core.playbook import load_playbook
from orchestrator.core.route import find_route
from orchestrator.core.versions import catalogue, parse_version
from orchestrator.errors import InputError, RefusedError

EX = Path(__file__).resolve().parents[2] / "examples"
V = parse_version


def hops(route):
    return [(h.source.release, h.target.release, h.kind) for h in route.hops]


def test_6_0_u3_domain_to_8_0_u3_is_three_hops_through_6_7_and_7_0():
    route = find_route(V("6.0 U3"), True, V("8.0 U3"))
    assert hops(route) == [("6.0 U3", "6.7 U3", "installer"), ("6.7 U3", "7.0 U3", "converge"),
                           ("7.0 U3", "8.0 U3", "linked-major")]
    assert [h.topology_after for h in route.hops] == ["external-psc", "embedded", "embedded"]
    assert [h.method for h in route.hops] == ["installer", "installer", "installer"]


@pytest.mark.parametrize("src, external, dst, expected", [
    ("6.7 U1", True, "6.7 U3", [("6.7 U1", "6.7 U3", "patch")]),
    ("6.7 U1", True, "7.0 U3", [("6.7 U1", "7.0 U3", "converge")]),
    ("5.5", True, "6.7 U3", [("5.5", "6.5 U3", "installer"), ("6.5 U3", "6.7 U3", "installer")]),
    ("7.0 U1", False, "8.0 U3", [("7.0 U1", "8.0 U3", "linked-major")]),
    ("7.0 U1", False, "7.0 U3", [("7.0 U1", "7.0 U3", "linked-patch")]),
    # an embedded 6.7 domain has nothing to converge: 8.0 is one direct hop away
    ("6.7 U1", False, "8.0 U3", [("6.7 U1", "8.0 U3", "linked-major")]),
])
def test_routes(src, external, dst, expected):
    assert hops(find_route(V(src), external, V(dst))) == expected


def test_an_intermediate_hop_lands_on_the_newest_update_not_released_after_the_next_hop():
    """To 7.0 GA (April 2020) through 6.7: 6.7 U3 (August 2019) is older, so it is the landing."""
    route = find_route(V("6.0 U3"), True, V("7.0"))
    assert hops(route) == [("6.0 U3", "6.7 U3", "installer"), ("6.7 U3", "7.0", "converge")]


def test_the_route_follows_the_data_not_code(monkeypatch):
    """Were 8.0 a line vcwave converges into, a 6.7 domain with external PSCs would reach 8.0 in one hop."""
    data = interop.interop_data()
    monkeypatch.setattr(interop, "interop_data", lambda: replace(data, converge_into=("7.0", "8.0")))
    assert hops(find_route(V("6.7 U1"), True, V("8.0 U3"))) == [("6.7 U1", "8.0 U3", "converge")]
    monkeypatch.setattr(interop, "interop_data", lambda: replace(data, converge_into=()))
    with pytest.raises(RefusedError, match="no upgrade route") as info:
        find_route(V("6.7 U1"), True, V("8.0 U3"))
    assert info.value.rule == "upgrade-path"


def test_every_route_between_catalogue_releases_is_a_chain_of_supported_direct_paths():
    """For every pair of releases and both topologies: a refusal, or hops that chain and each pass check_path."""
    releases = [r.version.without_build() for r in catalogue().releases]
    routes = 0
    for src in releases:
        for dst in releases:
            for external in (True, False):
                if dst <= src:
                    continue
                try:
                    route = find_route(src, external, dst)
                except RefusedError as exc:
                    assert exc.rule == "upgrade-path" and str(exc)
                    continue
                routes += 1
                assert route.hops[0].source == src and route.final == dst
                for a, b in zip(route.hops, route.hops[1:]):
                    assert a.target == b.source and a.topology_after == b.topology_before
                for h in route.hops:
                    assert interop.check_path(h.source, h.target).ok, (src, dst, h)
                    assert not (h.topology_after == "external-psc" and not interop.supports_external_psc(h.target))
    assert routes > 200


def test_unknown_release_is_refused():
    with pytest.raises(RefusedError, match="9.9"):
        find_route(V("6.7 U1"), True, V("9.9"))


# ---------------------------------------------------------------- the campaign plan (hop 1 saved)

def campaign(example: str, target: str):
    inv = load_inventory(EX / example)
    return plan_campaign(inv, load_playbook(), V(target))


def test_campaign_saves_hop_1_and_names_the_rest(tmp_path):
    plan = campaign("two-site-6.0.yml", "8.0 U3")
    assert plan.target == "6.7 U3"
    assert {s.to for s in plan.steps()} == {"6.7 U3"}
    route = plan.route
    assert route["final_target"] == "8.0 U3"
    assert [(h["from"], h["to"], h["kind"]) for h in route["hops"]] == [
        ("6.0 U3", "6.7 U3", "installer"), ("6.7 U3", "7.0 U3", "converge"), ("7.0 U3", "8.0 U3", "linked-major")]
    assert route["hops"][0]["window_estimate_min"] == plan.window_estimate_min
    # later hops: the vCenters one at a time, each an installer run and a verification (data/interop.yaml)
    d = interop.interop_data().durations_min
    assert route["hops"][2]["window_estimate_min"] == 2 * (d["installer_vcenter"] + d["verify"])
    assert "7.0 U3" in route["hops"][1]["order"] or "first_instance" in route["hops"][1]["order"]
    assert "run `invoke plan" in route["next"] and '"8.0 U3"' in route["next"]
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    assert load_plan(path) == plan
    data = json.loads(path.read_text())
    data["route"]["final_target"] = "8.0 U2"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="modified"):
        load_plan(path)


def test_one_hop_plans_keep_their_shape():
    plan = campaign("two-site.yml", "6.7 U3")
    assert plan.route == {} and "route" not in plan.to_json()


EMBEDDED_70 = """
domain: vsphere.local
topology: embedded
credentials:
  sso: {user: administrator@vsphere.local, password_env: VCWAVE_SSO_PASSWORD}
sites: [s1]
nodes:
  - {name: v1, role: vcenter, site: s1, host: v1.example, version: "7.0 U1", embedded_psc: true}
  - {name: v2, role: vcenter, site: s1, host: v2.example, version: "7.0 U1", embedded_psc: true}
"""


@pytest.mark.parametrize("target, method", [("7.0 U3", "update"), ("8.0 U3", "installer")])
def test_a_linked_hop_is_planned_one_vcenter_at_a_time_after_a_cold_snapshot_set(tmp_path, target, method):
    """Linked embedded hops (patches within 7.0, 7.0 -> 8.0): the method from version data, one vCenter at a
    time, and before the window a cold snapshot set of all linked vCenters plus a file backup of each."""
    inv = tmp_path / "embedded.yml"
    inv.write_text(EMBEDDED_70.replace("{name: v1,", "{name: v1, vm: {vcenter: m, name: v1},").replace(
        "{name: v2,", "{name: v2, vm: {vcenter: m, name: v2},") + "management:\n  - {name: m, host: m.example}\n")
    plan_cmd.run(str(inv), target, str(tmp_path / "plan.json"))
    plan = load_plan(tmp_path / "plan.json")
    upgrades = [s for s in plan.phase("vcenter").steps if s.action == "upgrade"]
    assert [(s.node, s.method) for s in upgrades] == [("v1", method), ("v2", method)]
    assert upgrades[0].batch != upgrades[1].batch  # one at a time
    pre = plan.phase("pre").steps
    assert {(s.node, s.method) for s in pre if s.action == "backup"} == {
        ("v1", "file"), ("v2", "file"), ("v1", "snapshot-set"), ("v2", "snapshot-set")}
    assert len({s.batch for s in pre if s.method == "snapshot-set"}) == 1  # taken together


def test_two_site_to_8_0_saves_the_converge_hop_and_names_the_linked_one(tmp_path):
    plan = campaign("two-site.yml", "8.0 U3")
    assert plan.target == "7.0 U3" and plan.phase("psc").steps == ()
    assert [(h["to"], h["kind"]) for h in plan.route["hops"]] == [("7.0 U3", "converge"), ("8.0 U3", "linked-major")]
    assert "next-inventory.yml" in plan.route["next"] and "the PSCs decommissioned" in plan.route["next"]


def test_plan_command_prints_the_route_and_json_carries_it(tmp_path):
    text = plan_cmd.run(str(EX / "two-site-6.0.yml"), "8.0 U3", str(tmp_path / "p.json"))
    assert "route to 8.0 U3: 3 hops" in text and "linked-major" in text and "for hop 2" in text
    data = json.loads(plan_cmd.run(str(EX / "two-site-6.0.yml"), "8.0 U3", str(tmp_path / "q.json"), as_json=True))
    assert data["target"] == "6.7 U3" and len(data["route"]["hops"]) == 3


def test_converged_vcenters_carry_sso_in_the_domain_version():
    from orchestrator.core.history import domain_version
    inv = load_inventory(EX / "two-site.yml")
    versions = {n.name: n.version for n in inv.nodes}
    assert domain_version(inv, versions) == "6.7 U1"
    versions["vc-a"] = V("7.0 U3")
    assert domain_version(inv, versions) == "6.7 U1+7.0 U3"


def test_after_a_converge_hop_status_names_the_decommission_then_the_next_hop():
    from orchestrator.core.history import fold
    from orchestrator.core.status import after_the_hop
    inv = load_inventory(EX / "two-site.yml")
    text = after_the_hop(inv, campaign("two-site.yml", "8.0 U3"), fold(inv, []))
    assert text.index("decommission the external PSCs psc-a, psc-b") < text.index("for hop 2")
    assert after_the_hop(inv, campaign("two-site.yml", "6.7 U3"), fold(inv, [])) == ""


def test_status_offers_finalize_while_sources_are_kept_and_says_when_it_is_done():
    from dataclasses import replace as dc_replace
    from orchestrator.core.history import Backup, fold
    from orchestrator.core.status import after_the_hop
    inv = load_inventory(EX / "two-site-6.0.yml")
    plan = campaign("two-site-6.0.yml", "6.5 U1")
    kept = dc_replace(fold(inv, []), backups=(Backup("vc-a", "source-appliance", "vc-a", "", "6.0 U3", "6.5 U1", 1.0),))
    assert "`invoke finalize`" in after_the_hop(inv, plan, kept) and "vc-a" in after_the_hop(inv, plan, kept)
    assert after_the_hop(inv, plan, dc_replace(kept, finalized=2.0)).startswith("finalized")


def test_concurrency_of_hop_1_does_not_refuse_a_later_converge_hop():
    inv = load_inventory(EX / "two-site-6.0.yml")
    plan = plan_campaign(inv, load_playbook(), V("8.0 U3"), concurrency=2)
    assert plan.target == "6.7 U3" and plan.route["hops"][1]["kind"] == "converge"

"""The planner: JSON shape, hashes, tamper detection, methods per scenario, concurrency and batching."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.core.inventory import load_inventory, loads_inventory
from orchestrator.core.plan import (
    build_plan,
    check_plan_matches,
    content_hash,
    file_sha256,
    load_plan,
    plan_from_json,
    save_plan,
)
from orchestrator.core.playbook import load_playbook, loads_playbook
from orchestrator.core.versions import parse_version
from orchestrator.errors import InputError, RefusedError

REPO = Path(__file__).resolve().parents[2]
EX = REPO / "examples"


def plan_for(inventory: Path, target: str, playbook: str | Path = "default", concurrency: int | None = None):
    inv = load_inventory(inventory)
    pb = load_playbook(playbook)
    return build_plan(inv, pb, parse_version(target), inventory_sha256=file_sha256(inventory),
                      playbook_sha256=file_sha256(pb.path), concurrency=concurrency)


def upgrades(plan, phase=None):
    return [s for s in plan.steps() if s.action == "upgrade" and (phase is None or s.phase == phase)]


# ------------------------------------------------------------------ shape and hashes

def test_json_shape():
    plan = plan_for(EX / "two-site.yml", "6.7 U3")
    data = json.loads(json.dumps(plan.to_json()))
    assert {"domain", "target", "plan_hash", "phases"} <= set(data)
    assert data["domain"] == "vsphere.local" and data["target"] == "6.7 U3"
    assert len(data["plan_hash"]) == 64
    assert [p["name"] for p in data["phases"]] == ["pre", "psc", "vcenter", "post"]
    for phase in data["phases"]:
        assert set(phase) == {"name", "steps"} and phase["steps"]
        for step in phase["steps"]:
            assert {"node", "role", "site", "action", "from", "to", "method"} <= set(step)
            assert step["phase"] == phase["name"]
    psc_up = [s for s in data["phases"][1]["steps"] if s["action"] == "upgrade"]
    assert [(s["node"], s["role"], s["site"], s["from"], s["to"], s["method"]) for s in psc_up] == [
        ("psc-a", "psc", "site-a", "6.7 U1", "6.7 U3", "update"),
        ("psc-b", "psc", "site-b", "6.7 U1", "6.7 U3", "update")]
    assert plan.inventory_sha256 == file_sha256(EX / "two-site.yml")
    assert plan.window_estimate_min > 0


def test_plan_hash_covers_the_body():
    plan = plan_for(EX / "two-site.yml", "6.7 U3")
    assert plan.plan_hash == content_hash(plan.body())


def test_save_load_round_trip(tmp_path):
    plan = plan_for(EX / "two-site.yml", "6.7 U3")
    path = tmp_path / "deep" / "plan.json"
    save_plan(plan, path)
    again = load_plan(path)
    assert again == plan and again.plan_hash == plan.plan_hash
    save_plan(again, tmp_path / "plan2.json")
    assert (tmp_path / "plan2.json").read_text() == path.read_text()
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("edit", [
    lambda d: d["phases"][1]["steps"][0].__setitem__("method", "manual"),
    lambda d: d["phases"][2]["steps"].pop(),
    lambda d: d["phases"][1]["steps"].reverse(),
    lambda d: d.__setitem__("target", "6.7 U2"),
    lambda d: d["phases"][0]["steps"][0].__setitem__("node", "vc-z"),
], ids=["method", "drop-step", "reorder", "target", "node"])
def test_tampered_plan_refused(tmp_path, edit):
    path = tmp_path / "plan.json"
    save_plan(plan_for(EX / "two-site.yml", "6.7 U3"), path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))
    with pytest.raises(InputError, match="modified after it was computed") as info:
        load_plan(path)
    assert info.value.exit_code == 2 and info.value.where.field == "plan_hash"


def test_bad_plan_files(tmp_path):
    p = tmp_path / "p.json"
    with pytest.raises(InputError, match="not found"):
        load_plan(p)
    p.write_text("{not json")
    with pytest.raises(InputError, match="not JSON"):
        load_plan(p)
    p.write_text("[]")
    with pytest.raises(InputError, match="not a vcwave plan"):
        load_plan(p)
    data = plan_for(EX / "two-site.yml", "6.7 U3").to_json()
    data["format"] = 99
    with pytest.raises(InputError, match="format"):
        plan_from_json(data, "p.json")


def test_check_plan_matches_refuses_after_the_inventory_changed(tmp_path):
    inv_path = tmp_path / "inv.yml"
    shutil.copy(EX / "two-site.yml", inv_path)
    plan = plan_for(inv_path, "6.7 U3")
    check_plan_matches(plan, file_sha256(inv_path), "vsphere.local")  # unchanged: fine
    inv_path.write_text(inv_path.read_text() + "# a comment is a change too\n")
    with pytest.raises(InputError, match="inventory changed") as info:
        check_plan_matches(plan, file_sha256(inv_path), "vsphere.local")
    assert info.value.exit_code == 2
    with pytest.raises(InputError, match="domain"):
        check_plan_matches(plan, plan.inventory_sha256, "other.local")


def test_plan_hash_changes_with_the_inventory(tmp_path):
    inv_path = tmp_path / "inv.yml"
    shutil.copy(EX / "two-site.yml", inv_path)
    a = plan_for(inv_path, "6.7 U3")
    inv_path.write_text(inv_path.read_text() + "# edited\n")
    assert plan_for(inv_path, "6.7 U3").plan_hash != a.plan_hash
    assert plan_for(EX / "two-site.yml", "6.7 U2").plan_hash != plan_for(EX / "two-site.yml", "6.7 U3").plan_hash


# ------------------------------------------------------------------ methods per scenario

def test_two_site_patch_uses_the_update_api():
    plan = plan_for(EX / "two-site.yml", "6.7 U3")
    assert {s.method for s in upgrades(plan)} == {"update"}
    assert [s.node for s in upgrades(plan, "psc")] == ["psc-a", "psc-b"]
    assert {s.method for s in plan.steps() if s.action == "backup"} == {"file"}
    assert {s.node for s in plan.steps() if s.action == "stage"} == {"psc-a", "psc-b", "vc-a", "vc-b"}
    assert not plan.warnings


def test_seed_scenario_6_0_to_6_5_u1_installer_and_snapshot_set():
    plan = plan_for(EX / "two-site-6.0.yml", "6.5 U1")
    assert {s.method for s in upgrades(plan)} == {"installer"}
    assert {s.method for s in plan.steps() if s.action == "backup" and s.phase == "pre"} == {"snapshot-set"}
    assert not [s for s in plan.steps() if s.action == "stage"]  # nothing to stage for the installer
    assert {(s.from_, s.to) for s in upgrades(plan)} == {("6.0 U3", "6.5 U1")}


def test_6_5_domain_to_6_7_u1_installer():
    plan = plan_for(EX / "single-site.yml", "6.7 U1")
    assert {s.method for s in upgrades(plan)} == {"installer"}
    assert [s.node for s in upgrades(plan)] == ["psc-hq", "vc-hq-1", "vc-hq-2"]


def test_6_0_domain_to_6_5_ga_is_back_in_time():
    with pytest.raises(RefusedError, match="back in time") as info:
        plan_for(EX / "two-site-6.0.yml", "6.5")
    assert info.value.rule == "upgrade-path" and info.value.exit_code == 2
    assert "psc-a" in str(info.value) and "vc-b" in str(info.value)


@pytest.mark.parametrize("example", ["two-site.yml", "large.yml"])
def test_8_0_target_with_external_pscs_refused_in_one_hop(example):
    """vcwave converges into 7.0 only (data/interop.yaml converge_into): a direct 8.0 plan is refused."""
    with pytest.raises(RefusedError) as info:
        plan_for(EX / example, "8.0 U3")
    assert info.value.rule == "no-external-psc-in-target" and info.value.exit_code == 2


@pytest.mark.parametrize("example", ["two-site.yml", "large.yml"])
def test_7_0_target_with_external_pscs_plans_a_converge(example):
    """No PSC step; the vCenters one per batch, site by site, the first with first_instance and each next
    with a partner already converged (same site first); a cold snapshot set of all nodes before; the PSCs
    are left out of the post phase (decommissioned later)."""
    inv = load_inventory(EX / example)
    plan = plan_for(EX / example, "7.0 U3")
    assert plan.phase("psc").steps == ()
    ups = upgrades(plan, "vcenter")
    assert [s.batch for s in ups] == list(range(len(inv.vcenters)))
    assert {s.method for s in ups} == {"installer"} and len(ups) == len(inv.vcenters)
    assert "first_instance" in ups[0].reason
    converged = {ups[0].node}
    sites = {vc.name: vc.site for vc in inv.vcenters}
    for s in ups[1:]:
        partner = s.reason.split("replication partner ")[1].split(",")[0]
        assert partner in converged
        same_site = [v for v in converged if sites[v] == sites[s.node]]
        assert (sites[partner] == sites[s.node]) == bool(same_site)
        converged.add(s.node)
    cold = [s for s in plan.phase("pre").steps if s.method == "snapshot-set"]
    assert {s.node for s in cold} == {n.name for n in inv.nodes} and len({s.batch for s in cold}) == 1
    assert not any(s.role == "psc" for s in plan.phase("post").steps)
    assert "one vCenter at a time" in plan.concurrency_rule
    with pytest.raises(RefusedError) as info:
        plan_for(EX / example, "7.0 U3", concurrency=2)
    assert info.value.rule == "vcenters-one-at-a-time"
    assert not any("KB 313886" in w for w in plan.warnings)


def test_a_converge_warns_when_a_node_cannot_join_the_cold_snapshot_set():
    text = (EX / "two-site.yml").read_text().replace("    vm: {vcenter: mgmt-vc, name: psc-b}\n", "", 1)
    inv = loads_inventory(text, "no-vm.yml")
    plan = build_plan(inv, load_playbook(), parse_version("7.0 U3"))
    assert any("psc-b" in w and "KB 313886" in w for w in plan.warnings)
    assert "psc-b" not in {s.node for s in plan.phase("pre").steps if s.method == "snapshot-set"}


def test_downgrade_target_refused():
    with pytest.raises(RefusedError, match="downgrade"):
        plan_for(EX / "two-site.yml", "6.7")


def test_nfs_on_6_7_u1_gives_a_warning():
    text = (EX / "two-site.yml").read_text().replace("location_type: SFTP", "location_type: NFS", 1)
    inv = loads_inventory(text, "nfs.yml")
    plan = build_plan(inv, load_playbook(), parse_version("6.7 U3"))
    assert len(plan.warnings) == 1 and plan.warnings[0].startswith("psc-a:") and "6.7 U2" in plan.warnings[0]


# ------------------------------------------------------------------ concurrency and batching

def vc_batches(plan):
    return [sorted({s.node for s in steps if s.action == "upgrade"})
            for _, steps in plan.phase("vcenter").batches() if any(s.action == "upgrade" for s in steps)]


def test_per_psc_groups_run_side_by_side_on_large():
    """Default: one vCenter batch; the rule names the 10 PSC groups (every PSC serves 1-2 vCenters)."""
    plan = plan_for(EX / "large.yml", "6.7 U3")
    inv = load_inventory(EX / "large.yml")
    assert vc_batches(plan) == [sorted(n.name for n in inv.vcenters)]
    assert plan.concurrency_rule.startswith("per-psc:") and "10 groups" in plan.concurrency_rule
    assert "side by side" in plan.concurrency_rule


def test_per_psc_in_turn_is_one_batch_per_psc_group():
    pb_text = Path(load_playbook().path).read_text().replace("serial: per-psc", "serial: per-psc-in-turn")
    inv = load_inventory(EX / "large.yml")
    plan = build_plan(inv, loads_playbook(pb_text, "p.yml"), parse_version("6.7 U3"))
    batches = vc_batches(plan)
    assert len(batches) == 10
    for b in batches:
        assert len({inv.node(n).psc for n in b}) == 1
        assert sorted(n.name for n in inv.vcenters_of(inv.node(b[0]).psc)) == b
    assert sorted(n for b in batches for n in b) == sorted(n.name for n in inv.vcenters)
    assert plan.concurrency_rule.startswith("per-psc-in-turn:") and "one after another" in plan.concurrency_rule
    assert plan.window_estimate_min > plan_for(EX / "large.yml", "6.7 U3").window_estimate_min


def test_psc_wave_is_one_per_batch_in_site_order():
    plan = plan_for(EX / "large.yml", "6.7 U3", concurrency=5)
    psc_batches = [sorted({s.node for s in steps}) for _, steps in plan.phase("psc").batches()]
    assert all(len(b) == 1 for b in psc_batches)
    assert [b[0] for b in psc_batches] == ["psc-a1", "psc-a2", "psc-a3", "psc-a4", "psc-b1", "psc-b2", "psc-b3",
                                           "psc-c1", "psc-c2", "psc-c3"]


@pytest.mark.parametrize("concurrency, sizes", [(1, [1] * 15), (4, [4, 4, 4, 3]), (15, [15]), (100, [15])])
def test_concurrency_overrides_serial(concurrency, sizes):
    plan = plan_for(EX / "large.yml", "6.7 U3", concurrency=concurrency)
    assert [len(b) for b in vc_batches(plan)] == sizes
    assert plan.concurrency_rule.startswith(f"--concurrency {concurrency}")


@pytest.mark.parametrize("concurrency", [0, -1])
def test_bad_concurrency(concurrency):
    with pytest.raises(InputError, match="--concurrency") as info:
        plan_for(EX / "two-site.yml", "6.7 U3", concurrency=concurrency)
    assert info.value.exit_code == 2


def test_serial_playbook_one_vcenter_at_a_time_with_backups_in_lane():
    plan = plan_for(EX / "two-site.yml", "6.7 U3", playbook="serial")
    assert [len(b) for b in vc_batches(plan)] == [1, 1]
    lane = [s.action for s in plan.phase("psc").steps if s.node == "psc-a"]
    assert lane == ["backup", "stage", "upgrade", "verify"]
    assert plan.window_estimate_min > plan_for(EX / "two-site.yml", "6.7 U3").window_estimate_min


def test_backup_first_takes_backups_of_every_node_in_the_upgraded_domain():
    plan = plan_for(EX / "two-site.yml", "6.7 U3")
    first_batch = plan.phase("vcenter").batches()[0][1]
    assert {s.node for s in first_batch} == {"psc-a", "psc-b", "vc-a", "vc-b"}
    assert {(s.action, s.tag) for s in first_batch} == {("backup", "during")}
    assert {s.from_ for s in first_batch if s.role == "psc"} == {"6.7 U3"}


def test_serial_zero_is_all_at_once():
    text = load_playbook().path
    pb_text = Path(text).read_text().replace("serial: per-psc", "serial: 0")
    plan = build_plan(load_inventory(EX / "large.yml"), loads_playbook(pb_text, "p.yml"), parse_version("6.7 U3"))
    assert [len(b) for b in vc_batches(plan)] == [15]


# ------------------------------------------------------------------ core bugs found while testing

def test_backup_first_with_a_backup_task_is_refused_so_step_ids_stay_unique():
    """`backup_first: true` AND a 'backup' task in the vcenter play would back up twice under the same step
    id; the playbook loader refuses it, naming the field."""
    with pytest.raises(InputError) as err:
        loads_playbook(
            "- {phase: pre, hosts: all, tasks: [precheck, backup]}\n"
            "- {phase: psc, hosts: psc, tasks: [upgrade, verify]}\n"
            "- {phase: vcenter, hosts: vcenter, backup_first: true, tasks: [backup, upgrade, verify]}\n", "p.yml")
    assert err.value.exit_code == 2 and "backup_first" in str(err.value)


def test_step_ids_are_unique_for_every_example_and_playbook():
    for ex in sorted(EX.glob("*.yml")):
        inv = load_inventory(ex)
        for pb in ("default", "serial"):
            target = {"6.0": "6.5 U1", "6.5": "6.7 U1", "7.0": "8.0 U3"}.get(
                f"{inv.nodes[0].version.major}.{inv.nodes[0].version.minor}", "6.7 U3")
            ids = [s.id for s in build_plan(inv, load_playbook(pb), parse_version(target)).steps()]
            assert len(ids) == len(set(ids)), (ex.name, pb)


EMBEDDED = """\
domain: emb.local
topology: embedded
credentials:
  sso: {user: administrator@vsphere.local, password_env: VCWAVE_SSO_PASSWORD}
sites: [s1]
nodes:
  - {name: vc1, role: vcenter, site: s1, host: vc1.corp.example, version: "6.7 U1", embedded_psc: true}
  - {name: vc2, role: vcenter, site: s1, host: vc2.corp.example, version: "6.7 U1", embedded_psc: true}
"""


def test_embedded_topology_per_psc_plans_every_vcenter_upgrade():
    """Regression: vCenters with an embedded PSC (psc None) each form their own per-psc group, so an
    `topology: embedded` inventory still upgrades every vCenter."""
    plan = build_plan(loads_inventory(EMBEDDED, "emb.yml"), load_playbook(), parse_version("6.7 U3"))
    assert sorted(s.node for s in upgrades(plan, "vcenter")) == ["vc1", "vc2"]


def test_a_domain_beyond_vmwares_maximums_is_planned_with_a_warning(tmp_path):
    """Seven PSCs in one site: unsupported before and after; the plan says so (it does not refuse: the
    administrator's domain already runs that way, and the upgrade does not make it worse)."""
    text = (EX / "large.yml").read_text().replace("site: site-b", "site: site-a")
    inv = loads_inventory(text, "big.yml")
    plan = build_plan(inv, load_playbook(), parse_version("6.7 U3"))
    assert any("site site-a has 7 PSCs" in w and "unsupported" in w for w in plan.warnings), plan.warnings
    assert not any("maximum" in w or "at most" in w
                   for w in plan_for(EX / "large.yml", "6.7 U3").warnings)


def test_same_version_target_says_nothing_to_do():
    """Every node already at the target: no plan of no-op steps (it would open and close a window)."""
    with pytest.raises(InputError, match="nothing to do: every node of vsphere.local already runs 6.7 U1") as ei:
        plan_for(EX / "two-site.yml", "6.7 U1")
    assert ei.value.where.field == "--target"


def test_partly_at_target_is_still_planned():
    """Some nodes at the target (a domain half-way through): the others are planned, nothing is refused."""
    text = (EX / "two-site.yml").read_text().replace('version: "6.7 U1"\n    build: 10244745',
                                                           'version: "6.7 U3"', 1)
    inv = loads_inventory(text, "half.yml")
    plan = build_plan(inv, load_playbook("default"), parse_version("6.7 U3"))
    assert [s.node for s in upgrades(plan) if s.method != "none"] == [n.name for n in inv.nodes][1:]

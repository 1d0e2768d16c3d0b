"""Status (pure): phase states, the next safe command for every state, the window clock, problems."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.history import fold
from orchestrator.core.inventory import load_inventory
from orchestrator.core.plan import build_plan
from orchestrator.core.playbook import load_playbook
from orchestrator.core.status import PHASE_COMMAND, compute_status, phase_states, render, window_info
from orchestrator.core.versions import parse_version
from tests.core.test_history import Script

REPO = Path(__file__).resolve().parents[2]
OLD, NEW = "6.0 U3", "6.5 U1"


@pytest.fixture(scope="module")
def inv():
    return load_inventory(REPO / "examples" / "two-site-6.0.yml")


@pytest.fixture(scope="module")
def plan(inv):
    return build_plan(inv, load_playbook("default"), parse_version(NEW))


def states_until(plan, done_phases: tuple[str, ...], partial: str = "", failed: str = "") -> dict[str, str]:
    out = {}
    for ph in plan.phases:
        if ph.name in done_phases:
            out.update({s.id: "succeeded" for s in ph.steps})
    if partial:
        out[plan.phase(partial).steps[0].id] = "succeeded"
    if failed:
        out[plan.phase(failed).steps[0].id] = "succeeded"
        out[plan.phase(failed).steps[-1].id] = "failed"
    return out


def status(inv, plan, s: Script | None = None, states=None, now=5000.0):
    return compute_status(inv, plan, fold(inv, (s or Script()).events), states or {}, now)


@pytest.mark.parametrize("done, partial, failed, phases, nxt", [
    ((), "", "", {"pre": "pending", "psc": "pending", "vcenter": "pending", "post": "pending"},
     "invoke precheck && invoke backup --phase pre && invoke stage"),
    ((), "pre", "", {"pre": "partial"}, "invoke precheck && invoke backup --phase pre && invoke stage"),
    (("pre",), "", "", {"pre": "done", "psc": "pending"}, PHASE_COMMAND["psc"]),
    (("pre",), "psc", "", {"psc": "partial"}, "invoke upgrade --wave psc"),
    (("pre", "psc"), "", "", {"psc": "done", "vcenter": "pending"}, "invoke upgrade --wave vcenter"),
    (("pre", "psc", "vcenter"), "", "", {"vcenter": "done", "post": "pending"},
     "invoke verify && invoke backup --phase post"),
    (("pre", "psc", "vcenter", "post"), "", "", {"post": "done"}, "nothing: every phase is done"),
])
def test_next_safe_command_per_phase_state(inv, plan, done, partial, failed, phases, nxt):
    st = status(inv, plan, states=states_until(plan, done, partial, failed))
    assert st.next_command == nxt
    for k, v in phases.items():
        assert st.phases[k] == v
    assert f"next safe command: {nxt}" in render(st)


@pytest.mark.parametrize("wave", ["psc", "vcenter"])
def test_failed_wave_says_rerun_or_rollback_plan(inv, plan, wave):
    done = ("pre",) if wave == "psc" else ("pre", "psc")
    st = status(inv, plan, states=states_until(plan, done, failed=wave))
    assert st.phases[wave] == "failed"
    assert f"re-run `invoke upgrade --wave {wave}`" in st.next_command
    assert "invoke rollback --plan-only" in st.next_command


def test_skipped_steps_count_as_done(inv, plan):
    states = {s.id: "skipped" for s in plan.phase("pre").steps}
    assert phase_states(plan, states)["pre"] == "done"


def test_window_not_opened(inv):
    assert window_info(fold(inv, []), 99.0) == {"state": "not opened", "length_s": 0.0}


def test_window_open_length_runs_with_the_clock(inv, plan):
    s = Script().window("opened")  # ts 1001
    st = status(inv, plan, s, now=1001.0 + 125.5)
    assert st.window["state"] == "OPEN" and st.window["length_s"] == 125.5 and st.window["closed"] is None
    assert "mixed-version window: OPEN, 2.1 min" in render(st)


def test_window_closed_length_is_fixed(inv, plan):
    s = Script().window("opened").upgrade("psc-a", NEW).window("closed")  # 1001 .. 1004
    st = status(inv, plan, s, now=99999.0)
    assert st.window == {"state": "closed", "opened": 1001.0, "closed": 1004.0, "length_s": 3.0}


def test_node_upgraded_twice_is_a_problem(inv, plan):
    s = Script().upgrade("vc-a", NEW, "vcenter").upgrade("vc-a", NEW, "vcenter").upgrade("vc-b", NEW, "vcenter")
    st = status(inv, plan, s)
    assert st.problems == ("vc-a was upgraded 2 times (expected once)",)
    assert "problem: vc-a was upgraded 2 times (expected once)" in render(st)
    nodes = {n["node"]: n for n in st.nodes}
    assert nodes["vc-a"]["upgrades"] == 2 and nodes["vc-b"]["upgrades"] == 1


def test_no_problem_when_each_node_upgraded_once(inv, plan):
    s = Script()
    for n in ("psc-a", "psc-b", "vc-a", "vc-b"):
        s.upgrade(n, NEW)
    assert status(inv, plan, s).problems == ()


def test_nodes_show_version_and_usable_backup(inv, plan):
    s = Script()
    for n in ("psc-a", "psc-b", "vc-a", "vc-b"):
        s.backup(n, "external", "pre", OLD, OLD, bid=f"pre-{n}")
    s.window("opened").upgrade("psc-a", NEW, "psc").verify("psc-a", "psc").upgrade("psc-b", NEW, "psc")
    st = status(inv, plan, s)
    nodes = {n["node"]: n for n in st.nodes}
    assert st.domain_version == NEW and st.target == NEW and st.domain == "vsphere.local"
    assert nodes["psc-a"]["version"] == NEW and nodes["psc-a"]["verified_at"] == NEW
    assert nodes["vc-a"]["version"] == OLD and nodes["vc-a"]["single_restore"] is None
    assert "whole-domain rollback" in nodes["vc-a"]["backups"][0]["reason"]
    text = render(st)
    assert "backup usable alone: NONE — taken at domain 6.0 U3, domain is now 6.5 U1" in text
    js = st.to_json()
    assert js["domain_version"] == NEW and len(js["nodes"]) == 4


def test_mixed_domain_version_shown_during_psc_wave(inv, plan):
    s = Script().window("opened").upgrade("psc-a", NEW, "psc")
    st = status(inv, plan, s)
    assert st.domain_version == "6.0 U3+6.5 U1"
    assert st.summary == "mixed — PSCs 6.0 U3 ×1, 6.5 U1 ×1 (1/2 at target), vCenters 6.0 U3 (0/2 at target)"
    assert render(st).startswith(f"domain vsphere.local: {st.summary}; target 6.5 U1")

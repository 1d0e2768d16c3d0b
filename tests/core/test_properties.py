"""Properties of the planner over generated domains and playbooks (see strategies.py)."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import examples

from orchestrator.core import interop, rules
from orchestrator.core.inventory import loads_inventory
from orchestrator.core.plan import build_plan, content_hash, plan_from_json
from orchestrator.core.playbook import loads_playbook
from orchestrator.errors import InputError, RefusedError

from .strategies import RELEASES, SOURCES, domains, playbooks, reachable

FAST = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _plan(dom, gpb):
    inv = loads_inventory(dom.text, "gen-inventory.yml")
    pb = loads_playbook(gpb.text, "gen-playbook.yml")
    return inv, build_plan(inv, pb, dom.target, inventory_sha256="x" * 64, concurrency=gpb.concurrency)


def test_strategy_space_is_not_empty():
    assert SOURCES and all(reachable(s) for s in SOURCES)
    assert {s.release for s in SOURCES} >= {"6.0 U3", "6.5 U1", "6.7 U1"}


@FAST
@given(domains(), playbooks())
def test_no_vcenter_upgraded_while_a_psc_is_below_target(dom, gpb):
    inv, plan = _plan(dom, gpb)
    versions = {n.name: n.version.without_build() for n in inv.nodes}
    psc_of = dict(dom.psc_of)
    target = dom.target.without_build()
    for step in plan.steps():
        if step.action != "upgrade":
            continue
        if step.role == "vcenter":
            behind = {p: versions[p] for p in dom.pscs}
            assert rules.vcenter_wave_may_start(behind, target), (step.node, behind)
        versions[step.node] = target
        for vc, psc in psc_of.items():  # never a vCenter newer than its PSC, at any point
            assert versions[vc] <= versions[psc], (step.id, vc, psc)
    assert set(versions.values()) == {target}


@FAST
@given(domains(), playbooks())
def test_every_node_upgraded_exactly_once_in_its_wave(dom, gpb):
    inv, plan = _plan(dom, gpb)
    ups = [s for s in plan.steps() if s.action == "upgrade"]
    assert sorted(s.node for s in ups if s.phase == "psc") == sorted(dom.pscs)
    assert sorted(s.node for s in ups if s.phase == "vcenter") == sorted(dom.vcenters)
    assert all(s.role == s.phase for s in ups)
    for s in ups:
        node = inv.node(s.node)
        assert s.method == interop.upgrade_method(node.version, dom.target, node.platform).method
        assert (s.from_, s.to, s.site) == (dom.source.release, dom.target.release, node.site)


@FAST
@given(domains(), playbooks())
def test_every_node_backed_up_before_its_upgrade(dom, gpb):
    _, plan = _plan(dom, gpb)
    steps = list(plan.steps())
    for name in dom.pscs + dom.vcenters:
        up = next(i for i, s in enumerate(steps) if s.node == name and s.action == "upgrade")
        assert any(s.node == name and s.action == "backup" for s in steps[:up]), name


@FAST
@given(domains(), playbooks())
def test_batches(dom, gpb):
    _, plan = _plan(dom, gpb)
    for _, steps in plan.phase("psc").batches():
        assert len({s.node for s in steps}) == 1
    psc_of = dict(dom.psc_of)
    serial = gpb.concurrency if gpb.concurrency is not None else gpb.vc_serial
    vc_batches = [{s.node for s in steps if s.action == "upgrade"} for _, steps in plan.phase("vcenter").batches()]
    vc_batches = [b for b in vc_batches if b]
    for b in vc_batches:
        if serial == "per-psc":
            assert len(vc_batches) == 1  # the PSC groups side by side
        elif serial == "per-psc-in-turn":
            assert len({psc_of[n] for n in b}) == 1
            assert b == {vc for vc, p in dom.psc_of if p == psc_of[next(iter(b))]}
        elif serial == 0:
            assert len(vc_batches) == 1
        else:
            assert len(b) <= serial
    batch_numbers = [s.batch for s in plan.phase("vcenter").steps]
    assert batch_numbers == sorted(batch_numbers)


@FAST
@given(domains(), playbooks())
def test_plan_hash_stable_and_planning_deterministic(dom, gpb):
    _, a = _plan(dom, gpb)
    _, b = _plan(dom, gpb)
    assert a.plan_hash == b.plan_hash == content_hash(a.body())
    assert json.dumps(a.to_json(), sort_keys=True) == json.dumps(b.to_json(), sort_keys=True)
    ids = [s.id for s in a.steps()]
    assert len(ids) == len(set(ids))
    assert plan_from_json(json.loads(json.dumps(a.to_json())), "p.json") == a


@FAST
@given(domains(max_sites=2, max_pscs=2, max_vcs=2), st.data())
def test_unreachable_targets_refused(dom, data):
    bad = [t for t in RELEASES if t.without_build() != dom.source.without_build() and t not in reachable(dom.source)]
    target = data.draw(st.sampled_from(bad))
    inv = loads_inventory(dom.text, "gen.yml")
    pb = loads_playbook(data.draw(playbooks()).text, "p.yml")
    with pytest.raises(RefusedError) as info:
        build_plan(inv, pb, target)
    assert info.value.exit_code == 2
    assert info.value.rule in ("upgrade-path", "no-external-psc-in-target")


@FAST
@given(playbooks(), st.integers(2, 9) | st.just(0) | st.just("per-psc") | st.just("per-psc-in-turn"))
def test_concurrent_psc_wave_always_refused(gpb, serial):
    text = gpb.text.replace("phase: psc\n  hosts: psc\n  serial: 1\n", f"phase: psc\n  hosts: psc\n  serial: {serial}\n")
    with pytest.raises(InputError) as info:
        loads_playbook(text, "p.yml")
    assert info.value.rule == "psc-one-at-a-time"

"""The seed's rules, one function each: allowed and refused cases, and refusals that say why."""
from __future__ import annotations

import pytest

from orchestrator.core import rules
from orchestrator.core.versions import parse_version as V


# ------------------------------------------------------------------ repoint

def test_repoint_same_site_same_version_allowed():
    v = rules.repoint_allowed(V("6.5 U1"), "site-a", V("6.5 U1", 5973321), "site-a")
    assert v and v.ok and v.rule == "repoint-same-site-same-version"


def test_repoint_other_site_refused():
    v = rules.repoint_allowed(V("6.5 U1"), "site-a", V("6.5 U1"), "site-b")
    assert not v and v.rule == "repoint-same-site"
    assert "site-a" in v.reason and "site-b" in v.reason


def test_repoint_seed_scenario_6_0_vcenter_on_6_5_psc_refused():
    """The seed: a 6.0 vCenter on an upgraded 6.5 PSC that fails cannot be repointed: restore or redeploy."""
    v = rules.repoint_allowed(V("6.0 U3"), "site-a", V("6.5 U1"), "site-a")
    assert not v and v.rule == "repoint-same-version"
    assert "6.0 U3" in v.reason and "6.5 U1" in v.reason and "restore or redeploy" in v.reason


@pytest.mark.parametrize("vc, psc", [("6.7 U1", "6.7 U3"), ("6.7 U3", "6.7 U1"), ("6.5", "6.5 U1")])
def test_repoint_other_update_refused(vc, psc):
    assert rules.repoint_allowed(V(vc), "s", V(psc), "s").rule == "repoint-same-version"


def test_repoint_target_down_refused():
    v = rules.repoint_allowed(V("6.7 U3"), "s", V("6.7 U3"), "s", psc_up=False)
    assert not v and v.rule == "repoint-target-up"


def test_repoint_site_is_checked_before_version():
    assert rules.repoint_allowed(V("6.0"), "a", V("6.5"), "b").rule == "repoint-same-site"


# ------------------------------------------------------------------ vcenter wave

def test_vcenter_wave_waits_for_every_psc_naming_it():
    pscs = {"psc-a": V("6.7 U3"), "psc-b": V("6.7 U1"), "psc-c": V("6.7 U3"), "psc-d": V("6.7 U2")}
    v = rules.vcenter_wave_may_start(pscs, V("6.7 U3"))
    assert not v and v.rule == "pscs-first"
    assert "psc-b, psc-d" in v.reason and "psc-a" not in v.reason
    assert "site by site is not supported" in v.reason


def test_vcenter_wave_may_start_when_all_at_target_or_newer():
    assert rules.vcenter_wave_may_start({"a": V("6.7 U3", 14367737), "b": V("7.0")}, V("6.7 U3"))
    assert rules.vcenter_wave_may_start({}, V("6.7 U3"))


def test_vcenter_wave_ignores_builds():
    assert rules.vcenter_wave_may_start({"a": V("6.7 U3", 1)}, V("6.7 U3", 14367737))


# ------------------------------------------------------------------ vcenter vs psc

def test_vcenter_not_newer_than_psc():
    assert rules.vcenter_not_newer_than_psc(V("6.5 U1"), V("6.5 U1"))
    assert rules.vcenter_not_newer_than_psc(V("6.0 U3"), V("6.5 U1"))
    v = rules.vcenter_not_newer_than_psc(V("6.7 U1"), V("6.5 U2"), "vc-a", "psc-a")
    assert not v and v.rule == "vcenter-not-newer-than-psc"
    assert "vc-a" in v.reason and "psc-a" in v.reason


# ------------------------------------------------------------------ mixed states

SRC, TGT = V("6.0 U3"), V("6.5 U1")
VC_PSC = {"vc-a": "psc-a", "vc-b": "psc-b"}


@pytest.mark.parametrize("pscs, vcs", [
    ({"psc-a": SRC, "psc-b": SRC}, {"vc-a": SRC, "vc-b": SRC}),      # before
    ({"psc-a": TGT, "psc-b": SRC}, {"vc-a": SRC, "vc-b": SRC}),      # psc wave half way
    ({"psc-a": TGT, "psc-b": TGT}, {"vc-a": TGT, "vc-b": SRC}),      # vcenter wave half way
    ({"psc-a": TGT, "psc-b": TGT}, {"vc-a": TGT, "vc-b": TGT}),      # done
])
def test_mixed_states_allowed(pscs, vcs):
    assert rules.mixed_state_allowed(pscs, vcs, VC_PSC, SRC, TGT)


def test_mixed_state_vcenter_ahead_of_its_psc_refused():
    v = rules.mixed_state_allowed({"psc-a": TGT, "psc-b": SRC}, {"vc-a": SRC, "vc-b": TGT}, VC_PSC, SRC, TGT)
    assert not v and v.rule == "vcenter-not-newer-than-psc" and "vc-b" in v.reason


def test_mixed_state_third_version_refused():
    v = rules.mixed_state_allowed({"psc-a": V("6.5"), "psc-b": SRC}, {"vc-a": SRC, "vc-b": SRC}, VC_PSC, SRC, TGT)
    assert not v and v.rule == "transition-versions" and "psc-a" in v.reason


def test_is_mixed():
    assert not rules.is_mixed([V("6.5 U1", 1), V("6.5 U1", 2)])
    assert rules.is_mixed([V("6.5 U1"), V("6.0 U3")])
    assert not rules.is_mixed([])


# ------------------------------------------------------------------ order, concurrency, 7.0

def test_wave_order():
    assert rules.wave_order_allowed([("psc", "p1"), ("psc", "p2"), ("vcenter", "v1"), ("vcenter", "v2")])
    assert rules.wave_order_allowed([])
    v = rules.wave_order_allowed([("psc", "p1"), ("vcenter", "v1"), ("psc", "p2")])
    assert not v and v.rule == "pscs-first" and "v1" in v.reason and "p2" in v.reason


@pytest.mark.parametrize("serial, ok", [(1, True), (0, False), (2, False), (-1, False)])
def test_psc_concurrency(serial, ok):
    v = rules.psc_concurrency_allowed(serial)
    assert bool(v) is ok and v.rule == "psc-one-at-a-time"
    if not ok:
        assert "Concurrent upgrades of Platform Services Controller" in v.reason


def test_7_0_target_with_external_pscs_refused():
    v = rules.external_psc_target_allowed(True, False, V("7.0"))
    assert not v and v.rule == "no-external-psc-in-target" and "converge" in v.reason
    assert rules.external_psc_target_allowed(False, False, V("7.0"))
    assert rules.external_psc_target_allowed(True, True, V("6.7 U3"))


# ---------------------------------------------------------------- configuration maximums
MAXIMA = {"psc_per_domain": 10, "vcenter_per_domain": 15, "psc_per_site": 4}


def test_large_example_is_at_the_maximums_not_beyond():
    assert rules.within_configuration_maximums({"a": 4, "b": 3, "c": 3}, 15, MAXIMA) == []


@pytest.mark.parametrize("per_site, vcenters, fragments", [
    ({"a": 4, "b": 4, "c": 3}, 15, ["11 external PSCs", "at most 10"]),
    ({"a": 4}, 16, ["16 vCenters", "at most 15"]),
    ({"a": 5, "b": 1}, 2, ["site a has 5 PSCs", "at most 4 per site"]),
])
def test_beyond_a_maximum_is_named(per_site, vcenters, fragments):
    verdicts = rules.within_configuration_maximums(per_site, vcenters, MAXIMA)
    assert len(verdicts) == 1 and not verdicts[0] and verdicts[0].rule == "configuration-maximums"
    for f in fragments:
        assert f in verdicts[0].reason


def test_the_shipped_maximums_are_vmwares():
    from orchestrator.core.interop import interop_data
    assert interop_data().configuration_maximums == MAXIMA

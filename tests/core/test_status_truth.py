"""Status tells what is true of the domain, not what the journal remembers (pure, from fixtures): the next
command on a domain already at the target with no journal, the version line by role with silent nodes
"unknown", and the failover hint from live answers only."""
from __future__ import annotations

import pytest

from orchestrator.core.history import fold
from orchestrator.core.live import fold_live
from orchestrator.core.status import compute_status, render
from tests.core.test_history import Script
from tests.core.test_live import ALL_AFTER_PSC, NODES, NEW, OLD, after_psc_wave, inv, plan, seen  # noqa: F401
from tests.core.test_repoint import _plan_obj, inv as inv_two_pscs_per_site

ALL_DONE = ("pre", "psc", "vcenter", "post")


def _status(inv, plan, script, observed, phases=()):  # noqa: F811
    hist = fold(inv, script.events)
    states = {s.id: "succeeded" for ph in plan.phases if ph.name in phases for s in ph.steps}
    return compute_status(inv, plan, hist, states, 5000.0, fold_live(inv, hist, observed) if observed else None)


def test_empty_journal_on_a_domain_live_at_the_target_says_nothing_to_do(inv, plan):  # noqa: F811
    st = _status(inv, plan, Script(), seen(dict.fromkeys(NODES, NEW)))
    assert st.next_command.startswith("nothing to do: every node answers at 6.7 U3; to go further")
    assert "invoke plan --target" in st.next_command and "precheck" not in st.next_command
    assert st.next_command.endswith("the inventory still declares another version for psc-a, psc-b, vc-a, vc-b: "
                                    'set `version: "6.7 U3"` there first')
    assert set(st.phases.values()) == {"not needed"}
    assert render(st).startswith("domain vsphere.local: 6.7 U3 on every node; target 6.7 U3")


def test_empty_journal_on_a_domain_at_its_source_still_starts_with_precheck(inv, plan):  # noqa: F811
    st = _status(inv, plan, Script(), seen(dict.fromkeys(NODES, OLD)))
    assert st.next_command == "invoke precheck && invoke backup --phase pre && invoke stage"


def test_empty_journal_with_a_silent_node_is_not_nothing_to_do(inv, plan):  # noqa: F811
    st = _status(inv, plan, Script(), seen(dict.fromkeys(NODES, NEW), {"vc-b": "connection refused"}))
    assert not st.next_command.startswith("nothing to do") and st.next_command.startswith("bring vc-b back")
    assert "unknown (vc-b)" in st.summary


def test_a_completed_run_says_the_domain_is_at_the_target(inv, plan):  # noqa: F811
    st = _status(inv, plan, after_psc_wave(), seen(dict.fromkeys(NODES, NEW)), ALL_DONE)
    assert st.next_command.startswith("nothing to do: every node answers at 6.7 U3")


def test_without_an_observation_a_completed_run_reads_from_the_journal(inv, plan):  # noqa: F811
    st = _status(inv, plan, after_psc_wave(), None, ALL_DONE)
    assert st.next_command == "nothing: every phase is done"


def test_a_manual_pause_reads_paused_not_failed(inv, plan):  # noqa: F811
    s = after_psc_wave().step("vc-a", "upgrade", "failed", "vcenter/upgrade/vc-a", "vcenter", manual=True)
    states = {"vcenter/upgrade/vc-a": "failed"}
    hist = fold(inv, s.events)
    st = compute_status(inv, plan, hist, states, 5000.0, fold_live(inv, hist, seen(ALL_AFTER_PSC)))
    assert st.phases["vcenter"] == "paused" and st.next_command.endswith("`invoke verify --node vc-a`")
    s.step("vc-b", "upgrade", "failed", "vcenter/upgrade/vc-b", "vcenter", error="install failed")
    hist = fold(inv, s.events)
    st = compute_status(inv, plan, hist, {**states, "vcenter/upgrade/vc-b": "failed"}, 5000.0)
    assert st.phases["vcenter"] == "failed"  # a real failure beside the pause is not hidden


def _rollback_started() -> Script:
    s = after_psc_wave()
    s.add("note", phase="rollback", status="rollback-plan", data={"scope": "domain", "to": "pre", "actions": []})
    for vc in ("vc-a", "vc-b"):
        s.step(vc, "rollback", "started", f"rb/01-stop/{vc}", "rollback")
        s.step(vc, "rollback", "succeeded", f"rb/01-stop/{vc}", "rollback")
    return s


def test_a_paused_rollback_is_resumed_by_rollback_not_by_bringing_its_stopped_vcenters_back(inv, plan):  # noqa: F811
    """The rollback powered the vCenters off and paused at psc-a's file restore (no fresh appliance yet)."""
    s = _rollback_started().step("psc-a", "rollback", "failed", "rb/03-restore/psc-a", "rollback", manual=True)
    st = _status(inv, plan, s, seen(ALL_AFTER_PSC, {"vc-a": "refused", "vc-b": "refused"}), ("pre", "psc"))
    assert st.next_command.startswith("the rollback is paused at psc-a:") and "bring" not in st.next_command
    assert st.next_command.endswith("then re-run `invoke rollback` (it resumes the same plan and asks every node "
                                    "first)")
    assert "invoke verify --node" not in st.next_command


def test_a_killed_rollback_is_resumed_by_rollback(inv, plan):  # noqa: F811
    s = _rollback_started().step("psc-a", "rollback", "started", "rb/03-restore/psc-a", "rollback")
    st = _status(inv, plan, s, seen(ALL_AFTER_PSC, {"vc-a": "refused", "vc-b": "refused"}), ("pre", "psc"))
    assert st.next_command.startswith("a domain rollback is not finished: re-run `invoke rollback`")


def test_a_rollback_stopped_at_a_silent_node_says_deploy_a_fresh_appliance(inv, plan):  # noqa: F811
    """psc-b's appliance is gone: its file restore failed with 'connection refused'; re-running alone would
    fail the same way."""
    s = _rollback_started().step("psc-b", "rollback", "failed", "rb/04-restore/psc-b", "rollback",
                                 error="restore.job: connection refused")
    st = _status(inv, plan, s, seen(ALL_AFTER_PSC, {"vc-a": "off", "vc-b": "off", "psc-b": "refused"}), ("pre", "psc"))
    assert st.next_command.startswith("the rollback stopped at psc-b, which does not answer")
    assert "fresh appliance in restore mode for psc-b (6.7 U1)" in st.next_command
    assert st.next_command.endswith("then re-run `invoke rollback` (it resumes the same plan and asks every node "
                                    "first)")


def test_a_rollback_stopped_at_an_answering_node_says_fix_then_resume(inv, plan):  # noqa: F811
    s = _rollback_started().step("psc-b", "rollback", "failed", "rb/04-restore/psc-b", "rollback", error="disk full")
    st = _status(inv, plan, s, seen(ALL_AFTER_PSC, {"vc-a": "off", "vc-b": "off"}), ("pre", "psc"))
    assert st.next_command.startswith("the rollback stopped at psc-b: fix what its failed step names, then re-run "
                                      "`invoke rollback`")


def test_a_finished_rollback_is_not_resumed(inv, plan):  # noqa: F811
    s = _rollback_started()
    s.add("note", phase="rollback", status="rollback-done", data={"scope": "domain", "to": "pre"})
    s.step("", "rollback", "succeeded", "rb", "rollback")
    for n in NODES:
        s.restore(n, OLD)
    st = _status(inv, plan, s, seen(dict.fromkeys(NODES, OLD)), ("pre", "psc"))
    assert st.next_command == "domain back at 6.7 U1; run `invoke plan` to try again"


# ------------------------------------------------------------------ the version line

def test_after_the_psc_wave_the_line_shows_vcenters_behind(inv, plan):  # noqa: F811
    st = _status(inv, plan, after_psc_wave(), seen(ALL_AFTER_PSC), ("pre", "psc"))
    assert st.summary == "mixed — PSCs 6.7 U3 (2/2 at target), vCenters 6.7 U1 (0/2 at target)"
    assert st.to_json()["versions"] == st.summary
    assert st.domain_version == "6.7 U3"  # the SSO domain's version is still given, by its name


def test_a_silent_psc_is_unknown_not_the_journals_version(inv, plan):  # noqa: F811
    st = _status(inv, plan, after_psc_wave(), seen(ALL_AFTER_PSC, {"psc-b": "connection refused"}),
                 ("pre", "psc"))
    assert st.summary.startswith("mixed — PSCs 6.7 U3 ×1, unknown (psc-b) (1/2 at target), vCenters 6.7 U1")
    assert {n["node"]: n["version"] for n in st.nodes}["psc-b"] == "unknown"


def test_every_node_silent_is_unknown_not_mixed(inv, plan):  # noqa: F811
    st = _status(inv, plan, Script(), seen(dict.fromkeys(NODES, OLD), dict.fromkeys(NODES, "refused")))
    assert st.summary.startswith("partly unknown — PSCs unknown (psc-a, psc-b) (0/2 at target)")


# ------------------------------------------------------------------ the failover hint, from live facts

SIX = ("psc-a1", "psc-a2", "psc-b1", "vc-a", "vc-b")


def _failover(observed, script=None):
    i = inv_two_pscs_per_site()
    st = _status(i, _plan_obj(i), script or Script(), observed)
    return {line.split(" -> ")[1].split(":")[0]: line for line in st.failover}


def test_failover_never_proposes_a_psc_that_does_not_answer():
    lines = _failover(seen(dict.fromkeys(SIX, "6.0 U3"), {"psc-a2": "connection refused"}))
    assert "repoint to psc-a2" not in lines["vc-a"]
    assert lines["vc-a"] == ("psc-a1 fails -> vc-a: no other PSC of 6.0 U3 answers in site site-a: restore or "
                             "redeploy psc-a1")


def test_failover_never_proposes_a_psc_at_another_live_version():
    """The journal has psc-a2 at 6.0 U3; live it runs 6.5 U1 (upgraded by hand): no repoint there."""
    lines = _failover(seen({**dict.fromkeys(SIX, "6.0 U3"), "psc-a2": "6.5 U1"}))
    assert "repoint to psc-a2" not in lines["vc-a"] and "restore or redeploy psc-a1" in lines["vc-a"]


def test_failover_proposes_an_answering_psc_of_the_same_site_and_live_version():
    lines = _failover(seen(dict.fromkeys(SIX, "6.0 U3")))
    assert lines["vc-a"] == "psc-a1 fails -> vc-a: repoint to psc-a2"


def test_failover_when_the_vcenters_psc_is_already_down():
    lines = _failover(seen(dict.fromkeys(SIX, "6.0 U3"), {"psc-a1": "connection refused"}))
    assert lines["vc-a"] == "psc-a1 does not answer now -> vc-a: repoint to psc-a2"


@pytest.mark.parametrize("silent", ["vc-a"])
def test_a_silent_vcenter_gets_no_proposal(silent):
    lines = _failover(seen(dict.fromkeys(SIX, "6.0 U3"), {silent: "connection refused"}))
    assert lines["vc-a"].endswith("vc-a does not answer: its version is unknown, so no PSC can be proposed until "
                                  "it answers")


def test_a_rollback_plan_with_file_restores_says_up_front_which_appliances_to_deploy():
    from orchestrator.core.rollback import RollbackAction, RollbackPlan, render
    acts = (RollbackAction(1, "vc-a", "vcenter", "stop", "power-off", "", "6.7 U3", "vCenters stop first"),
            RollbackAction(2, "psc-a", "psc", "restore", "file-restore", "b1", "6.7 U1", "PSCs first"),
            RollbackAction(3, "psc-b", "psc", "restore", "file-restore", "b2", "6.7 U1", "PSCs first"))
    text = render(RollbackPlan("domain", "pre", acts))
    assert ("a file restore runs only on a freshly deployed appliance in restore mode (psc-a (6.7 U1), psc-b (6.7 U1)): "
            "before the first, the rollback asks the domain and pauses once, naming every node that still needs one"
            ) in text
    assert "file restore" not in render(RollbackPlan("domain", "pre", acts[:1]))


def test_decommissioned_pscs_are_left_out_of_the_version_line_and_named(inv):  # noqa: F811
    from orchestrator.core.domain_line import domain_summary
    from orchestrator.core.versions import parse_version
    versions = {"psc-a": None, "psc-b": None, "vc-a": parse_version("7.0 U3"), "vc-b": parse_version("7.0 U3")}
    assert domain_summary(inv, versions, "7.0 U3", ("psc-b", "psc-a")) == \
        "7.0 U3 on every node; decommissioned: psc-a, psc-b"
    assert domain_summary(inv, versions, "7.0 U3").startswith("partly unknown — PSCs unknown (psc-a, psc-b)")

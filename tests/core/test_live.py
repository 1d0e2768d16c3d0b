"""Journal + observation -> DomainState (core/live.py), the live rules (core/rules.py), status from that state
and the saved plan checked again when applied (core/plan.py). Pure fixtures: no lab, no network."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core import rules
from orchestrator.core.history import fold
from orchestrator.core.inventory import load_inventory
from orchestrator.core.live import (NodeSeen, Observation, VmSeen, fold_live, identity_holder, installer_vm_names,
                                    journal_changes)
from orchestrator.core.plan import (build_plan, check_applied, content_hash, file_sha256, plan_from_json, save_plan,
                                    seed_rule_breaks)
from orchestrator.core.playbook import load_playbook
from orchestrator.core.status import compute_status, render
from orchestrator.core.versions import parse_version
from orchestrator.errors import InputError
from tests.core.test_history import Script

REPO = Path(__file__).resolve().parents[2]
OLD, NEW = "6.7 U1", "6.7 U3"
NODES = ("psc-a", "psc-b", "vc-a", "vc-b")


@pytest.fixture(scope="module")
def inv():
    return load_inventory(REPO / "examples" / "two-site.yml")


def planned(inv, concurrency=None):
    pb = load_playbook("default")
    return build_plan(inv, pb, parse_version(NEW), playbook_sha256=file_sha256(pb.path), concurrency=concurrency)


@pytest.fixture(scope="module")
def plan(inv):
    return planned(inv)


def after_psc_wave() -> Script:
    s = Script()
    for n in NODES:
        s.step(n, "precheck", "succeeded", f"pre/precheck/{n}", "pre")
        s.backup(n, "file", "pre", OLD, OLD)
    for p in ("psc-a", "psc-b"):
        s.upgrade(p, NEW, "psc").verify(p, "psc")
    return s


def seen(versions: dict[str, str], silent: dict[str, str] | None = None, ts: float = 5000.0) -> Observation:
    silent = silent or {}
    return Observation(ts, {n: NodeSeen(n, False, why) if n in silent else NodeSeen(n, True, "", parse_version(v))
                            for n, v in versions.items() for why in [silent.get(n, "")]})


ALL_AFTER_PSC = {"psc-a": NEW, "psc-b": NEW, "vc-a": OLD, "vc-b": OLD}


# ------------------------------------------------------------------ the fold

def test_live_and_journal_agree_no_disagreement(inv):
    st_ = fold_live(inv, fold(inv, after_psc_wave().events), seen(ALL_AFTER_PSC))
    assert st_.disagreements == () and st_.lost() == ()
    assert st_.nodes["psc-a"].version.release == NEW and st_.nodes["vc-a"].answering


def test_a_silent_node_is_unknown_and_the_disagreement_names_both_sides(inv):
    s = after_psc_wave().upgrade("vc-b", NEW, "vcenter").verify("vc-b", "vcenter")
    st_ = fold_live(inv, fold(inv, s.events), seen(ALL_AFTER_PSC, {"vc-b": "connection refused"}, ts=38520.0))
    vc_b = st_.nodes["vc-b"]
    assert vc_b.state == "unknown" and vc_b.version is None and vc_b.journal_version.release == NEW
    assert st_.lost() == ("vc-b",)
    (d,) = st_.disagreements
    assert str(d) == ("vc-b: journal says upgraded and verified at 6.7 U3; live: not answering "
                      "(connection refused) since 10:42 UTC")


def test_a_decommissioned_psc_is_silent_by_design_not_a_disagreement(inv):
    """After finalize decommissioned the PSCs, the report and `rollback --plan-only` listed them as 'journal
    says upgraded and verified; live: not answering' (a new user's audit record said two PSCs were lost)."""
    from dataclasses import replace

    hist = fold(inv, after_psc_wave().events)
    silent = seen(ALL_AFTER_PSC, {"psc-a": "connection refused", "psc-b": "connection refused"})
    assert {d.node for d in fold_live(inv, hist, silent).disagreements} == {"psc-a", "psc-b"}
    gone = fold_live(inv, replace(hist, decommissioned=("psc-a", "psc-b")), silent)
    assert gone.disagreements == () and gone.nodes["psc-a"].state == "unknown"


def test_live_version_wins_over_the_journal(inv):
    """The journal never saw psc-b move (a crash before the outcome was written); the node says 6.7 U3."""
    s = Script().upgrade("psc-b", NEW, "psc", status="started", started=False)
    st_ = fold_live(inv, fold(inv, s.events), seen({**dict.fromkeys(NODES, OLD), "psc-b": NEW}))
    assert st_.nodes["psc-b"].version.release == NEW and st_.nodes["psc-b"].journal_version.release == OLD
    assert [(d.node, d.field, d.live) for d in st_.disagreements] == [("psc-b", "version", "runs 6.7 U3")]


def test_with_no_journal_the_version_is_the_inventorys_word_not_the_journals(inv):
    """An empty state folder: nothing was journaled, so the disagreement must not claim the journal said it."""
    st_ = fold_live(inv, fold(inv, []), seen({**dict.fromkeys(NODES, OLD), "psc-a": NEW}))
    (d,) = st_.disagreements
    assert str(d).startswith("psc-a: journal says nothing yet (the inventory declares 6.7 U1); live: runs 6.7 U3")


def test_since_is_kept_from_the_first_journaled_disagreement(inv):
    hist = fold(inv, after_psc_wave().events)
    first = fold_live(inv, hist, seen(ALL_AFTER_PSC, {"vc-b": "connection refused"}, ts=100.0))
    new, resolved = journal_changes(first, [])
    assert [d.node for d in new] == ["vc-b"] and resolved == []
    journal = Script()
    journal.add("disagreement", node="vc-b", status="open", data={"field": "answering", "journal": new[0].journal,
                                                                  "live": new[0].live})
    later = fold_live(inv, hist, seen(ALL_AFTER_PSC, {"vc-b": "connection refused"}, ts=9000.0), journal.events)
    assert later.disagreements[0].since == journal.events[0].ts
    assert journal_changes(later, journal.events) == ([], [])  # unchanged: nothing journaled again
    back = fold_live(inv, hist, seen(ALL_AFTER_PSC, ts=9100.0), journal.events)
    assert journal_changes(back, journal.events) == ([], [("vc-b", "answering")])


def test_restore_mode_is_not_answering_and_says_why(inv):
    obs = seen(ALL_AFTER_PSC)
    obs = Observation(obs.ts, {**obs.nodes, "vc-a": NodeSeen("vc-a", False, "login refused", restore_mode=True)})
    st_ = fold_live(inv, fold(inv, after_psc_wave().events), obs)
    assert st_.nodes["vc-a"].state == "restore-mode" and st_.lost() == ("vc-a",)
    assert st_.disagreements[0].field == "restore-mode"


@pytest.mark.parametrize("powers, holder", [
    (("poweredOn", "poweredOff"), "source"), (("poweredOff", "poweredOn"), "new"),
    (("poweredOn", "poweredOn"), "both"), (("poweredOff", "absent"), "none"), (("unknown", "unknown"), ""),
])
def test_which_vm_holds_the_identity(powers, holder):
    assert identity_holder((VmSeen("psc-a", "source", powers[0]), VmSeen("psc-a-67", "new", powers[1]))) == holder


def test_installer_vm_names_come_from_the_journal():
    s = Script().step("psc-a", "upgrade", "started", "psc/upgrade/psc-a", "psc", new_vm="psc-a-65")
    s.add("source_appliance", node="psc-b", status="kept", data={"new_vm_name": "psc-b-65"})
    assert installer_vm_names(s.events) == {"psc-a": "psc-a-65", "psc-b": "psc-b-65"}


@given(st.dictionaries(st.sampled_from(NODES), st.sampled_from(["", "connection refused", "timed out"])))
def test_unknown_is_never_fine_and_never_not_done(silent):
    """Property: a node that does not answer has no live version, is lost, and has a disagreement."""
    inv_ = load_inventory(REPO / "examples" / "two-site.yml")
    silent = {k: v for k, v in silent.items() if v}
    st_ = fold_live(inv_, fold(inv_, after_psc_wave().events), seen(ALL_AFTER_PSC, silent))
    assert set(st_.lost()) == set(silent)
    assert all(st_.nodes[n].version is None for n in silent)
    assert {d.node for d in st_.disagreements if d.field == "answering"} == set(silent)


# ------------------------------------------------------------------ the live rules

def test_vcenter_install_refused_while_a_psc_it_depends_on_is_silent_or_behind():
    target = parse_version(NEW)
    deps = rules.pscs_a_vcenter_depends_on("psc-a1", "site-a", {"psc-a1": "site-a", "psc-a2": "site-a",
                                                                  "psc-b1": "site-b"})
    assert deps == ("psc-a1", "psc-a2")
    ok = rules.vcenter_install_allowed("vc-a", {p: (True, target) for p in deps}, target)
    assert ok
    down = rules.vcenter_install_allowed("vc-a", {"psc-a1": (False, None), "psc-a2": (True, target)}, target)
    assert not down and down.rule == "psc-answers-before-vcenter" and "psc-a1" in down.reason
    behind = rules.vcenter_install_allowed("vc-a", {"psc-a1": (True, parse_version(OLD))}, target)
    assert not behind and behind.rule == "pscs-first" and "psc-a1 (6.7 U1)" in behind.reason


def test_window_needs_a_recent_successful_precheck_of_every_node():
    now = 100 * 3600.0
    fresh = {n: ("succeeded", now - 3600) for n in NODES}
    assert rules.window_may_open(fresh, now)
    never = rules.window_may_open({**fresh, "vc-b": None}, now)
    assert not never and never.rule == "precheck-before-window" and "never prechecked: vc-b" in never.reason
    failed = rules.window_may_open({**fresh, "psc-a": ("failed", now)}, now)
    assert "last precheck failed: psc-a" in failed.reason
    old = rules.window_may_open({**fresh, "vc-a": ("succeeded", now - 30 * 3600)}, now)
    assert not old and "older than 24 h: vc-a (30 h)" in old.reason


def test_history_keeps_the_newest_precheck_per_node(inv):
    s = Script().step("vc-a", "precheck", "failed", "pre/precheck/vc-a", "pre")
    s.step("vc-a", "precheck", "succeeded", "pre/precheck/vc-a", "pre")
    assert fold(inv, s.events).prechecks["vc-a"] == ("succeeded", s.events[-1].ts)


# ------------------------------------------------------------------ status from the state

def _states(plan, phases):
    return {s.id: "succeeded" for ph in plan.phases if ph.name in phases for s in ph.steps}


def test_status_lost_vcenter_after_psc_wave_is_shown_first_and_no_vcenter_wave_is_proposed(inv, plan):
    hist = fold(inv, after_psc_wave().events)
    live = fold_live(inv, hist, seen(ALL_AFTER_PSC, {"vc-b": "connection refused"}))
    st_ = compute_status(inv, plan, hist, _states(plan, ("pre", "psc")), 5000.0, live)
    assert "upgrade --wave vcenter" not in st_.next_command
    assert st_.next_command.startswith("bring vc-b back") and "rollback --plan-only" in st_.next_command
    text = render(st_)
    assert text.splitlines()[1].startswith("problem: vc-b: journal says") and "not answering" in text
    assert {n["node"]: n["live"] for n in st_.nodes}["vc-b"] == "unknown"


def test_status_stale_lock_is_named_and_comes_first(inv, plan):
    hist = fold(inv, after_psc_wave().events)
    live = fold_live(inv, hist, seen(ALL_AFTER_PSC))
    st_ = compute_status(inv, plan, hist, {}, 5000.0, live, ("stale", "pid 42 on host h running 'upgrade'"))
    assert "--break-stale-lock" in st_.next_command and any(p.startswith("stale lock:") for p in st_.problems)


def test_status_after_a_crash_says_rerun_and_reconcile(inv, plan):
    s = after_psc_wave()
    s.step("vc-a", "upgrade", "started", "vcenter/upgrade/vc-a", "vcenter")
    hist = fold(inv, s.events)
    st_ = compute_status(inv, plan, hist, {}, 5000.0, fold_live(inv, hist, seen(ALL_AFTER_PSC)))
    assert st_.next_command.startswith("re-run `invoke upgrade --wave vcenter`")


def test_status_after_a_manual_pause_says_verify_the_node(inv, plan):
    s = after_psc_wave().step("vc-a", "upgrade", "failed", "vcenter/upgrade/vc-a", "vcenter", manual=True)
    hist = fold(inv, s.events)
    st_ = compute_status(inv, plan, hist, {}, 5000.0, fold_live(inv, hist, seen(ALL_AFTER_PSC)))
    assert st_.next_command.endswith("`invoke verify --node vc-a`")


def test_status_after_a_completed_rollback_says_plan_again(inv, plan):
    s = after_psc_wave()
    for p in ("psc-a", "psc-b"):
        s.restore(p, OLD)
    s.step("", "rollback", "succeeded", "rollback-domain", "rollback")
    hist = fold(inv, s.events)
    live = fold_live(inv, hist, seen(dict.fromkeys(NODES, OLD)))
    st_ = compute_status(inv, plan, hist, _states(plan, ("pre", "psc")), 5000.0, live)
    assert st_.next_command == "domain back at 6.7 U1; run `invoke plan` to try again"
    assert st_.whole_domain == ("pre",)
    # what the PSC wave did is undone: it no longer reads "psc done"; what never ran stays pending
    assert st_.phases["pre"] == "done" and st_.phases["psc"] == "rolled back" and st_.phases["vcenter"] == "pending"


# ------------------------------------------------------------------ the saved plan, applied

def _edited(plan, tmp_path, edit) -> tuple[object, str]:
    """Edit the saved JSON and re-hash it as anyone can (a plain SHA-256 of the body)."""
    f = tmp_path / "plan.json"
    save_plan(plan, f)
    data = json.loads(f.read_text())
    edit(data)
    data["plan_hash"] = content_hash({k: v for k, v in data.items() if k != "plan_hash"})
    f.write_text(json.dumps(data))
    return plan_from_json(data, str(f)), str(f)


def _check(inv, saved, f):
    pb = load_playbook("default")
    check_applied(saved, f, inv, pb, file_sha256(pb.path))


def test_the_plan_as_computed_is_applied(inv, plan, tmp_path):
    saved, f = _edited(plan, tmp_path, lambda d: None)
    assert seed_rule_breaks(saved) == []
    _check(inv, saved, f)


def test_every_psc_in_batch_0_is_refused_as_psc_one_at_a_time(inv, plan, tmp_path):
    def edit(d):
        for s in next(p for p in d["phases"] if p["name"] == "psc")["steps"]:
            s["batch"] = 0
    saved, f = _edited(plan, tmp_path, edit)
    with pytest.raises(InputError) as exc:
        _check(inv, saved, f)
    assert exc.value.rule == "psc-one-at-a-time" and exc.value.exit_code == 2 and f in str(exc.value)


def test_a_vcenter_moved_into_the_psc_wave_is_refused_as_pscs_before_vcenters(inv, plan, tmp_path):
    def edit(d):
        vc = next(p for p in d["phases"] if p["name"] == "vcenter")
        psc = next(p for p in d["phases"] if p["name"] == "psc")
        moved = [s for s in vc["steps"] if s["node"] == "vc-a" and s["action"] == "upgrade"]
        vc["steps"] = [s for s in vc["steps"] if s not in moved]
        psc["steps"] = [{**s, "phase": "psc", "batch": 0} for s in moved] + psc["steps"]
    saved, f = _edited(plan, tmp_path, edit)
    with pytest.raises(InputError) as exc:
        _check(inv, saved, f)
    assert exc.value.rule == "pscs-before-vcenters" and "vc-a" in str(exc.value)


def test_any_other_edit_is_refused_as_plan_as_computed(inv, plan, tmp_path):
    def edit(d):
        pre = next(p for p in d["phases"] if p["name"] == "pre")
        pre["steps"] = [s for s in pre["steps"] if s["action"] != "backup"]  # no backup before the window
    saved, f = _edited(plan, tmp_path, edit)
    with pytest.raises(InputError) as exc:
        _check(inv, saved, f)
    assert exc.value.rule == "plan-as-computed" and "is missing" in str(exc.value)


def test_a_plan_with_concurrency_is_rebuilt_with_it(inv, tmp_path):
    p3 = planned(inv, concurrency=1)
    saved, f = _edited(p3, tmp_path, lambda d: None)
    assert saved.concurrency == 1
    _check(inv, saved, f)
    assert replace(saved, concurrency=None).body() != saved.body()


def test_status_a_node_silent_during_its_interrupted_step_is_left_to_the_rerun(inv, plan):
    """Killed while psc-b reboots into its update: the re-run reconciles (and waits out the reboot); status
    does not send the administrator to 'bring psc-b back'."""
    s = after_psc_wave().step("psc-b", "upgrade", "started", "psc/upgrade/psc-b", "psc")
    hist = fold(inv, s.events)
    live = fold_live(inv, hist, seen(ALL_AFTER_PSC, {"psc-b": "HTTP 503: rebooting"}))
    st_ = compute_status(inv, plan, hist, {}, 5000.0, live)
    assert st_.next_command.startswith("re-run `invoke upgrade --wave psc`")
    assert any(p.startswith("psc-b: journal says") for p in st_.problems)


def test_a_wave_is_refused_while_a_node_it_touches_does_not_answer():
    v = rules.nodes_answer_before_change({"vc-b": "connection refused"})
    assert not v and v.rule == "node-answers-before-change" and "vc-b (connection refused)" in v.reason
    assert rules.nodes_answer_before_change({})

"""The report shows what went wrong beside the steps: outages with since/until, other disagreements, and
refusals with their rule, in report.md and report.html, scrubbed (pure, from journal events)."""
from __future__ import annotations

from orchestrator import scrub
from orchestrator.core.history import REFUSED
from orchestrator.engine.journal import Event
from orchestrator.report import build_report, render_html, render_markdown
from orchestrator.report.episodes import episodes

from . import BASE, inventory_and_plan
from .test_report import parse

SECRET = "Sup3r-S3cret-value"


def _events(plan_hash: str) -> list[Event]:
    def ev(seq, kind, node, status, phase="", **data):
        return Event(seq, BASE + seq * 60, kind, "r", plan_hash, phase, "", node, "", "", status, data)

    return [ev(1, "disagreement", "psc-a", "open", field="answering", journal="upgraded and verified at 6.7 U3",
               live="not answering (connection refused)"),
            ev(2, "disagreement", "psc-a", "open", field="answering", journal="upgraded and verified at 6.7 U3",
               live="not answering (connection refused)"),  # seen again: the same outage
            ev(3, "note", "vc-a", REFUSED, "vcenter", rule="vcenter-beside-silent-psc",
               reason=f"node vc-a: its PSC psc-a does not answer (seen with {SECRET})"),
            ev(4, "disagreement", "psc-a", "resolved", field="answering"),
            ev(5, "disagreement", "vc-b", "open", field="version", journal="at 6.7 U1", live="runs 6.7 U3"),
            ev(6, "disagreement", "vc-b", "open", field="answering", journal="at 6.7 U1", live="not answering")]


def _report():
    inv, plan = inventory_and_plan()
    scrub.register(SECRET)
    try:
        return build_report(inv, plan, _events(plan.plan_hash), head=(6, "cd" * 32), generated=BASE + 3600)
    finally:
        scrub.forget_all()


def test_an_outage_runs_from_the_first_silent_look_to_the_first_answering_one():
    r = _report()
    psc = [o for o in r.outages if o.node == "psc-a"]
    assert len(psc) == 1 and psc[0].since == BASE + 60 and psc[0].until == BASE + 240
    vcb = [o for o in r.outages if o.node == "vc-b"]
    assert len(vcb) == 1 and vcb[0].until is None  # still silent at the last look


def test_a_disagreement_that_is_not_an_outage_is_listed_apart():
    r = _report()
    assert [(d.node, d.field, d.live) for d in r.disagreements] == [("vc-b", "version", "runs 6.7 U3")]


def test_a_changed_live_answer_ends_one_episode_and_starts_another():
    inv, plan = inventory_and_plan()
    evs = [Event(i, BASE + i, "disagreement", "r", "", "", "", "psc-a", "", "", "open",
                 {"field": "answering", "journal": "at 6.7 U1", "live": live})
           for i, live in enumerate(["not answering (refused)", "not answering (503)"], 1)]
    eps = episodes(evs)
    assert [(x.live, x.since, x.until) for x in eps] == [("not answering (refused)", BASE + 1, BASE + 2),
                                                          ("not answering (503)", BASE + 2, None)]


def test_refusals_carry_the_rule_and_are_scrubbed():
    r = _report()
    assert len(r.refusals) == 1
    x = r.refusals[0]
    assert (x.command, x.rule, x.node) == ("vcenter", "vcenter-beside-silent-psc", "vc-a")
    assert SECRET not in x.reason and "***" in x.reason


def test_both_renderings_show_outages_disagreements_and_refusals():
    r = _report()
    md, html = render_markdown(r), render_html(r)
    for text in (md, html):
        assert SECRET not in text
    assert "## Outages" in md and "## Disagreements" in md and "## Refusals" in md
    assert "still at the last look" in md and "3 min" in md  # psc-a silent from 01:00 to 04:00 after BASE
    assert "vcenter-beside-silent-psc" in md
    text = " ".join(parse(html).text)
    for heading in ("Outages", "Disagreements", "Refusals"):
        assert heading in text
    assert "vcenter-beside-silent-psc" in text and "runs 6.7 U3" in text and "still at the last look" in text
    strips = [a for tag, a in parse(html).tags if tag == "rect" and a.get("class") == "outage"]
    assert sorted(a["data-node"] for a in strips) == ["psc-a", "vc-b"]  # drawn on the timeline too
    assert "the node did not answer: an outage" in text  # and named in the legend, for paper


def test_a_quiet_run_says_so_in_each_section():
    inv, plan = inventory_and_plan()
    md = render_markdown(build_report(inv, plan, [], head=(0, ""), generated=BASE))
    assert "No node was found not answering." in md and "No command was refused." in md


def test_an_outage_ends_when_a_step_that_asks_the_node_succeeds():
    """A rollback's last look is before it starts; its verify of psc-b proves psc-b answers again."""
    evs = [Event(1, BASE + 1, "disagreement", "r", "", "", "", "psc-b", "", "", "open",
                 {"field": "answering", "journal": "at 6.7 U3", "live": "not answering"}),
           Event(2, BASE + 2, "step", "r", "", "rollback", "", "psc-b", "rb/01-restore/psc-b", "rollback",
                 "succeeded", {}),  # a power-on or revert does not prove it answers
           Event(3, BASE + 9, "step", "r", "", "rollback", "", "psc-b", "rb/02-verify/psc-b", "verify",
                 "succeeded", {})]
    (ep,) = episodes(evs)
    assert (ep.since, ep.until, ep.ended_by) == (BASE + 1, BASE + 9, "verify succeeded")


def test_an_outage_a_verify_ended_is_no_longer_a_problem():
    """The rehearsal's rollback verified vc-b after the last look that found it silent: not a problem now."""
    inv, plan = inventory_and_plan()
    evs = [Event(1, BASE + 1, "disagreement", "r", "", "", "", "vc-b", "", "", "open",
                 {"field": "answering", "journal": "at 6.7 U1", "live": "not answering"}),
           Event(2, BASE + 9, "step", "r", "", "rollback", "", "vc-b", "rb/10-verify/vc-b", "verify", "succeeded", {})]
    r = build_report(inv, plan, evs, head=(2, ""), generated=BASE + 60)
    assert not [p for p in r.problems if "journal says" in p] and len(r.outages) == 1
    still = build_report(inv, plan, evs[:1], head=(1, ""), generated=BASE + 60)
    assert [p for p in still.problems if p.startswith("vc-b: journal says at 6.7 U1; live: not answering since ")]

"""One campaign at a time in a domain's journal (core/attempts.py), decided from fixtures: a new attempt after
a completed domain rollback or after another plan's finished campaign sees none of the old events, and another
plan is refused while a campaign that changed the domain is still open."""
from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.core.attempts import CAMPAIGN_KIND, scope


@dataclass
class E:
    seq: int
    kind: str
    status: str = ""
    plan_hash: str = "A"
    action: str = ""
    data: dict = field(default_factory=dict)


def journal(*specs: tuple) -> list[E]:
    return [E(i + 1, *spec) for i, spec in enumerate(specs)]


PRE = ("step", "succeeded", "A", "backup")
OPENED = ("window", "opened", "A")
UPGRADED = ("step", "succeeded", "A", "upgrade")
ROLLED_BACK = ("note", "rollback-done", "A", "", {"scope": "domain"})


def test_a_fresh_or_running_campaign_of_the_same_plan_sees_everything():
    assert scope([], "A", "precheck").floor == 0
    s = scope(journal(PRE, OPENED, UPGRADED), "A", "upgrade --wave vcenter")
    assert (s.floor, s.starts_new, s.refusal) == (0, False, "")


def test_after_a_domain_rollback_the_same_plan_starts_a_new_attempt_but_status_sees_the_rollback():
    events = journal(PRE, OPENED, UPGRADED, ROLLED_BACK)
    again = scope(events, "A", "backup --phase pre")
    assert again.floor == 4 and again.starts_new  # the old pre backups are not "already done"
    assert scope(events, "A", "status").floor == 0  # "domain back at 6.7 U1"
    assert scope(events, "A", "rollback").floor == 0  # a re-run of the rollback says it is done
    single = journal(PRE, OPENED, UPGRADED, ("note", "rollback-done", "A", "", {"scope": "psc-a"}))
    assert scope(single, "A", "upgrade --wave psc").floor == 0  # one node restored: the same attempt goes on


def test_a_new_campaign_event_is_the_floor():
    events = journal(PRE, OPENED, UPGRADED, ROLLED_BACK, (CAMPAIGN_KIND, "start", "A"), PRE)
    assert scope(events, "A", "upgrade --wave psc").floor == 5
    assert scope(events, "A", "status").floor == 5


def test_another_plan_after_a_finished_or_harmless_campaign_starts_afresh():
    for ending in (ROLLED_BACK, ("window", "closed", "A"), ("note", "finalized", "A")):
        s = scope(journal(PRE, OPENED, UPGRADED, ending), "B", "precheck")
        assert (s.floor, s.starts_new, s.refusal) == (4, True, "")
    s = scope(journal(PRE, ("precheck", "ok", "A")), "B", "status")  # A changed nothing: B starts clean
    assert (s.floor, s.refusal) == (2, "")


def test_another_plan_is_refused_while_a_campaign_that_changed_the_domain_is_open():
    for opened in ((OPENED,), (("step", "started", "A", "upgrade"),), (("step", "started", "A", "rollback"),)):
        s = scope(journal(PRE, *opened), "B", "backup --phase pre")
        assert s.refusal and "plan_hash A" in s.refusal and "rolled back" in s.refusal and s.floor == 0

"""Which part of a domain's journal belongs to the plan being applied: one campaign (attempt) at a time.

Why: the journal keeps a domain's whole history, and step ids repeat from one plan to the next. A new user
rolled a campaign back, planned again in the same state folder and ran it: `backup --phase pre` said
"8 already done" (the backups of the first attempt, gone from the reset lab), the new mixed-version window
was never opened nor measured, and status offered the old backups as the way back. So a campaign ends (a
completed whole-domain rollback, a closed window, a finalized hop), and what comes after it is a new one,
which sees only its own events. And a campaign that changed the domain and has not ended belongs to its
plan: another plan is refused until it is finished or rolled back, so its backups are never forgotten.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol

from orchestrator.core.history import FINALIZED

CAMPAIGN_KIND = "campaign"  # the journal event that starts a campaign (status "start", the plan's hash)
CHANGING_ACTIONS = frozenset({"upgrade", "rollback", "repoint", "finalize", "decommission"})


class EventLike(Protocol):
    seq: int
    kind: str
    status: str
    plan_hash: str
    action: str
    data: dict


@dataclass(frozen=True)
class Scope:
    """`floor`: the current campaign's events are those after this seq. `starts_new`: the command journals a
    campaign start (before its first event) if it journals anything. `refusal`: why another plan may not run here."""
    floor: int
    starts_new: bool = False
    refusal: str = ""


def _restarts(e: EventLike) -> bool:
    """A completed whole-domain rollback: the same plan may be tried again, as a new attempt."""
    return e.kind == "note" and e.status == "rollback-done" and e.data.get("scope") == "domain"


def _over(e: EventLike) -> bool:
    """What lets another plan begin: the last campaign rolled back, its window closed (every node verified at
    one version), or its hop finalized."""
    return _restarts(e) or (e.kind == "window" and e.status == "closed") or (e.kind == "note" and e.status == FINALIZED)


def _changed(e: EventLike) -> bool:
    return (e.kind == "window" and e.status == "opened") or (e.kind == "step" and e.action in CHANGING_ACTIONS)


BEGINS = frozenset({"precheck", "backup", "stage", "upgrade", "verify", "repoint"})  # may start an attempt


def scope(events: Iterable[EventLike], plan_hash: str, command: str) -> Scope:
    """The campaign `plan_hash` runs in for `command`. A command of BEGINS after a completed domain rollback
    starts a new attempt; any other (status, report, rollback, finalize) sees the last campaign as it stands,
    an ended one included ("domain back at 6.7 U1"; a rollback re-run says it is done), or nothing of this plan
    when another plan's finished campaign precedes it."""
    events = list(events)
    floor = max((e.seq for e in events if e.kind == CAMPAIGN_KIND), default=0)
    seg = [e for e in events if e.seq > floor]
    if not seg:
        return Scope(floor)
    last, begins = seg[-1].seq, command.split()[0] in BEGINS
    if all(e.plan_hash in ("", plan_hash) for e in seg):
        if begins and any(_restarts(e) for e in seg):  # a new attempt of the same plan after a domain rollback
            return Scope(last, starts_new=True)
        return Scope(floor)
    if any(_over(e) for e in seg) or not any(_changed(e) for e in seg):  # another plan's: over, or harmless
        return Scope(last, starts_new=True)
    other = next(e.plan_hash for e in reversed(seg) if e.plan_hash not in ("", plan_hash))
    return Scope(floor, refusal=(
        f"this state folder holds a campaign of another plan (plan_hash {other[:12]}) that changed the domain "
        "and is neither finished (window closed) nor rolled back; finish it or roll it back with the plan it "
        "was made with, or use another --state-dir"))

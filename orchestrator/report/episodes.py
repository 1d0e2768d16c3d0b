"""What went wrong beside the steps, from the journal (pure): outages (a node that did not answer, from the
first observation that found it silent to the one that found it back), other disagreements between the
journal and the domain (a version, two appliances with one identity), and refusals (a guard that refused a
command, with its rule).

Why in the report: a run that ended well can still have had a PSC down for twenty minutes or a wave refused
twice; the change ticket must say so. Everything here comes from events the engine journals
(`disagreement` open/resolved, `note` refused), scrubbed like every other text of the report.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from orchestrator.core.history import REFUSED, EventLike
from orchestrator.core.live import DISAGREEMENT_KIND
from orchestrator.scrub import scrub_text

OUTAGE_FIELDS = ("answering", "restore-mode")  # the node did not answer as itself
ASKS_THE_NODE = ("precheck", "verify")  # a step that succeeds only when its node answers: it ends an outage


@dataclass(frozen=True)
class Episode:
    """One disagreement between journal and domain on one node, from `since` to `until` (None: it still held
    at the last observation the journal recorded)."""

    node: str
    field: str  # answering | restore-mode | version | identity
    journal: str
    live: str
    since: float
    until: float | None
    ended_by: str = ""  # "observed answering", or the step that found the node answering again

    @property
    def outage(self) -> bool:
        return self.field in OUTAGE_FIELDS

    @property
    def duration(self) -> float | None:
        return None if self.until is None else max(0.0, self.until - self.since)


@dataclass(frozen=True)
class Refusal:
    """A command a guard refused: when, which command (phase), which rule, and what it said."""

    ts: float
    command: str
    rule: str
    reason: str
    node: str = ""


def episodes(events: Iterable[EventLike]) -> list[Episode]:
    """Replay the journaled disagreements: an `open` starts an episode (a changed `live` ends the previous
    one and starts another), a `resolved` ends it. Sorted by start."""
    done: list[Episode] = []
    open_: dict[tuple[str, str], Episode] = {}
    for e in events:
        if _answered(e):  # no later observation needed: a read of the node succeeded
            for key in [k for k in open_ if k[0] == e.node and k[1] in OUTAGE_FIELDS]:
                done.append(_closed(open_.pop(key), e.ts, f"{e.action} succeeded"))
        if e.kind != DISAGREEMENT_KIND:
            continue
        key = (e.node, str(e.data.get("field", "")))
        prev = open_.get(key)
        if e.status == "resolved":
            if prev is not None:
                done.append(_closed(open_.pop(key), e.ts, "observed answering" if prev.outage else "observed"))
            continue
        live = scrub_text(str(e.data.get("live", "")))
        if prev is not None and prev.live == live:
            continue  # the same disagreement seen again
        if prev is not None:
            done.append(_closed(prev, e.ts, f"became: {live}"))
        open_[key] = Episode(e.node, key[1], scrub_text(str(e.data.get("journal", ""))), live, e.ts, None)
    return sorted([*done, *open_.values()], key=lambda x: (x.since, x.node))


def _answered(e: EventLike) -> bool:
    """A step that could only succeed with its node answering (a precheck, a verify) succeeded."""
    ok = e.status == "succeeded" or (e.status == "reconciled" and e.data.get("outcome") == "succeeded")
    return e.kind == "step" and ok and e.action in ASKS_THE_NODE


def _closed(ep: Episode, ts: float, how: str) -> Episode:
    return Episode(ep.node, ep.field, ep.journal, ep.live, ep.since, ts, how)


def refusals(events: Iterable[EventLike]) -> list[Refusal]:
    """Every journaled refusal, in order."""
    return [Refusal(e.ts, scrub_text(e.phase), scrub_text(str(e.data.get("rule", ""))),
                    scrub_text(str(e.data.get("reason", ""))), e.node)
            for e in events if e.kind == "note" and e.status == REFUSED]

"""The report's model (pure): inventory + plan + the journal's events -> everything the report shows.

No I/O: the command reads the journal and passes the events and the journal head in; the renderers
(markdown.py, html.py) only format this model. Every number here is computed from the events, the same
way status does (orchestrator.core.history.fold, orchestrator.core.validity.judge), so the report can
never disagree with `invoke status` about versions, backups or the window.

The one thing status cannot tell and the report can: *when* each backup stopped being usable to restore
its node alone. That is found by replaying the journal: after every event that moves a node's version,
the domain is folded again and every backup known so far is judged; the first usable -> not usable
transition is the moment it stopped (and a not usable -> usable one, e.g. after a rollback, is kept too).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from orchestrator.core.history import (ROLLBACK_DONE, ROLLBACK_PLAN, DomainHistory, EventLike, domain_version,
                                       fold)
from orchestrator.core.inventory import Inventory
from orchestrator.core.live import Disagreement
from orchestrator.core.plan import Plan
from orchestrator.core.secret_keys import is_secret_key
from orchestrator.core.validity import judge
from orchestrator.report.episodes import Episode, Refusal, episodes, refusals
from orchestrator.scrub import scrub_text

PHASES = ("pre", "psc", "vcenter", "post", "rollback")
OUTCOMES = ("succeeded", "failed", "reconciled", "manual", "skipped", "not_done", "running")
# Step data keys worth showing in a bar's tooltip (anything else stays in the journal).
DETAIL_KEYS = ("method", "from", "to", "version_after", "build_after", "job_id", "task_id", "backup_id",
               "domain_version", "outcome", "error", "instructions")


# ---------------------------------------------------------------- model types

@dataclass(frozen=True)
class NodeRow:
    name: str
    role: str
    site: str
    version_before: str
    version_now: str
    verified_at: str
    upgrades: int
    last_step: str
    last_status: str


@dataclass(frozen=True)
class Bar:
    """One step on one node, from its first `started` to its end event."""

    node: str
    step: str
    action: str
    phase: str
    start: float
    end: float
    outcome: str  # one of OUTCOMES
    detail: tuple[tuple[str, str], ...] = ()

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class Transition:
    ts: float
    usable: bool  # usable alone from this moment on
    domain_version: str
    reason: str


@dataclass(frozen=True)
class BackupRow:
    node: str
    backup_id: str
    method: str
    tag: str
    ts: float
    location: str
    node_version: str
    domain_version: str  # the domain version it was taken at
    verified: bool
    usable_alone_now: bool
    whole_domain_now: bool
    reason: str  # the verdict now, in words
    usable_when_taken: bool
    transitions: tuple[Transition, ...] = ()  # after it was taken, every change of "usable alone"

    @property
    def stopped_at(self) -> float | None:
        """When it FIRST stopped being usable to restore its node alone (None: still usable, or never was)."""
        return next((t.ts for t in self.transitions if not t.usable), None)


@dataclass(frozen=True)
class Failure:
    ts: float
    node: str
    step: str
    action: str
    phase: str
    error: str
    manual: bool = False


@dataclass(frozen=True)
class Span:
    name: str
    start: float
    end: float
    open: bool = False  # still running when the journal ends

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class RollbackRun:
    scope: str
    to: str
    start: float
    end: float | None
    actions: int
    status: str  # done | in progress

    @property
    def duration(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - self.start)


@dataclass(frozen=True)
class Window:
    state: str  # not opened | OPEN | closed
    opened: float | None = None
    closed: float | None = None
    length_s: float = 0.0


@dataclass(frozen=True)
class Report:
    domain: str
    target: str
    plan_hash: str
    head_seq: int
    head_hash: str
    generated: float
    domain_version_before: str
    domain_version_now: str
    events: int
    t0: float | None  # first event time (None: no events)
    t1: float | None  # last event time
    rows: tuple[NodeRow, ...]
    bars: tuple[Bar, ...]
    backups: tuple[BackupRow, ...]
    failures: tuple[Failure, ...]
    phases: tuple[Span, ...]
    window: Window
    rollbacks: tuple[RollbackRun, ...]
    problems: tuple[str, ...] = field(default=())
    outages: tuple[Episode, ...] = ()  # a node that did not answer, from/until (orchestrator.report.episodes)
    disagreements: tuple[Episode, ...] = ()  # journal and domain differed otherwise (version, identity)
    refusals: tuple[Refusal, ...] = ()  # guards that refused a command, with the rule

    def bars_of(self, node: str) -> list[Bar]:
        return [b for b in self.bars if b.node == node]

    def backups_of(self, node: str) -> list[BackupRow]:
        return [b for b in self.backups if b.node == node]


# ---------------------------------------------------------------- helpers

def safe_text(value: Any) -> str:
    """Any value as one line of text, with known secret patterns and registered secret values redacted."""
    text = value if isinstance(value, str) else str(value)
    return scrub_text(text)


def _details(data: dict) -> tuple[tuple[str, str], ...]:
    out = []
    for k in DETAIL_KEYS:
        if k in data and data[k] not in (None, "", [], {}) and not is_secret_key(k):
            v = data[k]
            if isinstance(v, (dict, list)):
                continue
            out.append((k, safe_text(v)))
    return tuple(out)


def node_order(inv: Inventory) -> list[str]:
    """PSCs first, then vCenters; each ordered by site (inventory order), then by name."""
    site = {s: i for i, s in enumerate(inv.sites)}
    role = {"psc": 0, "vcenter": 1}
    return [n.name for n in sorted(inv.nodes, key=lambda n: (role.get(n.role, 2), site.get(n.site, 99), n.name))]


def _effective(e: EventLike) -> str:
    """A step event's outcome for drawing: succeeded | failed | manual | skipped | reconciled | not_done."""
    if e.status == "reconciled":
        outcome = e.data.get("outcome")
        return {"succeeded": "reconciled", "failed": "failed", "not_done": "not_done"}.get(outcome, "reconciled")
    if e.status == "failed" and e.data.get("manual"):
        return "manual"
    return e.status


def _moves_a_version(e: EventLike, inv_nodes: set[str]) -> bool:
    if e.kind != "step" or e.node not in inv_nodes or not e.data.get("version_after"):
        return False
    return e.status == "succeeded" or (e.status == "reconciled" and e.data.get("outcome") == "succeeded")


# ---------------------------------------------------------------- building

def _bars(events: Sequence[EventLike], nodes: set[str], t_end: float) -> list[Bar]:
    bars: list[Bar] = []
    open_: dict[tuple[str, str], EventLike] = {}
    for e in events:
        if e.kind != "step" or e.node not in nodes:
            continue
        key = (e.node, e.step)
        if e.status == "started":
            open_.setdefault(key, e)  # later `started` events of the same step are progress reports
            continue
        start = open_.pop(key, None)
        data = {**(start.data if start else {}), **e.data}
        bars.append(Bar(e.node, e.step, e.action, e.phase, start.ts if start else e.ts, e.ts, _effective(e),
                        _details(data)))
    for (node, step), s in open_.items():
        bars.append(Bar(node, step, s.action, s.phase, s.ts, max(t_end, s.ts), "running", _details(s.data)))
    return sorted(bars, key=lambda b: (b.start, b.end))


def _failures(events: Sequence[EventLike]) -> list[Failure]:
    out = []
    for e in events:
        if e.kind != "step":
            continue
        outcome = _effective(e)
        if outcome not in ("failed", "manual"):
            continue
        d = e.data
        text = d.get("error") or d.get("instructions") or (
            "reconciled as failed after a crash" if e.status == "reconciled" else "(no error text recorded)")
        out.append(Failure(e.ts, e.node, e.step, e.action, e.phase, safe_text(text), outcome == "manual"))
    return out


def _phases(events: Sequence[EventLike]) -> list[Span]:
    spans: dict[str, list[float]] = {}
    for e in events:
        if e.phase in PHASES:
            s = spans.setdefault(e.phase, [e.ts, e.ts])
            s[0], s[1] = min(s[0], e.ts), max(s[1], e.ts)
    return [Span(p, *spans[p]) for p in PHASES if p in spans]


def _rollbacks(events: Sequence[EventLike]) -> list[RollbackRun]:
    runs: list[RollbackRun] = []
    for e in events:
        if e.kind != "note":
            continue
        if e.status == ROLLBACK_PLAN:
            runs.append(RollbackRun(safe_text(e.data.get("scope", "")), safe_text(e.data.get("to", "")), e.ts, None,
                                    len(e.data.get("actions") or ()), "in progress"))
        elif e.status == ROLLBACK_DONE and runs and runs[-1].end is None:
            r = runs[-1]
            runs[-1] = RollbackRun(r.scope, r.to, r.start, e.ts, r.actions, "done")
    return runs


def _backup_transitions(inv: Inventory, events: Sequence[EventLike]) -> dict[int, tuple[bool, list[Transition]]]:
    """Replay: at every backup and every version-changing event, fold the prefix and judge every backup
    known so far. Returns, per backup index (order of DomainHistory.backups), whether it was usable alone
    when taken and its later transitions."""
    names = {n.name for n in inv.nodes}
    state: dict[int, tuple[bool, list[Transition]]] = {}
    last: dict[int, bool] = {}
    for i, e in enumerate(events):
        is_backup = e.kind == "backup" or (e.kind == "source_appliance" and e.status == "kept")
        if not (is_backup or _moves_a_version(e, names)):
            continue
        hist = fold(inv, events[: i + 1])
        dv = domain_version(inv, hist.versions())
        for j, b in enumerate(hist.backups):
            if b.node not in names:
                continue
            v = judge(b, inv, hist)
            if j not in state:
                state[j] = (v.single_node, [])
            elif last[j] != v.single_node:
                state[j][1].append(Transition(e.ts, v.single_node, dv, v.reason))
            last[j] = v.single_node
    return state


def build_report(inv: Inventory, plan: Plan, events: Iterable[EventLike], *, head: tuple[int, str] = (0, ""),
                 generated: float = 0.0) -> Report:
    """The whole report from inventory, plan and the journal's events (in seq order). `head` is the journal's
    (last seq, hash), printed as an anchor against a rewritten history; `generated` is "now" (epoch s)."""
    events = list(events)
    names = {n.name for n in inv.nodes}
    hist: DomainHistory = fold(inv, events)
    t0 = min((e.ts for e in events), default=None)
    t1 = max((e.ts for e in events), default=None)
    before = {n.name: n.version for n in inv.nodes}
    order = node_order(inv)
    rows = []
    for name in order:
        n, h = inv.node(name), hist.nodes[name]
        rows.append(NodeRow(name, n.role, n.site, n.version.release, h.version.release, h.verified_at,
                            h.upgraded, h.last_step, h.last_status))

    transitions = _backup_transitions(inv, events)
    backups = []
    for j, b in enumerate(hist.backups):
        if b.node not in names:
            continue
        v = judge(b, inv, hist)
        when_taken, trans = transitions.get(j, (v.single_node, []))
        backups.append(BackupRow(b.node, safe_text(b.backup_id), safe_text(b.method), safe_text(b.tag), b.ts,
                                 safe_text(b.location), b.node_version, b.domain_version, b.verified,
                                 v.single_node, v.whole_domain, safe_text(v.reason), when_taken, tuple(trans)))
    rank = {n: i for i, n in enumerate(order)}
    backups.sort(key=lambda r: (rank[r.node], r.ts))

    if hist.window_opened is None:
        window = Window("not opened")
    else:
        end = hist.window_closed if hist.window_closed is not None else max(generated, t1 or 0.0)
        window = Window("closed" if hist.window_closed is not None else "OPEN", hist.window_opened,
                        hist.window_closed, max(0.0, end - hist.window_opened))

    seen = episodes(events)
    problems = [f"{r.name} was upgraded {r.upgrades} times (expected once)" for r in rows if r.upgrades > 1]
    problems += [f"step {s} was started and never confirmed (the run died mid-step?)" for s in hist.running_steps]
    problems += [safe_text(str(Disagreement(x.node, x.field, x.journal, x.live, x.since)))
                 for x in seen if x.until is None]  # what the last look (or a later verify) did not see end
    problems += [f"TLS verification was OFF (--insecure) for the {safe_text(e.phase)} run started "
                 f"{fmt_ts(e.ts)}: the nodes were not authenticated"
                 for e in events if e.kind == "run.start" and e.data.get("insecure")]
    return Report(
        domain=inv.domain, target=plan.target, plan_hash=plan.plan_hash, head_seq=int(head[0]),
        head_hash=str(head[1]), generated=generated,
        domain_version_before=domain_version(inv, before), domain_version_now=domain_version(inv, hist.versions()),
        events=len(events), t0=t0, t1=t1, rows=tuple(rows), bars=tuple(_bars(events, names, t1 or 0.0)),
        backups=tuple(backups), failures=tuple(_failures(events)), phases=tuple(_phases(events)), window=window,
        rollbacks=tuple(_rollbacks(events)), problems=tuple(problems),
        outages=tuple(x for x in seen if x.outage), disagreements=tuple(x for x in seen if not x.outage),
        refusals=tuple(refusals(events)))


# ---------------------------------------------------------------- formatting shared by the renderers

def fmt_ts(ts: float | None) -> str:
    if ts is None:
        return "-"
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def until_text(ep: Episode) -> str:
    """When an outage or disagreement ended, in words (one that still held is said so, not left blank)."""
    return f"{fmt_ts(ep.until)} ({ep.ended_by})" if ep.until is not None else "still at the last look"


def stopped_text(b: BackupRow) -> str:
    """When the backup stopped being usable alone, in words."""
    if not b.usable_when_taken:
        return "never usable alone"
    if b.stopped_at is None:
        return "still usable"
    text = fmt_ts(b.stopped_at)
    again = [t for t in b.transitions if t.usable and t.ts > b.stopped_at]
    if again:
        text += f" (usable again {fmt_ts(again[0].ts)})"
    return text

"""What a step does next, decided from the node as it is (pure): done, adopt, start, wait, or stop.

Why one function for every step: "ask the node first" must mean the same thing before a step starts and
when a crashed step is reconciled, for an update install, a staging, a backup, an installer run or a
rollback action. The journal says what vcwave tried; only the node says what happened. A node that does
not answer (refused, 503 while it reboots, a garbled reply) is *unknown*: never "not done" (that starts a
second install on a node that may be finishing the first) and never "fine". It is waited on up to the
method's restart deadline (version data, `interop.restart_minutes`), then the step stops, naming the node
and the one next action.
"""
from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.versions import Version

DONE, ADOPT, START, WAIT, STOP = "done", "adopt", "start", "wait", "stop"

RUNNING, FAILED, FINISHED = "running", "failed", "finished"  # the step's job, as the node reports it


@dataclass(frozen=True)
class Observation:
    """One look at a node for one step. `job` is the step's own job on the node ("" when none is known)."""

    answering: bool
    version: Version | None = None
    job: str = ""
    why: str = ""  # not answering: what the node (or the network) said
    progress: int | None = None  # the job's percent, for the log only


@dataclass(frozen=True)
class Decision:
    kind: str  # done | adopt | start | wait | stop
    reason: str
    next_action: str = ""  # set when kind == stop: the one thing the operator does next


def decide(obs: Observation, target: Version | None, *, node: str, silent_s: float, restart_s: float,
           rerun: str, started: bool = False) -> Decision:
    """The next move of a step on `node` whose goal is `target` (None: the goal is the job itself, e.g. a
    backup). `silent_s`: how long the node has not answered in this wait; `restart_s`: the method's restart
    deadline; `rerun`: the command that resumes the work; `started`: the journal says this step was started
    before (a resumed step never starts blind: it adopts, or starts again only on a node that answers)."""
    if not obs.answering:
        if silent_s < restart_s:
            return Decision(WAIT, f"{node} does not answer ({obs.why or 'no reply'}): unknown, waiting up to "
                                  f"{_minutes(restart_s)} for it to come back")
        return Decision(STOP, f"{node} has not answered for {_minutes(silent_s)} ({obs.why or 'no reply'}); "
                              f"whether the work finished is unknown",
                        f"look at {node} (console, VAMI); once it answers, run `{rerun}` (it asks the node first "
                        f"and never repeats finished work)")
    if target is not None and obs.version is not None and obs.version.same_release(target):
        return Decision(DONE, f"{node} already runs {target.release}")
    if obs.job == FINISHED:
        return Decision(DONE, f"{node} reports the job finished")
    if obs.job == RUNNING:
        return Decision(ADOPT, f"{node} is already running the job: adopting it, not starting a second one")
    if obs.job == FAILED:
        return Decision(START, f"{node} reports the last attempt failed; starting it again")
    return Decision(START, f"{node} answers{' at ' + obs.version.release if obs.version else ''} and has no job "
                           f"running{': the interrupted attempt did not take' if started else ''}")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def resume_command(phase: str, action: str) -> str:
    """The command that resumes a step of this phase: the one next action a stop names."""
    if phase in ("psc", "vcenter"):
        return f"invoke upgrade --wave {phase}"
    if phase == "rollback":
        return "invoke rollback"
    if action in ("stage", "precheck"):
        return f"invoke {action}"
    if action == "backup":
        return f"invoke backup --phase {phase}"
    return "invoke verify"


def planned_version(source: str, moves: list[tuple[str, str]]) -> str:
    """The version a node must answer with now: its source, or where the latest move sent it - an upgrade
    that was started (to the target: a verify after a crash expects the target, not the journal's last
    confirmed version) or a rollback (back to the version the rollback plan named). `moves`: (kind,
    version) oldest first."""
    return moves[-1][1] if moves else source

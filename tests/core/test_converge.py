"""The step decision (core.converge), from fixtures: no lab, no clock. Each case is one of the bad days of
issue 14: a node finishing its install while vcwave was dead, a node rebooting, a garbled reply."""
from __future__ import annotations

import pytest

from orchestrator.core.converge import (ADOPT, DONE, FAILED, FINISHED, RUNNING, START, STOP, WAIT, Observation,
                                        decide, resume_command)
from orchestrator.core.interop import restart_minutes
from orchestrator.core.versions import parse_version

U1, U3 = parse_version("6.7 U1"), parse_version("6.7 U3")


def _decide(obs, target=U3, silent_s=0.0, restart_s=600.0, started=False):
    return decide(obs, target, node="psc-a", silent_s=silent_s, restart_s=restart_s,
                  rerun="invoke upgrade --wave psc", started=started)


def test_a_node_already_at_target_is_done_whatever_the_journal_says():
    """The install finished while vcwave was dead: never a second precheck/install (the 404 dead end)."""
    assert _decide(Observation(True, U3), started=True).kind == DONE
    assert _decide(Observation(True, U3, job=FAILED)).kind == DONE


def test_a_running_job_is_adopted_not_started_again():
    assert _decide(Observation(True, U1, job=RUNNING), started=True).kind == ADOPT


def test_a_silent_node_is_unknown_and_waited_on_never_not_done():
    d = _decide(Observation(False, why="HTTP 503: rebooting"), silent_s=30, started=True)
    assert d.kind == WAIT and "unknown" in d.reason and "503" in d.reason


def test_a_node_silent_past_its_restart_deadline_stops_with_the_node_and_one_next_command():
    d = _decide(Observation(False, why="connection refused"), silent_s=601, restart_s=600)
    assert d.kind == STOP
    assert "psc-a" in d.reason and "unknown" in d.reason
    assert d.next_action.count("`") == 2 and "`invoke upgrade --wave psc`" in d.next_action


def test_an_answering_node_without_a_job_is_started():
    assert _decide(Observation(True, U1)).kind == START
    d = _decide(Observation(True, U1), started=True)
    assert d.kind == START and "did not take" in d.reason


def test_a_failed_attempt_is_started_again_and_a_finished_job_is_done():
    assert _decide(Observation(True, U1, job=FAILED)).kind == START
    assert _decide(Observation(True, None, job=FINISHED), target=None).kind == DONE


@pytest.mark.parametrize("phase,action,cmd", [
    ("psc", "upgrade", "invoke upgrade --wave psc"), ("vcenter", "backup", "invoke upgrade --wave vcenter"),
    ("pre", "stage", "invoke stage"), ("pre", "backup", "invoke backup --phase pre"),
    ("rollback", "verify", "invoke rollback"), ("verify", "verify", "invoke verify")])
def test_the_resume_command_is_the_one_that_runs_the_step_again(phase, action, cmd):
    assert resume_command(phase, action) == cmd


def test_restart_deadlines_come_from_version_data():
    assert restart_minutes("update") >= restart_minutes("stage") > 0
    with pytest.raises(KeyError, match="no restart deadline"):
        restart_minutes("teleport")

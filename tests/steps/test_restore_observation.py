"""How a rollback's file restore reads its node (orchestrator/steps/rollback.py), from fixtures: the kill sweep of
issue 14 showed a restore into a powered-off appliance dead-ending; the step now asks the node first."""
from __future__ import annotations

import pytest

from orchestrator.clients.appliance import RestoreJob
from orchestrator.clients.retry import BadRequest, ConnectionFailed
from orchestrator.core.converge import FAILED, FINISHED, RUNNING
from orchestrator.steps.rollback import _observe_restore


class Node:
    def __init__(self, answer):
        self.answer = answer

    def restore_job(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_a_restore_running_is_adopted_and_a_failed_one_is_said():
    assert _observe_restore(Node(RestoreJob("INPROGRESS", 40)), False).job == RUNNING
    assert _observe_restore(Node(RestoreJob("FAILED", 50)), False).job == FAILED
    assert _observe_restore(Node(RestoreJob("NONE", 0)), False).job == ""


def test_a_succeeded_restore_counts_only_for_the_step_that_ran_before():
    """On a first attempt a succeeded job is an older restore of that appliance: the node is restored again
    (and, not in restore mode, refuses: the operator deploys a fresh one), never taken as done."""
    done = Node(RestoreJob("SUCCEEDED", 100))
    assert _observe_restore(done, False).job == ""
    assert _observe_restore(done, True).job == FINISHED


def test_a_booting_appliance_is_silent_not_without_a_restore():
    obs = _observe_restore(Node(ConnectionFailed("connection refused", node="vc-a")), False)
    assert not obs.answering and "refused" in obs.why
    with pytest.raises(BadRequest):  # a real answer is not silence
        _observe_restore(Node(BadRequest("not in restore mode", node="vc-a")), False)

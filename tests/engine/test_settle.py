"""The observe-decide loop every step runs (steps.common.settle) and the rollback's end text, without a
lab: scripted observations, the real decision (core.converge), the real stop request (orchestrator.stop)."""
from __future__ import annotations

import re
import signal
import threading
from types import SimpleNamespace

import pytest

from orchestrator import stop
from orchestrator.commands.rollback import outcome
from orchestrator.core.converge import ADOPT, DONE, RUNNING, START, Observation
from orchestrator.core.versions import parse_version
from orchestrator.engine.runner import RunResult
from orchestrator.errors import StepFailed
from orchestrator.steps import common
from orchestrator.steps.base import ManualStepRequired

U1, U3 = parse_version("6.7 U1"), parse_version("6.7 U3")


def _ctx():
    lines = []
    log = SimpleNamespace(info=lambda event, **kw: lines.append((event, kw)))
    return SimpleNamespace(node=SimpleNamespace(name="psc-a"), step=SimpleNamespace(phase="psc", action="upgrade"),
                           options=SimpleNamespace(poll_interval=0.001, deadline_scale=0.0001), log=log), lines


def _script(*obs):
    seq = list(obs)
    return lambda: seq.pop(0) if len(seq) > 1 else seq[0]


@pytest.fixture
def short_restart(monkeypatch):
    monkeypatch.setattr(common, "restart_deadline", lambda ctx, kind: 0.2)


def test_a_rebooting_node_is_waited_on_then_found_at_target(short_restart):
    ctx, lines = _ctx()
    silent = Observation(False, why="HTTP 503: rebooting")
    d = common.settle(ctx, _script(silent, silent, silent, Observation(True, U3)), "update", U3, started=True)
    assert d.kind == DONE
    assert len([e for e, _ in lines if e == "step.waiting"]) == 1  # three polls, one line


def test_a_node_silent_past_its_restart_deadline_stops_naming_it_and_the_next_command(short_restart):
    ctx, _ = _ctx()
    with pytest.raises(StepFailed) as exc:
        common.settle(ctx, _script(Observation(False, why="connection refused")), "update", U3, started=True)
    msg = str(exc.value)
    assert "psc-a" in msg and "unknown" in msg and re.findall(r"`([^`]+)`", msg) == ["invoke upgrade --wave psc"]


def test_a_running_job_is_followed_to_its_end_or_returned_for_adoption(short_restart):
    ctx, _ = _ctx()
    running = Observation(True, U1, RUNNING, progress=40)
    assert common.settle(ctx, _script(running), "update", U3).kind == ADOPT
    d = common.settle(ctx, _script(running, running, Observation(True, U3)), "update", U3, job_minutes=1)
    assert d.kind == DONE
    assert common.settle(ctx, _script(Observation(True, U1)), "update", U3).kind == START


def test_a_stop_request_ends_a_wait_at_once():
    ctx, _ = _ctx()
    ctx.options.deadline_scale = 1.0  # a 30-minute restart deadline: only the stop can end this wait
    stop.reset()
    timer = threading.Timer(0.1, lambda: (stop._received.append(signal.SIGTERM), stop.STOP.set()))
    timer.start()
    try:
        with pytest.raises(stop.Interrupted) as exc:
            common.settle(ctx, _script(Observation(False, why="HTTP 503")), "update", U3)
        assert exc.value.exit_code == 143
    finally:
        timer.cancel()
        stop.reset()


def test_a_paused_rollback_names_one_next_command_only():
    result = RunResult("rollback", done=["a", "b"])
    pause = ManualStepRequired("vc-b", "deploy a 6.7 U1 appliance for vc-b (Restore, stage 1)",
                               next_command="invoke rollback")
    result.manual.append(("rollback-domain-pre/05-restore/vc-b", str(pause)))
    text = outcome(result)
    commands = set(re.findall(r"invoke [a-z]+(?: --[a-z-]+(?: [\w,-]+)?)*", text))
    assert commands == {"invoke rollback"}, text
    assert "nothing else was touched" not in text


def test_ctrl_c_asks_for_a_stop_that_every_wait_honours_with_exit_130():
    import os
    with stop.signals_stop():
        os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: no exception here, a stop request
        assert stop.requested() == signal.SIGINT
        with pytest.raises(stop.Interrupted) as exc:
            stop.sleep(30)
        assert exc.value.exit_code == 130 and "SIGINT" in str(exc.value)
    assert stop.requested() is None  # the next command starts clean
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_garbled_or_503_reply_during_an_install_is_unknown_but_a_404_is_an_answer(monkeypatch):
    from orchestrator.clients.retry import BadAnswer, NotFound, ServiceUnavailable
    from orchestrator.steps import update

    def ctx_raising(exc):
        def version(conns, node):
            raise exc
        monkeypatch.setattr(update, "appliance_version", version)
        return SimpleNamespace(conns=SimpleNamespace(appliance=lambda node: None), node=None, target=U3)

    for exc in (BadAnswer("answer is not valid JSON (truncated?)", what="GET /rest/appliance/update"),
                ServiceUnavailable("HTTP 503: rebooting")):
        obs = update._observe_update(ctx_raising(exc), "INSTALL_IN_PROGRESS")
        assert not obs.answering and obs.why == exc.message
    with pytest.raises(NotFound):
        update._observe_update(ctx_raising(NotFound("Update 6.7.0.40000 not found")), "INSTALL_IN_PROGRESS")


def test_a_job_just_started_that_the_node_does_not_show_yet_is_given_time_to_appear(short_restart):
    ctx, _ = _ctx()
    idle, running = Observation(True, U1), Observation(True, U1, RUNNING)
    d = common.settle(ctx, _script(idle, idle, running, Observation(True, U3)), "update", U3, job_minutes=1)
    assert d.kind == DONE
    assert common.settle(ctx, _script(idle), "update", U3, job_minutes=1).kind == START  # after the grace

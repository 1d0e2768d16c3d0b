"""The console's fold of the event stream (orchestrator.console.model), without a terminal: what becomes a
line, what only updates a running step, how retries fold, what the summary counts."""
from __future__ import annotations

from orchestrator.console.model import RunView, duration
from orchestrator.core.inventory import load_inventory
from orchestrator.core.plan import build_plan
from orchestrator.core.playbook import load_playbook
from orchestrator.core.versions import parse_version

from tests.cli.test_cli import ROOT


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def view() -> tuple[RunView, Clock]:
    clock = Clock()
    return RunView(clock=clock, wall=clock), clock


def start(step: str, node: str, action: str, method: str = "", **kw) -> dict:
    return {"event": "step.start", "level": "info", "step": step, "node": node, "action": action, "method": method,
            "frm": "6.7 U1", "to": "6.7 U3", **kw}


def test_a_step_is_one_line_when_it_ends_with_its_outcome_and_duration():
    v, clock = view()
    assert v.apply(start("psc/upgrade/psc-a", "psc-a", "upgrade", "update")) == []  # the console prints starts
    clock.t += 125
    lines = v.apply({"event": "step.done", "level": "info", "step": "psc/upgrade/psc-a", "node": "psc-a",
                     "duration_s": 125.0})
    assert len(lines) == 1
    assert lines[0].split()[:4] == ["changed", "psc-a", "upgrade", "(update)"] and "2 min" in lines[0]
    v.apply(start("pre/precheck/vc-a", "vc-a", "precheck"))
    ok = v.apply({"event": "step.done", "level": "info", "step": "pre/precheck/vc-a", "node": "vc-a"})
    assert ok[0].startswith("ok ")  # a precheck changes nothing
    assert (v.tally.ok, v.tally.changed, v.tally.failed) == (1, 1, 0)


def test_failure_names_the_error_and_counts():
    v, _ = view()
    v.apply(start("vcenter/upgrade/vc-b", "vc-b", "upgrade", "update"))
    lines = v.apply({"event": "step.failed", "level": "error", "step": "vcenter/upgrade/vc-b", "node": "vc-b",
                     "error": "node vc-b: install failed: vpxd\nmore detail", "duration_s": 3.0})
    assert lines[0].startswith("FAILED   vc-b") and "install failed: vpxd" in lines[0] and "more detail" not in lines[0]
    assert v.tally.failed == 1 and "failed 1" in v.summary()


def test_retries_fold_into_the_running_step_one_line_per_node():
    v, clock = view()
    v.apply(start("psc/upgrade/psc-a", "psc-a", "upgrade", "update"))
    printed = []
    for i in range(40):  # a node that is down for a long time: 40 retries, one line
        printed += v.apply({"event": "client.retry", "level": "warning", "step": "psc/upgrade/psc-a", "node": "psc-a",
                            "attempt": i + 1, "deadline_s": 1200, "reason": "connection refused"})
    assert len(printed) == 1 and "connection refused" in printed[0]
    run = v.running["psc/upgrade/psc-a"]
    assert run.waiting_text() == "psc-a: not answering, retried 40x, waiting up to 20 min"
    assert v.tally.fault_retries == 40


def test_expected_outage_is_a_wait_not_a_fault():
    v, _ = view()
    v.apply(start("psc/upgrade/psc-a", "psc-a", "upgrade", "update"))
    for _ in range(4):
        assert v.apply({"event": "job.poll_failed", "level": "info", "step": "psc/upgrade/psc-a", "node": "psc-a",
                        "expected": "rebooting", "deadline_s": 1200, "error": "HTTP 503"}) == []
    assert v.running["psc/upgrade/psc-a"].waiting_text() == "psc-a: rebooting, retried 4x, waiting up to 20 min"
    end = v.apply({"event": "step.done", "level": "info", "step": "psc/upgrade/psc-a", "node": "psc-a"})
    assert "psc-a rebooting: 4 polls" in end[0]
    assert (v.tally.fault_retries, v.tally.expected_waits) == (0, 4)
    assert "retries of transient faults: 0" in v.summary()


def test_progress_updates_the_running_step_and_prints_nothing():
    v, clock = view()
    v.apply(start("pre/backup/vc-a", "vc-a", "backup", "file"))
    assert v.apply({"event": "job.progress", "level": "info", "step": "pre/backup/vc-a", "node": "vc-a",
                    "what": "backup", "state": "INPROGRESS", "percent": 42}) == []
    run = v.running["pre/backup/vc-a"]
    assert run.percent == 42 and run.phase == "backup inprogress"


def test_warnings_are_always_lines_and_quiet_events_never():
    v, _ = view()
    assert v.apply({"event": "appliance.session_created", "level": "debug", "node": "vc-a"}) == []
    lines = v.apply({"event": "tls.verification_disabled", "level": "warning", "node": "vc-a", "host": "127.0.0.1"})
    assert lines and lines[0].startswith("WARNING vc-a") and "tls.verification_disabled" in lines[0]


def test_expected_durations_and_window_come_from_the_plan():
    inv = load_inventory(ROOT / "examples" / "two-site.yml")
    plan = build_plan(inv, load_playbook(), parse_version("6.7 U3"))
    v, clock = view()
    v.use_plan(plan)
    v.apply({"event": "window.opened", "level": "info", "by": "psc/upgrade/psc-a"})
    v.apply(start("psc/upgrade/psc-a", "psc-a", "upgrade", "update"))
    run = v.running["psc/upgrade/psc-a"]
    assert run.expected_s == 40 * 60  # the update install's planned duration (core/data)
    clock.t += 600
    assert run.remaining(clock()) == 30 * 60
    assert v.window_text() == f"window open 10 min of ~{duration(plan.window_estimate_min * 60)} expected"
    assert "~40 min expected" in RunView.start_line([run])[0]


def test_a_batch_that_starts_together_is_one_start_line():
    v, _ = view()
    for n in ("psc-a", "psc-b", "vc-a"):
        v.apply(start(f"pre/precheck/{n}", n, "precheck"))
    lines = RunView.start_line(list(v.running.values()))
    assert lines == ["start    psc-a, psc-b, vc-a  precheck  6.7 U1 -> 6.7 U3"]


def test_a_later_command_knows_where_the_window_clock_stands():
    inv = load_inventory(ROOT / "examples" / "two-site.yml")
    plan = build_plan(inv, load_playbook(), parse_version("6.7 U3"))
    v, clock = view()
    v.use_plan(plan, (clock() - 300, None))
    assert v.window_text().startswith("window open 5 min of ~")
    v.use_plan(plan, (clock() - 300, clock() - 60))
    assert v.window_text() == "window closed after 4 min"


def test_a_long_wait_says_where_it_is_every_five_minutes():
    v, clock = view()
    v.apply(start("psc/upgrade/psc-a", "psc-a", "upgrade", "update"))
    notes = []
    for minute in range(1, 31):  # a node down for 30 minutes, retried every minute
        clock.t += 60
        notes += v.apply({"event": "job.poll_failed", "level": "info", "step": "psc/upgrade/psc-a", "node": "psc-a",
                          "expected": "rebooting", "deadline_s": 3600, "error": "HTTP 503"})
    assert len(notes) == 6  # every 5 minutes, not 30 lines, not silence
    assert notes[0].startswith("running  psc-a    upgrade (update): psc-a: rebooting, retried 5x, waiting up to 60 min")
    assert notes[-1].endswith("30 min elapsed")
    v.apply({"event": "window.opened", "level": "info", "by": "psc/upgrade/psc-a"})
    clock.t += 300
    note = v.apply({"event": "job.poll_failed", "level": "info", "step": "psc/upgrade/psc-a", "node": "psc-a",
                    "expected": "rebooting", "deadline_s": 3600, "error": "HTTP 503"})
    assert note[0].endswith("35 min elapsed; window open 5 min")  # the window clock, in a plain log too


def test_progress_of_a_long_job_is_noted_not_streamed():
    v, clock = view()
    v.apply(start("psc/upgrade/psc-a", "psc-a", "upgrade", "update"))
    lines = []
    for pct in range(0, 100, 2):  # 50 progress changes over 25 minutes
        clock.t += 30
        lines += v.apply({"event": "job.progress", "level": "info", "step": "psc/upgrade/psc-a", "node": "psc-a",
                          "what": "install", "state": "INSTALL_IN_PROGRESS", "percent": pct})
    assert len(lines) == 5 and "install install_in_progress" in lines[0] and "%" in lines[0]


def test_retries_outside_a_step_are_counted_not_printed():
    """Observing the domain (every command starts so) asks a dead node: the observation's result names it
    (status lists it first, guards refuse); the console does not print into `status` output."""
    v, _ = view()
    assert v.apply({"event": "client.retry", "level": "warning", "node": "vc-b", "step": "-",
                    "reason": "connection refused"}) == []
    assert v.tally.fault_retries == 1

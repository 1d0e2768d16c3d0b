"""The commands' logging (orchestrator.log, human=True): the full event stream lands, scrubbed, in one 0600
JSON-lines file per domain, rotated; events from before the domain was known are kept; the console view
and the file see the same events; -v and --json are views of the same stream."""
from __future__ import annotations

import io
import json

import pytest

from orchestrator import log as olog
from orchestrator.secrets import Secret
from orchestrator.log import EventFile


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    olog.finish()
    olog.configure()


def read(path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines()]


def test_full_stream_scrubbed_in_a_0600_file_per_domain(tmp_path):
    out = io.StringIO()
    olog.configure(human=True, stream=out)
    Secret("Event-Secret-42")
    olog.get_logger().debug("early.debug", password="Event-Secret-42")  # before the domain is known
    path = olog.record_to(tmp_path / "state", "vsphere.local")
    assert path == tmp_path / "state" / "vsphere.local" / "events.jsonl"
    olog.get_logger().info("step.start", node="psc-a", step="psc/upgrade/psc-a", action="upgrade", method="update",
                           detail="token Event-Secret-42")
    olog.get_logger().info("step.done", node="psc-a", step="psc/upgrade/psc-a", duration_s=1.0)
    olog.finish()
    events = read(path)
    assert [e["event"] for e in events] == ["early.debug", "step.start", "step.done"]
    assert list(events[1])[:3] == ["timestamp", "level", "event"]
    assert "Event-Secret-42" not in path.read_text() and "Event-Secret-42" not in out.getvalue()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert "changed  psc-a    upgrade (update)" in out.getvalue()  # the console saw the same stream
    assert "early.debug" not in out.getvalue()


def test_the_first_file_named_is_kept_for_the_whole_run(tmp_path):
    olog.configure(human=True, stream=io.StringIO())
    first = olog.record_to(tmp_path / "a", "d")
    assert olog.record_to(tmp_path / "b", "d") == first
    olog.get_logger().info("x")
    olog.finish()
    assert [e["event"] for e in read(first)] == ["x"] and not (tmp_path / "b").exists()


def test_rotation_keeps_a_bounded_number_of_files(tmp_path, monkeypatch):
    monkeypatch.setattr(EventFile, "MAX_BYTES", 2000)
    monkeypatch.setattr(EventFile, "BACKUPS", 2)
    olog.configure(human=True, stream=io.StringIO())
    path = olog.record_to(tmp_path, "d")
    for i in range(200):
        olog.get_logger().info("job.progress", node="vc-a", percent=i % 100)
    olog.finish()
    files = sorted(p.name for p in tmp_path.joinpath("d").iterdir())
    assert files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    assert all(len(p.read_bytes()) <= 2300 for p in tmp_path.joinpath("d").iterdir())
    assert read(path)[-1]["percent"] == 99
    assert {oct(p.stat().st_mode & 0o777) for p in tmp_path.joinpath("d").iterdir()} == {"0o600"}


@pytest.mark.parametrize("flag", ["json", "verbose"])
def test_json_and_verbose_stream_every_info_event(tmp_path, flag):
    err = io.StringIO()
    olog.configure(human=True, stream=err, **{flag: True})
    olog.get_logger().info("job.progress", node="vc-a", percent=5)
    olog.get_logger().debug("appliance.session_created", node="vc-a")
    olog.finish()
    text = err.getvalue()
    assert "job.progress" in text and "session_created" not in text
    if flag == "json":
        assert json.loads(text.splitlines()[0])["percent"] == 5


def test_events_during_an_expected_outage_say_so(tmp_path):
    from orchestrator.clients.retry import (RETRIES, ConnectionFailed, call_with_retry, expected_outage,
                                            set_default_policy)
    olog.configure(human=True, stream=io.StringIO())
    path = olog.record_to(tmp_path, "d")
    old = set_default_policy(initial_wait=0.001, max_wait=0.001)
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionFailed("connection refused", node="psc-a", what="system.version")
        return "up"

    try:
        faults, waits = RETRIES.total, RETRIES.expected
        with expected_outage("rebooting"):
            assert call_with_retry(flaky, what="system.version", node="psc-a") == "up"
        assert (RETRIES.total - faults, RETRIES.expected - waits) == (0, 2)  # waits, not faults
        calls["n"] = 0
        assert call_with_retry(flaky, what="system.version", node="psc-a") == "up"
        assert RETRIES.total - faults == 2
    finally:
        set_default_policy(old)
        olog.finish()
    retries = [e for e in read(path) if e["event"] == "client.retry"]
    assert [(e.get("expected"), e["level"]) for e in retries] == [("rebooting", "info")] * 2 + [(None, "warning")] * 2


def test_a_refused_command_writes_no_event_log(tmp_path):
    """Like the journal: bad input refused before anything acted leaves no file behind."""
    olog.configure(human=True, stream=io.StringIO())
    olog.record_to(tmp_path, "d")
    olog.get_logger().info("plan.loaded")
    olog.finish(keep=False)
    assert not (tmp_path / "d").exists()


FRESH = """
import sys
from orchestrator import log
log.configure(json=False, stream=sys.stdout)
try:
    1 / 0
except ZeroDivisionError:
    log.get_logger("t").error("boom", exc_info=True)
print("loaded:", sorted(m for m in ("rich.pretty", "rich.traceback", "attr") if m in sys.modules))
import rich.console
print("rich after:", rich.console.Console.__name__)
"""


def test_a_fresh_process_logs_exceptions_without_loading_richs_traceback_machinery():
    """orchestrator/slog.py: structlog is imported without rich's traceback and pretty-printer (a fresh CLI
    process pays ~70-100 ms of CPU for them), the -v stream still carries the exception's traceback as text,
    and rich stays importable for the console view."""
    import subprocess
    import sys
    from pathlib import Path
    r = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
    assert "boom" in r.stdout and "ZeroDivisionError: division by zero" in r.stdout and "Traceback" in r.stdout
    assert "loaded: []" in r.stdout and "rich after: Console" in r.stdout


PIPED = """
import sys
from orchestrator import log
log.configure(human=True)
log.get_logger("t").info("step.done", step="backup:psc-a", node="psc-a", kind="backup", seconds=3.0)
log.finish()
print("rich loaded:", sorted(m for m in sys.modules if m == "rich" or m.startswith("rich.")))
"""


def test_a_commands_console_on_a_pipe_prints_plain_lines_without_importing_rich():
    """A command whose output goes to a pipe (CI, AWX, a log file) gets the plain console: its lines are
    printed and rich, ~50 ms of imports, is never loaded (orchestrator/console/live.py is a terminal's only)."""
    import subprocess
    import sys
    from pathlib import Path
    r = subprocess.run([sys.executable, "-c", PIPED], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
    assert "psc-a" in r.stdout and "rich loaded: []" in r.stdout, r.stdout

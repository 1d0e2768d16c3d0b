"""InstallerUpgrade.reconcile's decisions, on real processes (no lab): vcwave may die between starting the
installer and journaling its pid; the resumed step must find that installer, wait for it, and never start a
second one. (The lab crash sweeps cover the same path end to end; this pins the decision table.)"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.clients.installer import OUTPUT_LOG, installer_processes
from orchestrator.errors import StepFailed
from orchestrator.log import get_logger
from orchestrator.steps.base import NOT_DONE
from orchestrator.steps.installer import InstallerUpgrade


def _ctx(progress: list[dict]):
    """Just what reconcile reads: the step's mid-step facts (newest last), options, node, logger."""
    def last_progress(key):
        return next((p for p in reversed(progress) if key in p), None)
    return SimpleNamespace(node=SimpleNamespace(name="vc-a", vm=None), last_progress=last_progress,
                           options=SimpleNamespace(poll_interval=0.01, deadline_scale=0.0001),
                           log=get_logger("test"), target=SimpleNamespace(release="6.5 U1"))


@pytest.fixture
def fake_installer(tmp_path):
    """A process that looks like a running installer: its command line names the run's private template."""
    private = tmp_path / "vcwave-installer-abc"
    private.mkdir()
    (private / "upgrade.json").write_text("{}")
    procs = []

    def start(seconds: float):
        p = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})", "upgrade",
                              str(private / "upgrade.json")])
        procs.append(p)
        end = time.monotonic() + 10  # until exec: a forked child shows its parent's command line at first
        while str(private).encode() not in Path(f"/proc/{p.pid}/cmdline").read_bytes():
            assert time.monotonic() < end
            time.sleep(0.005)
        return p
    yield private, start
    for p in procs:
        p.kill()
        p.wait()


def test_installer_processes_finds_a_run_by_its_private_dir(fake_installer, tmp_path):
    private, start = fake_installer
    p = start(5)
    assert installer_processes(private) == [p.pid]
    assert installer_processes(tmp_path / "another-run") == []
    assert installer_processes(private, proc_root=tmp_path / "no-proc") == []  # no /proc: nothing found


def test_pid_never_journaled_the_running_installer_is_found_and_waited_for(fake_installer, tmp_path, monkeypatch):
    private, start = fake_installer
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    p = start(0.4)
    seen = []

    def already_there(self, ctx, patience=0.0):
        seen.append((p.poll() is not None, patience > 0))
        return {"version_after": "6.5 U1", "build_after": "1"}

    monkeypatch.setattr(InstallerUpgrade, "_already_there", already_there)
    ctx = _ctx([{"new_vm": "vc-a-new"}, {"installer_log_dir": str(log_dir), "private_dir": str(private)}])
    t0 = time.monotonic()
    assert InstallerUpgrade().reconcile(ctx, None) == {"version_after": "6.5 U1", "build_after": "1"}
    assert time.monotonic() - t0 >= 0.3
    assert seen == [(True, True)]  # looked at the node only once the installer had exited, with patience
    assert not private.exists()  # the secrets template is removed


def test_launched_but_never_started_is_not_done(tmp_path, monkeypatch):
    """Killed after the launch record, before the process existed: nothing ran, the step may run."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    monkeypatch.setattr(InstallerUpgrade, "_already_there", lambda self, ctx, patience=0.0: None)
    ctx = _ctx([{"installer_log_dir": str(log_dir), "private_dir": str(tmp_path / "gone")}])
    assert InstallerUpgrade().reconcile(ctx, None) == NOT_DONE


def test_an_installer_that_ran_and_left_the_node_behind_is_never_rerun(tmp_path, monkeypatch):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / OUTPUT_LOG).write_text("[START] vcsa-deploy upgrade\n")
    monkeypatch.setattr(InstallerUpgrade, "_already_there", lambda self, ctx, patience=0.0: None)
    ctx = _ctx([{"installer_log_dir": str(log_dir), "private_dir": str(tmp_path / "gone")}])
    with pytest.raises(StepFailed, match="Do not re-run blindly"):
        InstallerUpgrade().reconcile(ctx, None)


def test_a_pid_from_an_earlier_attempt_is_not_this_runs_pid(tmp_path, monkeypatch):
    """An earlier attempt's pid record (another private dir) must not count for the newest launch."""
    monkeypatch.setattr(InstallerUpgrade, "_already_there", lambda self, ctx, patience=0.0: None)
    ctx = _ctx([{"installer_log_dir": str(tmp_path / "old"), "private_dir": "/tmp/old-run"},
                {"installer_pid": 999999, "private_dir": "/tmp/old-run"},
                {"installer_log_dir": str(tmp_path / "new"), "private_dir": str(tmp_path / "new-run")}])
    assert InstallerUpgrade().reconcile(ctx, None) == NOT_DONE


def test_after_an_installer_run_a_silent_address_is_asked_again_until_it_answers(monkeypatch):
    """Right after the installer, the address passes from the source to the new appliance: with patience
    the step waits for an answer instead of calling the node 'not at target' at its first refusal."""
    from orchestrator.core.versions import parse_version
    from orchestrator.steps import installer as step_mod

    target = parse_version("6.5 U1")
    answers = [SimpleNamespace(version=None, errors=["appliance: connection refused"]),
               SimpleNamespace(version=None, errors=["appliance: connection refused"]),
               SimpleNamespace(version=target, errors=[])]
    monkeypatch.setattr(step_mod, "gather", lambda conns, node, fingerprint, health: answers.pop(0))
    monkeypatch.setattr(step_mod, "current_domain_version", lambda ctx: "6.5 U1")
    monkeypatch.setattr(InstallerUpgrade, "_keep_source", staticmethod(lambda *a, **k: None))
    ctx = _ctx([])
    ctx.target, ctx.conns, ctx.step = target, None, SimpleNamespace(from_="6.0 U3")
    assert InstallerUpgrade()._already_there(ctx, patience=5.0)["version_after"] == "6.5 U1"
    assert answers == []
    answers[:] = [SimpleNamespace(version=None, errors=["appliance: connection refused"])] * 3
    assert InstallerUpgrade()._already_there(ctx) is None  # no patience: one question only
    assert len(answers) == 2

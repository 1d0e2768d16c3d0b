"""A kill -9 during an installer run leaves its filled template (SSO and root passwords) on disk: it must be
under the state folder (0700), never in the system temp folder, and the next command must remove it once
its installer is gone too. Real processes, a real SIGKILL; no lab."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from orchestrator.clients.installer import installer_processes, sweep_leftovers
from orchestrator.commands.plan import run as plan_run
from orchestrator.commands.session import CommonFlags, session
from orchestrator.steps.installer import private_root
from tests.lab.test_installer_standin import FAKE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "single-site.yml"

# The child: the real runner, a fake installer that prints, then sleeps (the precheck of a slow appliance).
CHILD = r'''
import sys
from pathlib import Path
from tests.lab.test_installer_standin import SECRETS, make_runner, runner_template
tmp, fake = Path(sys.argv[1]), Path(sys.argv[2])
runner, _ = make_runner(fake, tmp, sleep=120)
runner.private_root = Path(sys.argv[3])
runner.precheck(runner_template(), SECRETS)
'''


def _wait_for(cond, seconds: float = 30.0) -> None:
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def killed_precheck(tmp_path):
    """A vcwave process killed -9 in the middle of an installer precheck; yields (root, folder, installer pid)."""
    fake = tmp_path / "vcsa-deploy"
    fake.write_text(f"#!{sys.executable}\n" + FAKE)
    fake.chmod(0o755)
    root = private_root(tmp_path / "state", "vsphere.local")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(fake), str(root)], cwd=ROOT,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    report = tmp_path / "report.json"
    installer = None
    try:
        _wait_for(lambda: report.exists() and report.stat().st_size > 0)
        installer = json.loads(report.read_text())["pid"]
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        folders = list(root.iterdir())
        assert len(folders) == 1 and (folders[0] / "upgrade.json").exists()
        yield root, folders[0], installer, child.pid
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if installer and not _gone(installer):
            os.kill(installer, signal.SIGKILL)


def test_template_lives_under_the_state_folder_and_is_swept_once_its_installer_ends(killed_precheck):
    root, folder, installer, vcwave_pid = killed_precheck
    assert root.stat().st_mode & 0o777 == 0o700 and folder.stat().st_mode & 0o777 == 0o700
    assert not list(Path(tempfile.gettempdir()).glob(f"vcwave-installer-{vcwave_pid}-*"))
    assert installer_processes(folder) == [installer]
    assert sweep_leftovers(root) == [] and folder.exists()  # the installer outlived vcwave and still runs
    os.kill(installer, signal.SIGKILL)
    _wait_for(lambda: _gone(installer))
    assert sweep_leftovers(root) == [folder] and not folder.exists()


def test_the_next_command_removes_a_dead_runs_template(killed_precheck, tmp_path, monkeypatch):
    root, folder, installer, _ = killed_precheck
    os.kill(installer, signal.SIGKILL)
    _wait_for(lambda: _gone(installer))
    for var in ("VCWAVE_SSO_PASSWORD", "VCWAVE_ROOT_PASSWORD", "VCWAVE_BACKUP_PASSWORD"):
        monkeypatch.setenv(var, "Not-Used-9!")
    plan = tmp_path / "plan.json"
    plan_run(str(EXAMPLE), "6.7 U1", out=str(plan))
    with session(CommonFlags(inventory=str(EXAMPLE), plan=str(plan), state_dir=str(tmp_path / "state")), "status",
                 mutate=False):
        assert not folder.exists()


def test_a_live_runs_template_is_kept(tmp_path):
    """A folder named after a vcwave that still runs (another command on the same state folder) is not touched."""
    root = private_root(tmp_path / "state", "d")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = root / f"vcwave-installer-{sleeper.pid}-abc"
        folder.mkdir(parents=True)
        assert sweep_leftovers(root) == [] and folder.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sweep_leftovers(root) == [folder]

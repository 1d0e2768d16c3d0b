"""Crash points: kill -9 at a step boundary, mid-job, inside the installer or right after a record, then resume.

Each point: a fresh lab, the rehearsal's commands as real `invoke` processes, SIGKILL of the command's
process group at the point (seen from outside in the journal, or in the lab while an installer runs), then the
same command again with --break-stale-lock and the rest of the sequence. Must hold after every point: each
node upgraded exactly once, every backup recorded once, the journal opens, the domain at target and verified.

Tiers: the default run keeps one representative point per step kind (a file backup, a cold snapshot set, an
installer run; the update-API install's kill -9 is tests/engine/test_live_steps_lab.py's, tests/TIERS.md);
`--full` adds the other hand-picked points and the sweep of EVERY enumerated point on both upgrade paths (the
same as `python -m lab.harness crash`). Each point is a test of its own on its own lab, so the xdist workers
share them out and a failure names its point.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_vcsim

from lab.harness import CrashPoint, crash_points, run_point

ROOT = Path(__file__).resolve().parents[2]
TWO_SITE = str(ROOT / "examples" / "two-site.yml")
TWO_SITE_60 = str(ROOT / "examples" / "two-site-6.0.yml")
UPDATE, INSTALLER = (TWO_SITE, "6.7 U3"), (TWO_SITE_60, "6.5 U1")

# indices into lab.harness.sequence(): 2 backup pre, 4 upgrade psc, 5 upgrade vcenter
PSC, VC = 4, 5
# The lab clock: no duration is asserted here, so a 40-minute install lasts 0.5 s (the harness's own default,
# 0.0005, is what `invoke bench.faults` measures with).
SCALE = 0.0002
full = pytest.mark.full
# one point = a lab and the whole command sequence (~15 s on a loaded 2-CPU machine): more than the default
pytestmark = pytest.mark.timeout(180)
UPDATE_POINTS = [
    # the update-API install killed mid-job: in the default tier as test_live_steps_lab's SIGKILL inside the
    # install's reboot and SIGTERM while it runs (both a lab each, half this point's commands): tests/TIERS.md
    pytest.param(CrashPoint(PSC, "upgrade psc", "mid", 2), id="psc-b-update-install-running", marks=full),
    pytest.param(CrashPoint(PSC, "upgrade psc", "boundary", 1), id="psc-a-started-nothing-done", marks=full),
    pytest.param(CrashPoint(PSC, "upgrade psc", "boundary", 6), id="psc-b-upgraded-not-verified", marks=full),
    pytest.param(CrashPoint(VC, "upgrade vcenter", "boundary", 3), id="in-window-backups", marks=full),
    pytest.param(CrashPoint(VC, "upgrade vcenter", "mid", 5), id="vcenter-install-running", marks=full),
    pytest.param(CrashPoint(VC, "upgrade vcenter", "boundary", 12), id="vcenter-wave-late", marks=full),
]
INSTALLER_POINTS = [
    pytest.param(CrashPoint(PSC, "upgrade psc", "lab:install_started", 1), id="stage2-in-flight"),  # default
    pytest.param(CrashPoint(VC, "upgrade vcenter", "mid", 1), id="installer-about-to-run", marks=full),
]
RECORD_POINTS = [
    pytest.param(CrashPoint(2, "backup pre", "after:backup", 1), id="file-backup"),  # default
    pytest.param(CrashPoint(2, "backup pre", "after:backup", 6), id="cold-snapshot-set-member"),  # default
]


@pytest.fixture(scope="module", autouse=True)
def _vcsim():
    require_vcsim()


def _survive(path: tuple[str, str], point: CrashPoint, tmp_path: Path):
    inventory, target = path
    r = run_point(inventory, target, tmp_path / "point", point, time_scale=SCALE)
    print("\n" + r.line())
    return r


@pytest.mark.parametrize("point", UPDATE_POINTS)
def test_update_api_waves_survive_sigkill(point, tmp_path):
    r = _survive(UPDATE, point, tmp_path)
    assert r.hit, r.line()
    assert r.ok, r.line()


@pytest.mark.parametrize("point", INSTALLER_POINTS)
def test_installer_path_survives_sigkill_without_a_second_install(point, tmp_path):
    """Fixed (815d2fc, 0b5e411, 31b45b4): an installer run outlives a killed vcwave (own session, output to a
    file); the resumed step finds it by its journaled pid or its private folder, waits for it and looks at
    the node: it never starts a second install, and a node already at the target is never re-run. And the
    in-window snapshot set snapshots the new appliances, never powering a kept source on beside them."""
    r = _survive(INSTALLER, point, tmp_path)
    assert r.hit, r.line()
    assert r.ok, r.line()


@pytest.mark.parametrize("point", RECORD_POINTS)
def test_a_backup_is_recorded_once_across_a_crash(point, tmp_path):
    """Fixed (815d2fc): a crash after a backup's `backup` record but before its step's `succeeded` event no
    longer records it again: a finished file backup is adopted; a cold snapshot set is all-or-nothing on
    resume (recorded once if every member has its snapshot, else powered back on and taken again)."""
    r = _survive(UPDATE, point, tmp_path)
    assert r.hit, r.line()
    assert r.ok, r.line()


@full
@pytest.mark.timeout(3 * 3600)
@pytest.mark.parametrize("path", [pytest.param(UPDATE, id="update-path"), pytest.param(INSTALLER, id="installer-path")])
def test_every_enumerated_crash_point_survives(path, tmp_path):
    """The whole sweep: a clean run counts every boundary, mid-job event, install and record of the
    sequence; each one is then a kill -9 point of its own (hundreds of labs: `--full` only)."""
    inventory, target = path
    res = crash_points(inventory, target, tmp_path / "sweep", time_scale=SCALE, say=print)
    print("\n" + res.summary())
    assert res.total == res.enumerated > 0
    assert res.ok, res.summary()

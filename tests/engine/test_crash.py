"""Crash points, reduced for CI (the full sweep: `python -m lab.harness crash`).

Each point: a fresh lab, the rehearsal's commands as `invoke` subprocesses, SIGKILL of the command's process
group at the point (seen from outside in the journal, or in the lab while an installer runs), then the same
command again with --break-stale-lock and the rest of the sequence. Must hold after every point: each node
upgraded exactly once, every backup recorded once, the journal opens, the domain at target and verified.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_vcsim

from lab.harness import CrashPoint, crash_points

ROOT = Path(__file__).resolve().parents[2]
TWO_SITE = str(ROOT / "examples" / "two-site.yml")
TWO_SITE_60 = str(ROOT / "examples" / "two-site-6.0.yml")

# indices into lab.harness.sequence(): 2 backup pre, 4 upgrade psc, 5 upgrade vcenter
PSC, VC = 4, 5
TWO_SITE_POINTS = [
    CrashPoint(PSC, "upgrade psc", "boundary", 1),    # psc-a upgrade journaled started, nothing done yet
    CrashPoint(PSC, "upgrade psc", "mid", 2),         # psc-b update install running on the appliance
    CrashPoint(PSC, "upgrade psc", "boundary", 6),    # psc-b upgraded, its verify not yet
    CrashPoint(VC, "upgrade vcenter", "boundary", 3),  # during the in-window backups
    CrashPoint(VC, "upgrade vcenter", "mid", 5),      # a vCenter install running
    CrashPoint(VC, "upgrade vcenter", "boundary", 12),
]
INSTALLER_POINTS = [
    CrashPoint(VC, "upgrade vcenter", "mid", 1),      # installer about to run (progress journaled)
    CrashPoint(PSC, "upgrade psc", "lab:install_started", 1),  # killed while the installer's stage 2 is in flight
]
RECORD_POINTS = [
    CrashPoint(2, "backup pre", "after:backup", 1),   # a file backup recorded, its step not yet succeeded
    CrashPoint(2, "backup pre", "after:backup", 6),   # inside a cold snapshot set's records
]


@pytest.fixture(scope="module", autouse=True)
def _vcsim():
    require_vcsim()


def _by_label(result):
    print("\n" + result.summary())
    return {p.point.label: p for p in result.points}


@pytest.fixture(scope="module")
def two_site(tmp_path_factory):
    return _by_label(crash_points(TWO_SITE, "6.7 U3", tmp_path_factory.mktemp("crash2"), points=TWO_SITE_POINTS))


@pytest.fixture(scope="module")
def installer(tmp_path_factory):
    return _by_label(crash_points(TWO_SITE_60, "6.5 U1", tmp_path_factory.mktemp("crash60"),
                                  points=INSTALLER_POINTS))


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return _by_label(crash_points(TWO_SITE, "6.7 U3", tmp_path_factory.mktemp("crashrec"), points=RECORD_POINTS))


@pytest.mark.parametrize("label", [p.label for p in TWO_SITE_POINTS])
def test_update_api_waves_survive_sigkill(two_site, label):
    r = two_site[label]
    assert r.hit, r.line()
    assert r.ok, r.line()


@pytest.mark.xfail(strict=True, reason="needs steps branch: the installer path's in-window snapshot set powers "
                                       "the kept source VMs on beside the new appliances (two VMs, one identity), "
                                       "which the harness now checks from the lab, killed or not")
@pytest.mark.parametrize("label", [p.label for p in INSTALLER_POINTS])
def test_installer_path_survives_sigkill_without_a_second_install(installer, label):
    """Product bug (the install point): InstallerUpgrade.reconcile answers NOT_DONE while the killed
    installer's stage 2 is still completing (node not yet at target, source VM still on), so the resumed
    wave launches a second install; that one is refused and the step then fails forever, because
    InstallerUpgrade.run never checks whether the node already answers at the target."""
    r = installer[label]
    assert r.hit, r.line()
    assert r.ok, r.line()


@pytest.mark.parametrize("label", [p.label for p in RECORD_POINTS])
def test_a_backup_is_recorded_once_across_a_crash(records, label):
    """Product bug: a crash after a backup's `backup` record but before its step's `succeeded` event makes
    the resumed step record it again (FileBackup.reconcile -> _finish -> _record_backup with the same job
    id; SnapshotSetBackup.reconcile answers NOT_DONE and a second set is taken and recorded)."""
    r = records[label]
    assert r.hit, r.line()
    assert r.ok, r.line()

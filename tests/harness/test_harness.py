"""The harness itself (lab/harness.py) and the transient-fault rehearsal."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_vcsim

from lab import harness
from lab.harness import CrashPoint, JournalWatch, spread, transient, transient_spec
from lab.faults import Faults
from orchestrator.engine.journal import Journal

ROOT = Path(__file__).resolve().parents[2]


def test_spread_keeps_every_kind():
    pts = [CrashPoint(4, "upgrade psc", "boundary", n) for n in range(1, 40)]
    pts += [CrashPoint(5, "upgrade vcenter", "mid", 1), CrashPoint(4, "upgrade psc", "reboot", 1, 0.3),
            CrashPoint(4, "upgrade psc", "lab:install_started", 1)]
    chosen = spread(pts, 6)
    assert len(chosen) == 6 and len(set(chosen)) == 6
    assert {"boundary", "mid", "reboot", "lab:install_started"} <= {p.kind for p in chosen}
    assert spread(pts, None) == pts and spread(pts, 0) == []


def test_journal_watch_reads_from_outside_read_only(tmp_path):
    path = tmp_path / "vsphere.local" / "journal.sqlite"
    j = Journal.open(path)
    w = JournalWatch(path)
    try:
        j.append("step", run_id="r", node="psc-a", step="psc/upgrade/psc-a", action="upgrade", status="started")
        j.append("step", run_id="r", node="psc-a", step="psc/upgrade/psc-a", action="upgrade", status="started",
                 data={"progress": True, "install": "6.7.0.40000"})
        assert (w.boundaries(), w.mids()) == (1, 1)
        j.append("step", run_id="r", node="psc-a", step="psc/upgrade/psc-a", action="upgrade", status="succeeded")
        assert (w.boundaries(), w.mids(), w.max_seq()) == (2, 1, 3)
        assert w.boundaries(since=2) == 1
    finally:
        w.close()
        j.close()
    Journal.open(path).close()  # the watcher never damaged it


def test_transient_spec_is_about_twenty_percent_and_valid():
    spec = transient_spec(0.2)
    Faults(spec)  # the lab accepts it
    probs = [f.get("probability", 0) for f in spec["faults"]]
    assert 0.14 <= sum(probs) <= 0.2  # + session expiry every 25 calls: ~20 % of the calls
    assert any(f["type"] == "expire_sessions" for f in spec["faults"])


def test_fast_argv_runs_the_production_cli(tmp_path):
    r = harness.run_cli(["plan", "--inventory", str(ROOT / "examples" / "two-site.yml"), "--target", "6.7 U3",
                         "--out", str(tmp_path / "plan.json")], tmp_path, harness.cli_env())
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "plan.json").exists()
    bad = harness.run_cli(["upgrade", "--wave", "site-a", "--plan", str(tmp_path / "plan.json")], tmp_path,
                          harness.cli_env())
    assert bad.returncode == 2 and "--wave must be psc or vcenter" in bad.stderr


@pytest.mark.full  # default: the retries per fault kind, tests/TIERS.md
def test_transient_faults_rehearsal_completes(tmp_path):
    """~20 % of the calls answer 503, lose their connection or find their session expired: the rehearsal still
    completes. Fixed (a20a9a2, 189f190): a reset on a non-idempotent start (e.g. `POST .../recovery/backup/job`)
    is not repeated by the client; the step looks at the node instead and adopts the job it finds there, and
    starts it again only when nothing is there."""
    require_vcsim()
    retries = transient(ROOT / "examples" / "two-site.yml", tmp_path / "transient", 0.2)
    print(f"\nretries under ~20% transient faults: {retries}")
    assert retries > 0


def test_enumeration_starts_from_an_empty_workdir(tmp_path, monkeypatch):
    """Regression: a journal left by an earlier sweep made every command 'already done' (0 of 0 points)."""
    import contextlib

    stale = tmp_path / "clean" / "state" / "vsphere.local" / "journal.db"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by an earlier sweep")
    seen = []

    @contextlib.contextmanager
    def no_lab(inventory, lab_dir, time_scale, faults=None):
        seen.append(stale.exists())
        raise RuntimeError("stop here")
        yield  # pragma: no cover

    monkeypatch.setattr(harness, "_lab", no_lab)
    with pytest.raises(RuntimeError, match="stop here"):
        harness.enumerate_points("examples/two-site.yml", "6.7 U3", tmp_path / "clean")
    assert seen == [False]


@pytest.fixture(scope="module")
def killed_in_reboot(tmp_path_factory):
    """Issue 14: SIGKILL while psc-a reboots at the end of its install, 5 % into it, then the same command
    again and the rest of the sequence. psc-a's install runs 24x slower than the rest of the lab, so its reboot
    lasts 10.8 s (in the proportions of a real install) and the re-run, 1-5 s later on a busy machine, meets it."""
    require_vcsim()
    point = CrashPoint(4, "upgrade psc", "reboot", 1, 0.05)
    res = harness.crash_points(ROOT / "examples" / "two-site.yml", "6.7 U3", tmp_path_factory.mktemp("reboot"),
                               points=[point], workers=1, faults=harness.SLOW_REBOOTS[:1])
    print("\n" + res.summary())
    return res.points[0]


@pytest.mark.full  # default: test_live_steps_lab's SIGKILL in a reboot (TIERS.md)
def test_the_kill_lands_inside_the_reboot(killed_in_reboot):
    r = killed_in_reboot
    assert r.hit and "into psc-a's 10.80s reboot" in r.killed_at, r.line()


@pytest.mark.full  # default: test_live_steps_lab's SIGKILL in a reboot (TIERS.md)
def test_a_kill_inside_a_reboot_converges_with_one_install_per_node(killed_in_reboot):
    """Every node ends installed exactly once per the lab's own record, answering at the target."""
    assert killed_in_reboot.ok, killed_in_reboot.line()


def _event(step: str, action: str, status: str, **data):
    from types import SimpleNamespace
    return SimpleNamespace(kind="step", node=step.rsplit("/", 1)[-1], step=step, action=action, status=status,
                           data=data)


def test_a_change_done_twice_is_found_but_a_precheck_run_again_is_not():
    """Sweep of issue 14: `invoke precheck` re-runs every precheck on purpose (the window opens only after a
    recent one), so its resume after a kill succeeds each precheck twice; a second install is a real problem."""
    events = [_event("pre/precheck/psc-a", "precheck", "succeeded"),
              _event("pre/precheck/psc-a", "precheck", "succeeded"),
              _event("psc/upgrade/psc-a", "upgrade", "succeeded"),
              _event("psc/upgrade/psc-a", "upgrade", "reconciled", outcome="succeeded"),
              _event("psc/upgrade/psc-b", "upgrade", "succeeded"),
              _event("psc/upgrade/psc-b", "upgrade", "reconciled", outcome="not_done")]
    assert harness.changes_repeated(events) == ["step psc/upgrade/psc-a on psc-a succeeded 2 times"]


def test_a_sweep_reports_hits_reboots_convergence_installs_and_wall_time():
    pr = harness.PointResult
    res = harness.HarnessResult("two-site.yml", "6.7 U3", name="reboots", seconds=61.4, points=[
        pr(CrashPoint(4, "upgrade psc", "reboot", 1, 0.3), hit=True, ok=True, in_reboot="psc-a",
           installs={"psc-a": 1, "vc-a": 1}),
        pr(CrashPoint(4, "upgrade psc", "random", 1, 2.0), hit=True, ok=False, problems=["x"],
           installs={"psc-a": 2, "vc-a": 1}),
        pr(CrashPoint(5, "upgrade vcenter", "reboot", 1, 0.9), missed=True)])
    assert res.figures() == {"kill points hit": "2 of 3 (1 missed)", "inside a reboot": "1",
                             "every re-run converged": "no (1/2 (1 missed))",
                             "installs per node (lab record)": "psc-a 1-2, vc-a 1", "wall time": "61 s"}


@pytest.mark.full
@pytest.mark.timeout(300)
def test_a_file_restore_rollback_killed_while_restoring_converges(tmp_path):
    """Kill sweep of issue 14 (file restore): the bad day rolled back by file restores onto freshly deployed
    appliances. Before the fix every re-run dead-ended: the rollback's first actions power every vCenter off,
    then the restore into that (powered-off) appliance met 'connection refused'. SIGKILL as vc-a's restore
    starts, resume: every node back at its version with its instance UUID."""
    require_vcsim()
    cmds = [c.name for c in harness.sequence("inv.yml", tmp_path, "6.7 U3", "x", rollback=True, restore="file")]
    assert "--snapshots" not in " ".join(a for c in harness.sequence("inv.yml", tmp_path, "6.7 U3", "x", True,
                                                                     "file") for a in c.args)
    point = CrashPoint(cmds.index("rollback"), "rollback", "lab:restore_started", 3)
    res = harness.crash_points(ROOT / "examples" / "two-site.yml", "6.7 U3", tmp_path / "file", points=[point],
                               workers=1, rollback=True, restore="file")
    print("\n" + res.summary())
    assert res.points[0].hit and res.ok, res.summary()


def test_bench_faults_runs_only_the_named_sweeps_and_prints_their_figures(tmp_path, monkeypatch):
    from orchestrator.errors import InputError
    ran = []

    def fake(inventory, target, workdir, *, name="", **kw):
        ran.append(name)
        return harness.HarnessResult(str(inventory), target, name=name, seconds=3.0, points=[
            harness.PointResult(CrashPoint(4, "upgrade psc", "reboot", 1, 0.5), hit=True, ok=True, in_reboot="psc-a",
                                installs={"psc-a": 1})])

    monkeypatch.setattr(harness, "crash_points", fake)
    out = harness.main_report(workdir=tmp_path, only=["long reboots", "file restore"])
    assert ran == ["long reboots", "file restore"]  # in bench order; no transient or bad-input run
    for line in ("long reboots: inside a reboot: 1", "file restore: every re-run converged: yes (1/1)",
                 "file restore: installs per node (lab record): psc-a 1", "long reboots: wall time: 3 s"):
        assert line in out
    with pytest.raises(InputError, match="no sweep named nope"):
        harness.main_report(workdir=tmp_path, only=["nope"])


@pytest.mark.full
@pytest.mark.timeout(300)
def test_a_kill_inside_the_in_window_snapshot_set_is_reconciled_before_the_live_guard(tmp_path):
    """Kill sweep of issue 14 (installer path): SIGKILL as the vCenter wave's cold snapshot set powers the
    first VM off. Before the fix every re-run was refused (exit 2, "vc-a is not upgraded while a PSC it depends
    on does not answer: psc-a"): the live guard ran before the reconciliation that powers the set back on."""
    require_vcsim()
    point = CrashPoint(5, "upgrade vcenter", "lab:power_off", 1)
    res = harness.crash_points(ROOT / "examples" / "two-site-6.0.yml", "6.5 U1", tmp_path / "inst", points=[point],
                               workers=1)
    print("\n" + res.summary())
    assert res.points[0].hit and res.ok, res.summary()

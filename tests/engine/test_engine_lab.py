"""The engine against the real lab twin (vcsim + appliance REST twin): whole runs, refusals, a failed install,
the domain lock, a torn journal, the seed's installer path with its rollback, and the method choice.

Commands run the way an administrator runs them: `invoke ...` subprocesses (lab.harness.run_cli; exit codes
and stderr are the production ones) or, for the long happy paths, the same orchestrator.commands functions
`invoke` calls, with the lab's poll interval. Facts are read from outside: the lab's `/lab/state`, its
management vcsim, and the journal folded by orchestrator.core.history.
"""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_vcsim

from lab import manage
from lab.harness import JournalWatch, cli_env, journal_file, lab_versions, run_cli, spawn
from lab.installer_standin import ENV_LAB_DIR, standin_path
from lab.rehearse import deadline_scale
from orchestrator.commands import plan as plan_cmd
from orchestrator.commands import rollback as rollback_cmd
from orchestrator.commands import waves
from orchestrator.commands.session import CommonFlags
from orchestrator.core.history import fold
from orchestrator.core.inventory import load_inventory
from orchestrator.engine.journal import Journal

ROOT = Path(__file__).resolve().parents[2]
TWO_SITE = ROOT / "examples" / "two-site.yml"
TWO_SITE_60 = ROOT / "examples" / "two-site-6.0.yml"
SINGLE_SITE = ROOT / "examples" / "single-site.yml"
SCALE = 0.0002  # the lab clock: outcomes are asserted here, never durations


@pytest.fixture(scope="module", autouse=True)
def _vcsim():
    require_vcsim()


class Domain:
    """A running lab + the flags/paths of one vcwave workdir on it."""

    def __init__(self, wd: Path, info: dict, target: str) -> None:
        self.wd, self.info, self.target = wd, info, target
        self.lab_dir = wd / "lab"
        self.inventory = info["inventory"]
        self.plan = wd / "plan.json"
        self.state = wd / "state"
        self.installer = str(standin_path(target))
        self.flags = CommonFlags(inventory=self.inventory, plan=str(self.plan), state_dir=str(self.state),
                                 installer=self.installer, poll_interval=0.02,
                                 deadline_scale=deadline_scale(SCALE))
        self.env = cli_env(self.lab_dir)

    def common(self) -> list[str]:
        return ["--inventory", self.inventory, "--plan", str(self.plan), "--state-dir", str(self.state)]

    def cli(self, *args: str, fast: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return run_cli(list(args), self.wd, self.env, fast=fast, timeout=timeout)

    def events(self, **filters):
        j = Journal.open(journal_file(self.wd))
        try:
            return j.events(**filters)
        finally:
            j.close()

    def history(self):
        return fold(load_inventory(self.inventory), self.events())

    def step_events(self) -> int:
        w = JournalWatch(journal_file(self.wd))
        try:
            return w.query("kind = 'step'")
        finally:
            w.close()

    def versions(self) -> dict[str, str]:
        return lab_versions(self.lab_dir)

    def lab_state(self) -> dict:
        return manage.control(self.lab_dir, "/lab/state")

    def prepare(self) -> None:
        """plan, precheck, backup (pre), stage: everything before the window."""
        plan_cmd.run(self.inventory, self.target, str(self.plan))
        waves.precheck(self.flags)
        waves.backup(self.flags, "pre")
        waves.stage(self.flags)


def _domain(tmp: Path, inventory: Path, target: str, **kw):
    lab_dir = tmp / "lab"
    old = os.environ.get(ENV_LAB_DIR)
    os.environ[ENV_LAB_DIR] = str(lab_dir.resolve())
    try:
        with manage.running(str(inventory), lab_dir, time_scale=SCALE, warm=True, **kw) as info:
            yield Domain(tmp, info, target)
    finally:
        if old is None:
            os.environ.pop(ENV_LAB_DIR, None)
        else:
            os.environ[ENV_LAB_DIR] = old


@pytest.fixture
def prepared(tmp_path):
    """two-site at 6.7 U1, prepared for 6.7 U3 (plan, precheck, pre backups, staged)."""
    for d in _domain(tmp_path, TWO_SITE, "6.7 U3"):
        d.prepare()
        yield d


# --------------------------------------------------------------------------------- the whole run, two-site
@pytest.fixture(scope="module")
def two_site(tmp_path_factory):
    """The full 6.7 U1 -> 6.7 U3 run, with the refusals and --check probes taken before the psc wave."""
    obs: dict = {}
    for d in _domain(tmp_path_factory.mktemp("two-site"), TWO_SITE, "6.7 U3"):
        d.prepare()
        obs["plan"] = json.loads(d.plan.read_text())
        before_events, before_versions = d.step_events(), d.versions()
        obs["vc_early"] = d.cli("upgrade", "--wave", "vcenter", *d.common(), "--installer", d.installer)
        obs["check_vc"] = d.cli("upgrade", "--wave", "vcenter", "--check", *d.common())
        obs["check_psc"] = d.cli("upgrade", "--wave", "psc", "--check", *d.common())
        obs["probe_changed"] = (d.step_events() - before_events, before_versions, d.versions())
        obs["psc_wave"] = waves.upgrade(d.flags, "psc")
        obs["check_psc_after"] = d.cli("upgrade", "--wave", "psc", "--check", *d.common())
        obs["vc_wave"] = waves.upgrade(d.flags, "vcenter")
        obs["verify"] = waves.verify(d.flags)
        obs["status"] = d.cli("status", "--plan", str(d.plan), "--state-dir", str(d.state), "--json", fast=False)
        obs["hist"] = d.history()
        obs["versions"] = d.versions()
        obs["lab"] = d.lab_state()
        obs["events"] = d.events(kind="step")
        yield obs


def test_full_run_every_node_at_target_verified_and_upgraded_once(two_site):
    assert set(two_site["versions"].values()) == {"6.7 U3"}, two_site["versions"]
    hist = two_site["hist"]
    for name, h in hist.nodes.items():
        assert h.upgraded == 1, (name, h)
        assert h.version.release == "6.7 U3" and h.verified_at == "6.7 U3", (name, h)
    assert not hist.failed_steps and not hist.running_steps
    assert hist.window_opened is not None and hist.window_closed is not None
    succeeded = [e for e in two_site["events"] if e.action == "upgrade" and e.status == "succeeded"]
    assert sorted(e.node for e in succeeded) == ["psc-a", "psc-b", "vc-a", "vc-b"]


def test_status_json_says_so(two_site):
    r = two_site["status"]
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["domain_version"] == "6.7 U3" and st["target"] == "6.7 U3"
    assert {n["node"]: (n["version"], n["upgrades"], n["verified_at"]) for n in st["nodes"]} == {
        n: ("6.7 U3", 1, "6.7 U3") for n in ("psc-a", "psc-b", "vc-a", "vc-b")}
    assert st["phases"]["psc"] == "done" and st["phases"]["vcenter"] == "done"
    assert st["window"]["state"] == "closed"


def test_vcenter_wave_refused_before_psc_wave(two_site):
    r = two_site["vc_early"]
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "invoke: error:" in r.stderr and "upgrade --wave psc" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_check_changes_nothing(two_site):
    for key in ("check_vc", "check_psc"):
        r = two_site[key]
        assert r.returncode in (0, 2), (key, r.returncode, r.stderr)
    r = two_site["check_psc"]
    assert r.returncode == 0, r.stderr
    assert "check: nothing changed" in r.stdout and "would run: psc/upgrade/psc-a" in r.stdout, r.stdout
    new_events, before, after = two_site["probe_changed"]
    assert new_events == 0, "a --check run journaled step events"
    assert before == after == {n: "6.7 U1" for n in ("psc-a", "psc-b", "vc-a", "vc-b")}
    after_wave = two_site["check_psc_after"]
    assert after_wave.returncode == 0 and "would run" not in after_wave.stdout, after_wave.stdout


def test_update_api_for_a_67_patch(two_site):
    """6.7 U1 -> 6.7 U3 is a patch: the appliance update API ("update"), staged before the window."""
    ups = [s for ph in two_site["plan"]["phases"] for s in ph["steps"] if s["action"] == "upgrade"]
    assert len(ups) == 4 and {s["method"] for s in ups} == {"update"}, ups
    assert all(n["patched"] for n in two_site["lab"]["nodes"].values())  # the lab saw update-API installs


def test_installer_for_65_to_67(tmp_path):
    out = tmp_path / "plan.json"
    r = run_cli(["plan", "--inventory", str(SINGLE_SITE), "--target", "6.7 U1", "--out", str(out), "--json"],
                tmp_path, cli_env(), fast=False)
    assert r.returncode == 0, r.stderr
    ups = [s for ph in json.loads(out.read_text())["phases"] for s in ph["steps"] if s["action"] == "upgrade"]
    assert ups and {s["method"] for s in ups} == {"installer"}, ups


# --------------------------------------------------------------------------------- a failed PSC install
def test_failed_psc_install_stops_the_wave_and_touches_no_vcenter(prepared):
    d = prepared
    manage.control(d.lab_dir, "/lab/faults", {"seed": 1, "faults": [
        {"type": "fail_step", "node": "psc-b", "step": "install", "message": "vmdird did not start", "times": 0}]})
    r = d.cli("upgrade", "--wave", "psc", *d.common(), "--installer", d.installer)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "FAILED psc/upgrade/psc-b" in r.stderr, r.stderr
    assert "vmdird did not start" in r.stderr
    assert "nothing else was touched" in r.stderr, r.stderr
    versions = d.versions()
    assert versions["vc-a"] == versions["vc-b"] == "6.7 U1", versions
    assert versions["psc-b"] == "6.7 U1"
    steps = d.events(kind="step")
    assert not [e for e in steps if e.phase == "vcenter"], "a vCenter step ran"
    assert not [e for e in steps if e.node in ("vc-a", "vc-b") and e.phase != "pre"]
    # the journal agrees with the lab and the wave is resumable from a known state
    hist = d.history()
    assert hist.nodes["psc-b"].upgraded == 0 and any("psc/upgrade/psc-b" in s for s in hist.failed_steps)
    again = d.cli("upgrade", "--wave", "vcenter", *d.common(), "--installer", d.installer)
    assert again.returncode == 2, again.stderr  # the vCenter wave stays refused while a PSC is behind


# --------------------------------------------------------------------------------- one command per domain
HOLD = """
import sys, time
from orchestrator.engine.lock import DomainLock
with DomainLock(sys.argv[1], "vcwave upgrade --wave psc (test holder)"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_concurrent_second_run_is_refused_naming_the_holder(prepared):
    d = prepared
    lock = d.state / "vsphere.local" / "lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True,
                              env=d.env, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = (d.step_events(), d.versions())
        for args in (("upgrade", "--wave", "psc", *d.common(), "--installer", d.installer),
                     ("backup", "--phase", "pre", *d.common()), ("rollback", *d.common())):
            r = d.cli(*args)
            assert r.returncode == 2, (args[0], r.returncode, r.stderr)
            assert f"pid {holder.pid}" in r.stderr and "test holder" in r.stderr, r.stderr
        # --break-stale-lock never breaks a live holder
        r = d.cli("upgrade", "--wave", "psc", *d.common(), "--installer", d.installer, "--break-stale-lock")
        assert r.returncode == 2 and f"pid {holder.pid}" in r.stderr, r.stderr
        assert (d.step_events(), d.versions()) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_slow_running_wave_holds_the_lock(prepared):
    d = prepared
    manage.control(d.lab_dir, "/lab/faults", {"faults": [{"type": "slow", "node": "*", "factor": 20}]})
    wave = spawn(["upgrade", "--wave", "psc", *d.common(), "--installer", d.installer], d.wd, d.env)
    try:
        lock = d.state / "vsphere.local" / "lock"
        end = time.monotonic() + 30
        while not lock.exists() and time.monotonic() < end:
            time.sleep(0.02)
        r = d.cli("stage", *d.common())
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert f"pid {wave.pid}" in r.stderr and "upgrade --wave psc" in r.stderr, r.stderr
    finally:
        os.killpg(wave.pid, 9)
        wave.wait()


# --------------------------------------------------------------------------------- a torn journal
@pytest.mark.parametrize("damage", ["garbage-tail", pytest.param("truncated", marks=pytest.mark.full)])  # TIERS.md
def test_torn_journal_tail_is_reported_and_nothing_changes(prepared, damage):
    d = prepared
    path = journal_file(d.wd)
    raw = path.read_bytes()
    if damage == "garbage-tail":
        path.write_bytes(raw + b"\x13torn write\x00" * 50)
    else:
        path.write_bytes(raw[: len(raw) - 700])
    damaged = path.read_bytes()
    versions = d.versions()
    for args in (("status", "--plan", str(d.plan), "--state-dir", str(d.state)),
                 ("upgrade", "--wave", "psc", *d.common(), "--installer", d.installer),
                 ("backup", "--phase", "pre", *d.common()),
                 ("rollback", "--plan-only", *d.common())):
        r = d.cli(*args)
        assert r.returncode == 2, (args[0], r.returncode, r.stderr[-800:])
        assert "corrupt" in r.stderr.lower() and str(path) in r.stderr, r.stderr[-800:]
        assert "Traceback" not in r.stderr
    assert path.read_bytes() == damaged, "a command wrote to a corrupt journal"
    assert d.versions() == versions
    assert not (d.state / "vsphere.local" / "lock").exists()


# --------------------------------------------------------------------------------- the seed's path
@pytest.mark.full  # default: the installer crash point + kept-source rollback (TIERS.md)
def test_seed_60_to_65_by_installer_verified_then_rolled_back(tmp_path):
    from lab import mgmt

    for d in _domain(tmp_path, TWO_SITE_60, "6.5 U1"):
        lab0 = d.lab_state()["nodes"]
        plan_cmd.run(d.inventory, d.target, str(d.plan))
        plan = json.loads(d.plan.read_text())
        ups = [s for ph in plan["phases"] for s in ph["steps"] if s["action"] == "upgrade"]
        assert {s["method"] for s in ups} == {"installer"}
        waves.precheck(d.flags)
        waves.backup(d.flags, "pre")
        pre = [b for b in d.history().backups if b.tag == "pre"]
        assert {b.method for b in pre} == {"snapshot-set"} and len({b.set_id for b in pre}) == 1
        waves.stage(d.flags)
        waves.upgrade(d.flags, "psc")
        waves.upgrade(d.flags, "vcenter")
        waves.verify(d.flags)

        hist = d.history()
        assert {n: (h.version.release, h.upgraded, h.verified_at) for n, h in hist.nodes.items()} == {
            n: ("6.5 U1", 1, "6.5 U1") for n in lab0}
        up = d.lab_state()["nodes"]
        for n, node in lab0.items():
            assert up[n]["version"] == "6.5 U1"
            assert up[n]["instance_uuid"] == node["instance_uuid"], n  # same identity
            assert up[n]["moref_salt"] == node["moref_salt"], n          # same morefs
        verified = {e.node: e.data for e in d.events(kind="step", action="verify", status="succeeded")}
        for vc in ("vc-a", "vc-b"):
            assert verified[vc]["instance_uuid"] == lab0[vc]["instance_uuid"]
        kept = {e.node: e.data for e in d.events(kind="source_appliance")}
        assert set(kept) == set(lab0)
        new_vms = {n: kept[n]["new_vm_name"] for n in kept}

        out = rollback_cmd.run(d.flags)
        assert "rollback" in out
        back = d.lab_state()["nodes"]
        for n, node in lab0.items():
            assert back[n]["version"] == "6.0 U3", (n, back[n]["version"])
            assert back[n]["instance_uuid"] == node["instance_uuid"], n
        mg = d.info["management"]["mgmt-vc"]["sdk_url"]
        secret = (d.lab_dir / "secrets" / "sso").read_text().strip()
        si = mgmt.connect(mg, "administrator@vsphere.local", secret,
                          ssl.create_default_context(cafile=d.info["ca_bundle"]))
        try:
            power = mgmt.vm_power_states(si)
        finally:
            mgmt.disconnect(si)
        for n in lab0:
            assert power[lab0[n]["vm"]["name"]] == "poweredOn", (n, power)
            if new_vms[n] in power:
                assert power[new_vms[n]] == "poweredOff", (n, power)
        hist = d.history()
        assert hist.rollbacks == 1
        assert {h.version.release for h in hist.nodes.values()} == {"6.0 U3"}

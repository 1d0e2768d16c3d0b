"""Issue 14's bad days on the lab twin, through the production commands: every step asks the node first.

* SIGKILL while the appliance reboots at the end of its install: the re-run converges, the node installed
  once (the lab's own record: one boot for one install), no `update.precheck ... not found (404)` dead end.
* `invoke verify` of a node that is down fails within its deadline, with one summary and no retry storm.
* SIGTERM while a command waits on an install: exit 143 within seconds, the stop journaled, the lock gone,
  and the next run (no --break-stale-lock needed) adopts the install instead of starting a second one.
* The installer path's in-window snapshot set snapshots the new appliances cold and never powers a
  source on beside them.

A garbled reply to one `GET /rest/appliance/update` right after the install started is in
test_live_garbage_lab.py (the lab's `garbage` fault with an `after:` trigger); tests/core/test_converge.py pins
the decision ("unknown", never "not done").

Needs the vcsim binary: FAILS when it is unavailable with CI=true, skipped otherwise.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_vcsim
from tests.engine.labkit import EX, events, lab_domain

from lab import manage
from lab.harness import cli_env, fast_argv
from orchestrator.commands import waves
from orchestrator.core.history import fold
from orchestrator.core.inventory import load_inventory
from orchestrator.errors import StepFailed


@pytest.fixture(scope="module", autouse=True)
def _vcsim():
    require_vcsim()


def _slow(tmp_path: Path, node: str, factor: float, jobs: tuple[str, ...] = ()) -> str:
    """A lab fault spec that makes one node's jobs (`jobs`: only those, e.g. its install's `reboot`) `factor`
    times longer."""
    p = tmp_path / "slow.yml"
    fault = {"type": "slow", "node": node, "factor": factor, **({"jobs": list(jobs)} if jobs else {})}
    p.write_text(yaml.safe_dump({"faults": [fault]}))
    return str(p)


def lab_node(d, name: str) -> dict:
    return manage.control(d.lab_dir, "/lab/state")["nodes"][name]


def _cli(d, *args: str) -> subprocess.Popen:
    """A production command as its own process (the harness's fast polling), in its own session."""
    f = d.flags
    argv = fast_argv([*args, "--inventory", f.inventory, "--plan", f.plan, "--state-dir", f.state_dir])
    return subprocess.Popen(argv, cwd=d.lab_dir.parent, env=cli_env(d.lab_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(cond, what: str, timeout: float = 120.0, proc: subprocess.Popen | None = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the command exited {proc.returncode} before {what}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


def _install_task(d, node: str) -> dict | None:
    task = lab_node(d, node)["update"]["task"]
    return task if task and task["status"] == "RUNNING" and task["operation"] != "stage" else None


def _before_the_window(d) -> None:
    waves.precheck(d.flags)
    waves.backup(d.flags, "pre")
    waves.stage(d.flags)


def _upgraded_times(d, node: str) -> int:
    return fold(load_inventory(d.flags.inventory), events(d)).nodes[node].upgraded


def test_sigkill_while_the_appliance_reboots_then_the_rerun_converges(tmp_path, monkeypatch):
    # psc-a's reboot lasts 3.6 s (its install's packages 0.3 s): the kill lands inside it
    with lab_domain(tmp_path, monkeypatch, EX / "two-site.yml", "6.7 U3",
                    faults=_slow(tmp_path, "psc-a", 20, jobs=("reboot",))) as d:
        _before_the_window(d)
        boots = lab_node(d, "psc-a")["boot"]
        proc = _cli(d, "upgrade", "--wave", "psc")
        # the end of an install is the reboot (refused, then 503 while services start): kill the command there
        _wait_for(lambda: lab_node(d, "psc-a").get("booting"), "psc-a rebooting at the end of its install",
                  proc=proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert events(d, kind="step", step="psc/upgrade/psc-a")[-1].status == "started"

        out = waves.upgrade(replace(d.flags, break_stale_lock=True), "psc")
        assert "upgrade --wave psc" in out
        reconciled = [e for e in events(d, kind="step", step="psc/upgrade/psc-a") if e.status == "reconciled"]
        assert [e.data["outcome"] for e in reconciled] == ["succeeded"]
        assert reconciled[0].data["version_after"] == "6.7 U3"
        for n in ("psc-a", "psc-b"):
            assert lab_node(d, n)["version"] == "6.7 U3", n
            assert _upgraded_times(d, n) == 1, n
        assert lab_node(d, "psc-a")["boot"] == boots + 1  # the lab's own record: installed (booted) once
        # the next wave goes on as usual
        waves.verify(d.flags, node="psc-a,psc-b")


def test_verify_of_a_down_node_fails_within_its_deadline_with_one_summary(tmp_path, monkeypatch):
    from structlog.testing import capture_logs

    from orchestrator.clients.retry import RETRIES
    with lab_domain(tmp_path, monkeypatch, EX / "two-site.yml", "6.7 U3") as d:
        waves.precheck(d.flags)
        manage.control(d.lab_dir, "/lab/node/vc-b/fail", {"reason": "test: vc-b is down"})
        RETRIES.reset()
        t0 = time.monotonic()
        with capture_logs() as logs, pytest.raises(StepFailed) as exc:
            waves.verify(d.flags)
        print(f"\nverify of a down vc-b failed after {time.monotonic() - t0:.1f}s "
              f"(lab deadline scale {d.flags.deadline_scale}), {RETRIES.total} client retries")
        msg = str(exc.value)
        failed = [line for line in msg.splitlines() if line.strip().startswith("FAILED")]
        assert len(failed) == 1 and "vc-b" in failed[0]
        assert "4 step(s)" not in msg and "3 step(s) done" in msg  # the other nodes verified, side by side
        waiting = [e for e in logs if e["event"] == "verify.waiting_for_node" and e.get("node", "vc-b") == "vc-b"]
        retries = [e for e in logs if e["event"] == "client.retry"]
        assert len(waiting) <= 3, waiting  # one line per change of what is wrong, not one per poll
        assert len(retries) <= 4, retries


def test_sigterm_during_a_wait_exits_143_releases_the_lock_and_the_rerun_adopts(tmp_path, monkeypatch):
    # psc-a's install lasts 4.8 s: SIGTERM in its first half leaves it >= 2.4 s to run after the command's exit
    with lab_domain(tmp_path, monkeypatch, EX / "two-site.yml", "6.7 U3", faults=_slow(tmp_path, "psc-a", 10)) as d:
        _before_the_window(d)
        boots = lab_node(d, "psc-a")["boot"]
        proc = _cli(d, "upgrade", "--wave", "psc")
        _wait_for(lambda: (t := _install_task(d, "psc-a")) and t["progress"] < 50 and t,
                  "psc-a's install running", proc=proc)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        print(f"\nSIGTERM -> exit after {time.monotonic() - t0:.2f}s")
        assert proc.returncode == 143, err[-2000:]
        assert "stopped by SIGTERM" in err and "lock is released" in err and "next: invoke upgrade --wave psc" in err
        assert not (Path(d.flags.state_dir) / d.domain / "lock").exists()
        ends = events(d, kind="run.end", status="interrupted")
        assert len(ends) == 1 and ends[0].data["signal"] == "SIGTERM"
        assert _install_task(d, "psc-a") is not None  # the appliance goes on installing; vcwave stopped

        waves.upgrade(d.flags, "psc")  # no --break-stale-lock: the lock was released
        assert lab_node(d, "psc-a")["version"] == "6.7 U3" and lab_node(d, "psc-a")["boot"] == boots + 1
        assert _upgraded_times(d, "psc-a") == 1


@pytest.mark.full  # default: test_crash[stage2-in-flight] (TIERS.md)
def test_installer_path_snapshot_set_snapshots_the_new_vms_cold_and_never_powers_a_source_on(
        tmp_path, monkeypatch):
    with lab_domain(tmp_path, monkeypatch, EX / "two-site-6.0.yml", "6.5 U1") as d:
        f = d.flags
        waves.precheck(f)
        waves.backup(f, "pre")
        waves.upgrade(f, "psc")
        kept = {e.node: e.data["new_vm_name"] for e in events(d, kind="source_appliance", status="kept")}
        assert set(kept) == {"psc-a", "psc-b"} and all(kept.values())
        log_before = (d.lab_dir / "daemon.log").read_text()

        waves.backup(f, "during")

        state = manage.control(d.lab_dir, "/lab/state")
        power = {vm: p for vms in state["vms"].values() for vm, p in vms.items()}
        inv = load_inventory(f.inventory)
        for node, new_vm in kept.items():
            source = inv.node(node).vm.name
            assert power[new_vm] == "poweredOn", new_vm
            assert power[source] == "poweredOff", f"{source} was powered on beside {new_vm}"
        during = [e for e in events(d, kind="backup") if e.data["tag"] == "during"]
        assert {e.node: e.data["vm"] for e in during if e.node in kept} == kept
        log = (d.lab_dir / "daemon.log").read_text()[len(log_before):]
        for node, new_vm in kept.items():
            assert f" of {new_vm} keeps {node}" in log  # the new appliance was snapshotted
            assert f" of {inv.node(node).vm.name} keeps" not in log  # the powered-off source was not


@pytest.mark.full  # default: test_scenarios_lab's failed vCenter wave (TIERS.md)
def test_a_vcenter_lost_after_the_psc_wave_is_restored_and_the_rollback_is_done_only_once_it_answers(
        tmp_path, monkeypatch):
    """vc-b fails after the PSC wave (the journal still has it at 6.7 U1, untouched): it is not known good,
    so the rollback restores it with the set (the lab's revert brings a failed node back) and is done only
    once every node, vc-b included, answers at 6.7 U1 with its instance UUID."""
    from orchestrator.commands import rollback as rollback_cmd
    with lab_domain(tmp_path, monkeypatch, EX / "two-site.yml", "6.7 U3") as d:
        original = {n: s["instance_uuid"] for n, s in manage.control(d.lab_dir, "/lab/state")["nodes"].items()}
        waves.precheck(d.flags)
        waves.backup(d.flags, "pre", snapshots=True)
        waves.stage(d.flags)
        waves.upgrade(d.flags, "psc")
        manage.control(d.lab_dir, "/lab/node/vc-b/fail", {"reason": "test: vc-b lost after the PSC wave"})

        plan_text = rollback_cmd.run(d.flags, plan_only=True)
        assert "vc-b" in plan_text and "not answering" in plan_text
        out = rollback_cmd.run(d.flags)
        assert "every node answers at its rollback version" in out
        nodes = manage.control(d.lab_dir, "/lab/state")["nodes"]
        for n, s in nodes.items():
            assert s["version"] == "6.7 U1" and s["instance_uuid"] == original[n] and not s["down"], n
        assert len(events(d, kind="note", status="rollback-done")) == 1

"""A whole-domain rollback by file restores when psc-b's appliance is gone (deleted), through the production
CLI on the lab: before its first file restore the rollback asks the domain and pauses once, naming every node
that needs a fresh appliance (psc-a answers as a running appliance, psc-b is gone) with its address and
version and the one next command — the same in the rollback's output and in `status`, journaled as a pause,
not a failed step — and the re-run after the lab deploys both converges at 6.7 U1. Full tier: two rollbacks
through the CLI."""
from __future__ import annotations

from pathlib import Path

import pytest

from lab import manage
from orchestrator.commands import status as status_cmd
from orchestrator.core.inventory import load_inventory
from tests.conftest import require_vcsim
from tests.core.test_repoint import invoke
from tests.engine.labkit import lab_domain
from tests.engine.test_scenarios_lab import events, through_psc_wave

EX = Path(__file__).resolve().parents[2] / "examples"


def _next(text: str) -> str:
    return next(line.split("next: ", 1)[1] for line in text.splitlines() if line.strip().startswith("next: "))


@pytest.mark.full
@pytest.mark.timeout(300)
def test_file_restores_pause_for_fresh_appliances_and_resume(tmp_path, monkeypatch):
    require_vcsim()
    with lab_domain(tmp_path, monkeypatch, EX / "two-site.yml", "6.7 U3") as d:
        f = d.flags
        through_psc_wave(d)
        manage.control(d.lab_dir, "/lab/node/psc-b/delete", {"reason": "datastore lost (test)"})
        cli = ("--inventory", f.inventory, "--plan", f.plan, "--state-dir", f.state_dir)
        again = f"`invoke rollback {' '.join(cli)}`"  # the advice repeats the operator's session flags

        first = invoke("rollback", *cli, cwd=tmp_path)  # nothing is restored into nothing
        assert first.returncode == 1 and "Traceback" not in first.stderr
        out = first.stdout + first.stderr
        nxt = _next(out)
        assert nxt.startswith("the rollback is paused before its file restores of psc-a, psc-b:") and again in nxt
        hosts = {n: load_inventory(f.inventory).node(n) for n in ("psc-a", "psc-b")}
        for n, node in hosts.items():
            assert f"a 6.7 U1 appliance at {node.host}:{node.port} for {n}" in nxt
        assert "psc-b does not answer" in nxt and "no VM holds its identity" in nxt
        assert "PAUSED" in out and "FAILED" not in out
        assert status_cmd.status_data(f).next_command.replace("`invoke rollback`", again) == nxt
        stopped = [e for e in events(d, kind="step") if e.status == "failed"]  # journaled as a pause
        assert [e.data.get("manual") for e in stopped] == [True] and "psc-b does not answer" in stopped[0].data[
            "instructions"]
        record = manage.control(d.lab_dir, "/lab/record?since=0")["counts"]
        assert not record["psc-a"].get("restore_started") and not record["psc-b"].get("restore_started")

        for n in hosts:  # the operator deploys both fresh appliances, as the pause said
            manage.control(d.lab_dir, f"/lab/node/{n}/restore-mode", {"version": "6.7 U1"})
        second = invoke("rollback", *cli, cwd=tmp_path)
        assert second.returncode == 0, (second.stdout, second.stderr)
        st = status_cmd.status_data(f)
        assert st.next_command == "domain back at 6.7 U1; run `invoke plan` to try again"
        assert st.summary == "6.7 U1 on every node"
        record = manage.control(d.lab_dir, "/lab/record?since=0")["counts"]
        assert record["psc-a"]["restore_completed"] == 1 and record["psc-b"]["restore_completed"] == 1

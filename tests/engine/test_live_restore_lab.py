"""A whole-domain rollback by file restores when psc-b's appliance is gone (deleted), through the production
CLI on the lab: every stop names the node and the one next command — the same in the rollback's output and
in `status` — and each re-run after the lab deploys the fresh appliance goes further, until the domain is
back at 6.7 U1. Full tier: three rollbacks through the CLI."""
from __future__ import annotations

from pathlib import Path

import pytest

from lab import manage
from orchestrator.commands import status as status_cmd
from tests.conftest import require_vcsim
from tests.core.test_repoint import invoke
from tests.engine.labkit import lab_domain
from tests.engine.test_scenarios_lab import through_psc_wave

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

        first = invoke("rollback", *cli, cwd=tmp_path)  # psc-a answers, but a file restore needs a fresh appliance
        assert first.returncode != 0 and "Traceback" not in first.stderr
        nxt = _next(first.stdout + first.stderr)
        assert nxt.startswith("the rollback is paused at psc-a:") and again in nxt
        assert status_cmd.status_data(f).next_command.replace("`invoke rollback`", again) == nxt

        manage.control(d.lab_dir, "/lab/node/psc-a/restore-mode", {"version": "6.7 U1"})
        second = invoke("rollback", *cli, cwd=tmp_path)  # psc-a restored; psc-b does not answer at all
        assert second.returncode != 0
        nxt = _next(second.stdout + second.stderr)
        assert nxt.startswith("the rollback stopped at psc-b, which does not answer")
        assert "fresh appliance in restore mode for psc-b (6.7 U1)" in nxt and again in nxt
        assert status_cmd.status_data(f).next_command.replace("`invoke rollback`", again) == nxt

        manage.control(d.lab_dir, "/lab/node/psc-b/restore-mode", {"version": "6.7 U1"})
        third = invoke("rollback", *cli, cwd=tmp_path)
        assert third.returncode == 0, (third.stdout, third.stderr)
        st = status_cmd.status_data(f)
        assert st.next_command == "domain back at 6.7 U1; run `invoke plan` to try again"
        assert st.summary == "6.7 U1 on every node"
        record = manage.control(d.lab_dir, "/lab/record?since=0")["counts"]
        assert record["psc-a"]["restore_completed"] == 1 and record["psc-b"]["restore_completed"] == 1

"""A planned lab domain for engine tests: the lab twin of an inventory, a plan for `target`, and the flags the
production commands take (fast polls, scaled deadlines, the installer stand-in of the target's ISO)."""
from __future__ import annotations

import contextlib
import types
from pathlib import Path
from typing import Iterator

from lab import manage
from lab.installer_standin import ENV_LAB_DIR, standin_path
from lab.rehearse import deadline_scale
from lab.warm_relay import ENV_WARM_SOCKET
from lab.warmcli import WarmCli
from orchestrator.commands import plan as plan_cmd
from orchestrator.commands.session import CommonFlags
from orchestrator.engine.journal import Journal, journal_path

# The lab clock: these tests assert outcomes, never durations, so a 40-minute install lasts 0.5 s; deadlines
# scaled like the harness's (20x the clock, floored at 5 s by the engine): a node a test made silent costs that.
TIME_SCALE = 0.0002
EX = Path(__file__).resolve().parents[2] / "examples"


def events(d: types.SimpleNamespace, **filters) -> list:
    """The lab domain's journal events (filters as Journal.events)."""
    with Journal.open(journal_path(d.flags.state_dir, d.domain)) as j:
        return j.events(**filters)


@contextlib.contextmanager
def lab_domain(tmp_path: Path, monkeypatch, inventory: Path, target: str,
               faults: str | None = None) -> Iterator[types.SimpleNamespace]:
    lab_dir = tmp_path / "lab"
    with manage.running(inventory, lab_dir, time_scale=TIME_SCALE, faults=faults, warm=True) as info:
        monkeypatch.setenv(ENV_LAB_DIR, str(lab_dir.resolve()))
        monkeypatch.setenv(ENV_WARM_SOCKET, WarmCli.shared().sock)  # the installer stand-in: a warm fork
        flags = CommonFlags(inventory=info["inventory"], plan=str(tmp_path / "plan.json"),
                            state_dir=str(tmp_path / "state"), installer=str(standin_path(target)),
                            poll_interval=0.02, deadline_scale=deadline_scale(TIME_SCALE))
        plan_cmd.run(info["inventory"], target, flags.plan, False, None, None)
        yield types.SimpleNamespace(flags=flags, info=info, lab_dir=lab_dir, domain="vsphere.local")


def failed_vcenter_wave_rolled_back(tmp_path: Path, monkeypatch, inventory: Path, target: str) -> tuple[dict, ...]:
    """vc-b's install fails (after vc-a's went through), then `invoke rollback`: the lab's nodes before, after
    the failed wave and after the rollback, and the rollback's output."""
    import pytest

    from orchestrator.commands import rollback as rollback_cmd
    from orchestrator.commands import waves
    from orchestrator.errors import StepFailed

    faults = tmp_path / "faults.yml"
    faults.write_text("faults:\n  - {type: fail_step, node: vc-b, step: install, message: \"stage 2 failed\"}\n")
    with lab_domain(tmp_path, monkeypatch, inventory, target, faults=str(faults)) as d:
        before = manage.control(d.lab_dir, "/lab/state")["nodes"]
        waves.precheck(d.flags)
        waves.backup(d.flags, "pre")
        with pytest.raises(StepFailed, match="vc-b"):
            waves.upgrade(d.flags, "vcenter")
        mid = manage.control(d.lab_dir, "/lab/state")["nodes"]
        out = rollback_cmd.run(d.flags)
        after = manage.control(d.lab_dir, "/lab/state")["nodes"]
    return before, mid, after, out

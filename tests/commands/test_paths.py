"""Where commands write: a folder for a file, a path under a file, an unwritable place are bad input (exit 2)
naming the flag and the path, and a failed write leaves neither a temporary file nor a changed target."""
from __future__ import annotations

import os

import pytest

from orchestrator.commands.paths import check_file, check_folder, write_atomic
from orchestrator.errors import InputError


def test_file_flag(tmp_path):
    (tmp_path / "a-file").write_text("x")
    assert check_file("--out", tmp_path / "new" / "plan.json") == tmp_path / "new" / "plan.json"
    with pytest.raises(InputError, match="is a folder") as ei:
        check_file("--out", tmp_path)
    assert ei.value.where.field == "--out"
    with pytest.raises(InputError, match=r"a-file is a file, so nothing can be made under it"):
        check_file("--out", tmp_path / "a-file" / "deeper" / "plan.json")


def test_folder_flag(tmp_path):
    (tmp_path / "a-file").write_text("x")
    assert check_folder("--state-dir", tmp_path / "not" / "yet") == tmp_path / "not" / "yet"
    assert not (tmp_path / "not").exists()  # checking creates nothing
    with pytest.raises(InputError, match="is a file, not a folder") as ei:
        check_folder("--state-dir", tmp_path / "a-file")
    assert ei.value.where.field == "--state-dir"
    with pytest.raises(InputError, match="a-file is a file"):
        check_folder("--state-dir", tmp_path / "a-file" / "state")


def test_failed_write_leaves_no_tmp_and_keeps_the_target(tmp_path):
    target = tmp_path / "plan.json"
    target.write_text("old")
    write_atomic("--out", target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["plan.json"]
    blocker = tmp_path / "dir.json"
    blocker.mkdir()
    with pytest.raises(InputError, match="cannot write it") as ei:
        write_atomic("--out", blocker, "text")  # the rename onto a folder fails after the tmp was written
    assert ei.value.where.field == "--out"
    assert sorted(os.listdir(tmp_path)) == ["dir.json", "plan.json"]


def test_plan_out_replaces_only_a_vcwave_plan(tmp_path, monkeypatch):
    """Run as root, `plan --out /etc/passwd` replaced the system's user list (a new user did it): `--out` may
    name a new file or one of vcwave's plans; any other existing file is refused, exit 2, left as it was."""
    from pathlib import Path

    from orchestrator.commands import plan as plan_cmd

    monkeypatch.chdir(tmp_path)
    inventory = str(Path(__file__).resolve().parents[2] / "examples" / "two-site.yml")
    precious = tmp_path / "passwd"
    precious.write_text("root:x:0:0:root:/root:/bin/bash\n")
    for other in (precious, tmp_path / "notes.json"):
        if not other.exists():
            other.write_text('{"phases": []}')  # JSON, even plan-like, but not a plan vcwave computed
        before = other.read_bytes()
        with pytest.raises(InputError, match="exists and is not a vcwave plan") as ei:
            plan_cmd.run(inventory, "6.7 U3", str(other))
        assert ei.value.where.field == "--out" and other.read_bytes() == before
    plan_cmd.run(inventory, "6.7 U3", "plan.json")  # a new file
    first = (tmp_path / "plan.json").read_text()
    plan_cmd.run(inventory, "6.7 U3", "plan.json", concurrency=1)  # its own plan: replaced
    assert (tmp_path / "plan.json").read_text() != first


def test_plan_keeps_the_plan_of_a_campaign_that_is_still_changing_the_domain(tmp_path, monkeypatch):
    """Re-planning over `.vcwave/plan.json` mid-campaign would lose the only plan that can finish or roll the
    campaign back: refused (exit 2) until its window closed or it was rolled back; another --out is fine."""
    import json
    from pathlib import Path

    from orchestrator.commands import plan as plan_cmd
    from orchestrator.engine.journal import Journal, journal_path
    from orchestrator.errors import RefusedError

    monkeypatch.chdir(tmp_path)
    inventory = str(Path(__file__).resolve().parents[2] / "examples" / "two-site.yml")
    plan_cmd.run(inventory, "6.7 U3", ".vcwave/plan.json")
    first = json.loads(Path(".vcwave/plan.json").read_text())["plan_hash"]
    with Journal.open(journal_path(".vcwave", "vsphere.local")) as j:
        j.append("window", run_id="r1", plan_hash=first, phase="psc", status="opened")
    with pytest.raises(RefusedError, match="neither finished") as ei:
        plan_cmd.run(inventory, "6.7 U3", ".vcwave/plan.json", concurrency=1)
    assert ei.value.rule == "one-campaign-at-a-time"
    assert json.loads(Path(".vcwave/plan.json").read_text())["plan_hash"] == first
    plan_cmd.run(inventory, "6.7 U3", ".vcwave/plan.json")  # the same plan again: nothing lost
    plan_cmd.run(inventory, "6.7 U3", "elsewhere.json", concurrency=1)
    with Journal.open(journal_path(".vcwave", "vsphere.local")) as j:
        j.append("window", run_id="r2", plan_hash=first, phase="post", status="closed", data={"length_s": 60})
    plan_cmd.run(inventory, "6.7 U3", ".vcwave/plan.json", concurrency=1)  # the campaign ended: replaced
    assert json.loads(Path(".vcwave/plan.json").read_text())["plan_hash"] != first

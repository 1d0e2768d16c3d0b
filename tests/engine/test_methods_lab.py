"""Backup and upgrade methods on a full lab twin, through the production commands.

* a 6.0 node asked for a `file` backup fails the precheck, with the reason (no file-based backup before 6.5);
* a 6.5 patch (6.5 -> 6.5 U1, no REST update API on 6.5) plans `manual`: the wave pauses with instructions,
  the node is patched out of band, `invoke verify --node N` confirms it and the wave goes on;
* an `external` backup (the site's backup product) counts only when its verify command succeeds.

Needs the vcsim binary: FAILS when it is unavailable with CI=true, skipped otherwise.
"""
from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from tests.conftest import require_vcsim
from tests.engine.labkit import TIME_SCALE, lab_domain  # noqa: F401

from lab import manage
from orchestrator.commands import status as status_cmd
from orchestrator.commands import waves
from orchestrator.core.plan import load_plan
from orchestrator.engine.journal import Journal, journal_path
from orchestrator.errors import RefusedError, StepFailed

REPO = Path(__file__).resolve().parents[2]
EX = REPO / "examples"


@pytest.fixture(scope="module")
def vcsim_ok():
    return require_vcsim()


def variant(src: Path, dest: Path, node: str, backup: str | None = None, version: tuple[str, str] | None = None) -> Path:
    """examples/<src> with one node's backup line replaced and/or every node's version/build changed."""
    text = src.read_text()
    if backup is not None:
        block = re.search(rf"  - name: {node}\n(?:    .*\n)+", text).group(0)
        text = text.replace(block, re.sub(r"    backup: .*\n", f"    backup: {backup}\n", block))
    if version is not None:
        text = re.sub(r'version: "[^"]+"', f'version: "{version[0]}"', text)
        text = re.sub(r"build: \d+", f"build: {version[1]}", text)
    dest.write_text(text)
    return dest


def events(d, **filters):
    with Journal.open(journal_path(d.flags.state_dir, d.domain)) as j:
        return j.events(**filters)


def lab_versions(d) -> dict[str, str]:
    return {n: s["version"] for n, s in manage.control(d.lab_dir, "/lab/state")["nodes"].items()}


# ------------------------------------------------------------------ file backup on 6.0

def test_file_backup_on_a_6_0_node_fails_the_precheck(vcsim_ok, tmp_path, monkeypatch):
    inv = variant(EX / "two-site-6.0.yml", tmp_path / "inv.yml", "vc-a",
                  backup="{method: file, location_type: SFTP, location: 'sftp://backup.corp.example/vcwave/vc-a'}")
    with lab_domain(tmp_path, monkeypatch, inv, "6.5 U1") as d:
        plan = load_plan(d.flags.plan)
        assert any(w.startswith("vc-a:") and "precheck will fail" in w for w in plan.warnings)
        with pytest.raises(StepFailed) as exc:
            waves.precheck(d.flags)
        msg = str(exc.value)
        assert exc.value.exit_code == 1
        assert "FAILED pre/precheck/vc-a" in msg and "backup:" in msg and "6.0 U3" in msg
        for other in ("psc-a", "psc-b", "vc-b"):
            assert f"FAILED pre/precheck/{other}" not in msg
        failed = [e for e in events(d, kind="step", status="failed")]
        assert [e.node for e in failed] == ["vc-a"]
        assert "file" in failed[0].data["error"].lower()
        assert lab_versions(d)["vc-a"] == "6.0 U3"  # read-only: nothing changed


# ------------------------------------------------------------------ manual 6.5 patch

def _patch_out_of_band(d, node: str) -> None:
    """What the administrator does by hand (VAMI / software-packages): the lab's control API moves the node."""
    manage.control(d.lab_dir, "/lab/installer/upgrade", {"source": node, "target_version": "6.5 U1"})
    assert lab_versions(d)[node] == "6.5 U1"


def test_manual_6_5_patch_pauses_then_verify_lets_the_wave_go_on(vcsim_ok, tmp_path, monkeypatch):
    inv = variant(EX / "two-site.yml", tmp_path / "inv.yml", "", version=("6.5", "4602587"))
    with lab_domain(tmp_path, monkeypatch, inv, "6.5 U1") as d:
        f = d.flags
        plan = load_plan(f.plan)
        assert {s.method for s in plan.steps() if s.action == "upgrade"} == {"manual"}
        assert not [s for s in plan.steps() if s.action == "stage"]  # nothing to stage on 6.5
        waves.precheck(f)
        waves.backup(f, "pre")

        with pytest.raises(StepFailed) as exc:
            waves.upgrade(f, "psc")
        msg = str(exc.value)
        assert exc.value.exit_code == 1
        assert "PAUSED psc/upgrade/psc-a" in msg and "manual step required" in msg
        assert "software-packages" in msg and "invoke verify --node psc-a" in msg
        assert "psc/upgrade/psc-b" in msg  # not started: one PSC at a time
        assert lab_versions(d)["psc-b"] == "6.5"
        paused = events(d, kind="step", step="psc/upgrade/psc-a")[-1]
        assert paused.status == "failed" and paused.data["manual"] is True

        # still at 6.5: verify expects the planned version (its upgrade was started) and says what is wrong;
        # nothing is confirmed
        with pytest.raises(StepFailed, match="expected 6.5 U1, node runs 6.5"):
            waves.verify(f, node="psc-a")
        assert events(d, kind="step", step="psc/upgrade/psc-a")[-1].status == "failed"

        _patch_out_of_band(d, "psc-a")
        waves.verify(f, node="psc-a")
        last = events(d, kind="step", step="psc/upgrade/psc-a")[-1]
        assert last.status == "reconciled" and last.data["outcome"] == "succeeded" and last.data["manual"] is True
        assert status_cmd.status_data(f).nodes[0]["version"] == "6.5 U1"

        # the wave goes on: psc-a is not redone, psc-b pauses in turn
        with pytest.raises(StepFailed) as exc:
            waves.upgrade(f, "psc")
        assert "PAUSED psc/upgrade/psc-b" in str(exc.value) and "1 already done" in str(exc.value)
        _patch_out_of_band(d, "psc-b")
        out = waves.upgrade(f, "psc")  # the manual step now finds psc-b at the target
        assert "upgrade --wave psc" in out
        st = status_cmd.status_data(f)
        assert st.phases["psc"] == "done" and st.domain_version == "6.5 U1"
        assert st.next_command == "invoke upgrade --wave vcenter"
        ups = [e for e in events(d, kind="step", action="upgrade") if e.status in ("succeeded", "reconciled")]
        assert sorted(e.node for e in ups) == ["psc-a", "psc-b"]  # each once


# ------------------------------------------------------------------ external backup

def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_external_backup_counts_only_when_verified(vcsim_ok, tmp_path, monkeypatch):
    flag = tmp_path / "verify-ok"
    run = _script(tmp_path / "bk-run.sh", 'echo "starting $VCWAVE_NODE"\necho "ext-$VCWAVE_NODE-$VCWAVE_TAG-42"\n')
    ver = _script(tmp_path / "bk-verify.sh",
                  f'echo "$VCWAVE_BACKUP_ID" >> {tmp_path}/verified-ids\n[ -e {flag} ] && exit 0\nexit 1\n')
    inv = variant(EX / "two-site.yml", tmp_path / "inv.yml", "vc-a",
                  backup=f"{{method: external, command: '{run}', verify: '{ver}'}}")
    with lab_domain(tmp_path, monkeypatch, inv, "6.7 U3") as d:
        f = d.flags
        assert {s.method for s in load_plan(f.plan).steps() if s.action == "backup" and s.node == "vc-a"} == {"external"}

        # the verification fails: the step fails and the backup does not count
        with pytest.raises(StepFailed) as exc:
            waves.backup(f, "pre")
        msg = str(exc.value)
        assert "FAILED pre/backup/vc-a" in msg and "ext-vc-a-pre-42" in msg and "verification" in msg
        assert (tmp_path / "verified-ids").read_text().split() == ["ext-vc-a-pre-42"]
        hist = status_cmd.status_data(f)
        vc_a = next(n for n in hist.nodes if n["node"] == "vc-a")
        assert vc_a["single_restore"] is None
        assert not [b for b in vc_a["backups"] if b["single_node"] or b["whole_domain"]]
        # verified: recorded and usable
        flag.touch()
        out = waves.backup(f, "pre")
        assert "3 already done" in out  # the file backups of the other nodes are not taken again
        ext = [e for e in events(d, kind="backup") if e.node == "vc-a" and e.data.get("verified", True)]
        assert [e.data["backup_id"] for e in ext] == ["ext-vc-a-pre-42"]
        assert ext[0].data["method"] == "external" and ext[0].data["domain_version"] == "6.7 U1"
        vc_a = next(n for n in status_cmd.status_data(f).nodes if n["node"] == "vc-a")
        assert vc_a["single_restore"] == "ext-vc-a-pre-42"


def test_unverified_external_backup_does_not_open_the_way_to_the_upgrade(vcsim_ok, tmp_path, monkeypatch):
    """BUG (reported): the failed verification still journals a `backup` event (verified: false), and
    Engine.guard's backup-before-upgrade check counts any pre-tagged backup, verified or not — so
    `invoke upgrade --wave psc` starts although vc-a has no usable pre-upgrade backup."""
    run = _script(tmp_path / "bk-run.sh", 'echo "ext-$VCWAVE_NODE-$VCWAVE_TAG-7"\n')
    ver = _script(tmp_path / "bk-verify.sh", "exit 1\n")
    inv = variant(EX / "two-site.yml", tmp_path / "inv.yml", "vc-a",
                  backup=f"{{method: external, command: '{run}', verify: '{ver}'}}")
    with lab_domain(tmp_path, monkeypatch, inv, "6.7 U3") as d:
        waves.precheck(d.flags)  # the window's first rule (precheck-before-window) is met: the backup rule speaks
        with pytest.raises(StepFailed, match="failed its verification"):
            waves.backup(d.flags, "pre")
        waves.stage(d.flags)
        with pytest.raises(RefusedError) as exc:
            waves.upgrade(d.flags, "psc")
        assert exc.value.rule == "backup-before-upgrade" and "vc-a" in str(exc.value)
        assert lab_versions(d)["psc-a"] == "6.7 U1"

"""Journals of realistic runs over examples/two-site.yml, written with the real Journal (on a fake clock so
the run spans hours, as a real one does), shared by the report tests."""
from __future__ import annotations

import types
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.core.inventory import Inventory, load_inventory
from orchestrator.core.plan import Plan, build_plan, file_sha256
from orchestrator.core.playbook import load_playbook
from orchestrator.core.versions import parse_version
from orchestrator.engine import journal as journal_mod
from orchestrator.engine.journal import Journal

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "examples" / "two-site.yml"
BASE = 1709366400.0  # 2024-03-02 08:00:00 UTC
NODES = ("psc-a", "psc-b", "vc-a", "vc-b")
PSCS = ("psc-a", "psc-b")
VCS = ("vc-a", "vc-b")
ERROR_TEXT = "installer exited 1: <script>alert('x')</script> vpxd precheck failed"


def inventory_and_plan() -> tuple[Inventory, Plan]:
    """As `invoke plan` makes them: both input hashes recorded (a saved plan is rebuilt from them when applied)."""
    inv = load_inventory(INVENTORY)
    pb = load_playbook()
    plan = build_plan(inv, pb, parse_version("6.7 U3"), inventory_sha256=file_sha256(INVENTORY),
                      playbook_sha256=file_sha256(pb.path))
    return inv, plan


@dataclass
class Writer:
    """Appends events as the engine would, at `minute` minutes after BASE (the journal's clock is faked)."""

    journal: Journal
    plan_hash: str
    clock: dict[str, float] = field(default_factory=lambda: {"minute": 0.0})
    run_id: str = "run-1"
    ts: dict[str, float] = field(default_factory=dict)  # label -> ts of a remembered event

    def at(self, minute: float) -> "Writer":
        self.clock["minute"] = minute
        return self

    def ev(self, kind: str, label: str = "", **kw):
        e = self.journal.append(kind, run_id=self.run_id, plan_hash=self.plan_hash, **kw)
        if label:
            self.ts[label] = e.ts
        return e

    def step(self, node: str, step: str, action: str, phase: str, status: str, label: str = "", **data):
        return self.ev("step", label, phase=phase, wave=phase, node=node, step=step, action=action, status=status,
                       data=data)

    def backup(self, node: str, phase: str, tag: str, domain_version: str, node_version: str, t0: float,
               t1: float) -> None:
        sid = f"{phase}/backup{'-' + tag if tag != phase else ''}/{node}"
        self.at(t0).step(node, sid, "backup", phase, "started", method="file")
        self.at(t1).ev("backup", f"backup:{tag}:{node}", phase=phase, wave=phase, node=node, step=sid,
                       action="backup", status="recorded",
                       data={"backup_id": f"{tag}-{node}-1", "method": "file", "tag": tag,
                             "location": f"sftp://backup.corp.example/vcwave/{node}/{tag}",
                             "domain_version": domain_version, "node_version": node_version})
        self.step(node, sid, "backup", phase, "succeeded", backup_id=f"{tag}-{node}-1")

    def upgrade(self, node: str, phase: str, t0: float, t1: float, ok: bool = True, error: str = "",
                label: str = "") -> None:
        sid = f"{phase}/upgrade/{node}"
        self.at(t0).step(node, sid, "upgrade", phase, "started", method="update", **{"from": "6.7 U1", "to": "6.7 U3"})
        self.at((t0 + t1) / 2).step(node, sid, "upgrade", phase, "started", progress=True, job_id=f"job-{node}")
        if ok:
            self.at(t1).step(node, sid, "upgrade", phase, "succeeded", label or f"upgraded:{node}",
                             method="update", version_after="6.7 U3", build_after=14367737)
        else:
            self.at(t1).step(node, sid, "upgrade", phase, "failed", label or f"failed:{node}", error=error)

    def simple(self, node: str, action: str, phase: str, t0: float, t1: float, sid: str = "", **data) -> None:
        sid = sid or f"{phase}/{action}/{node}"
        self.at(t0).step(node, sid, action, phase, "started")
        self.at(t1).step(node, sid, action, phase, "succeeded", **data)


def open_journal(path: Path, monkeypatch) -> tuple[Journal, Writer]:
    """A real journal whose clock is the writer's `minute` (patched in the journal module only)."""
    clock = {"minute": 0.0}
    fake = types.SimpleNamespace(time=lambda: BASE + clock["minute"] * 60.0, perf_counter=_time.perf_counter)
    monkeypatch.setattr(journal_mod, "time", fake)
    _, plan = inventory_and_plan()
    j = Journal.open(path)
    w = Writer(j, plan.plan_hash, clock=clock)
    return j, w


def write_pre(w: Writer) -> None:
    w.at(0).ev("run.start", phase="pre", data={"command": "backup"})
    for n in NODES:
        w.simple(n, "precheck", "pre", 1, 2)
    for i, n in enumerate(NODES):
        w.backup(n, "pre", "pre", "6.7 U1", "6.7 U1", 3, 8 + 2 * i)
    for n in NODES:
        w.simple(n, "stage", "pre", 16, 25)
    w.at(25).ev("run.end", phase="pre", status="ok")


def write_upgrade_run(w: Writer) -> None:
    """pre backups, PSC wave, vCenter wave with one failure then success, window closed, post backups."""
    write_pre(w)
    w.at(30).ev("run.start", phase="psc")
    w.ev("window", "window:opened", phase="psc", node="psc-a", status="opened", data={"by": "psc/upgrade/psc-a"})
    w.upgrade("psc-a", "psc", 30, 70)
    w.simple("psc-a", "verify", "psc", 70, 73)
    w.upgrade("psc-b", "psc", 73, 112)
    w.simple("psc-b", "verify", "psc", 112, 115)
    w.at(115).ev("run.end", phase="psc", status="ok")
    w.at(120).ev("run.start", phase="vcenter")
    for i, n in enumerate(NODES):
        w.backup(n, "vcenter", "during", "6.7 U3", "6.7 U3" if n in PSCS else "6.7 U1", 120, 124 + i)
    w.upgrade("vc-a", "vcenter", 130, 150, ok=False, error=ERROR_TEXT)
    w.at(150).ev("run.end", phase="vcenter", status="failed")
    w.run_id = "run-2"
    w.at(170).ev("run.start", phase="vcenter")
    w.upgrade("vc-a", "vcenter", 170, 215)
    w.simple("vc-a", "verify", "vcenter", 215, 218)
    w.upgrade("vc-b", "vcenter", 218, 262)
    w.simple("vc-b", "verify", "vcenter", 262, 265)
    w.at(265).ev("window", "window:closed", phase="vcenter", status="closed", data={"length_s": 235 * 60.0})
    w.ev("run.end", phase="vcenter", status="ok")
    w.run_id = "run-3"
    w.at(270).ev("run.start", phase="post")
    for n in NODES:
        w.simple(n, "verify", "post", 270, 273)
    for i, n in enumerate(NODES):
        w.backup(n, "post", "post", "6.7 U3", "6.7 U3", 275, 278 + 2 * i)
    w.at(286).ev("run.end", phase="post", status="ok")


def write_rollback_run(w: Writer) -> None:
    """pre backups, psc-a upgraded, psc-b fails, then a whole-domain rollback brings psc-a back."""
    write_pre(w)
    w.at(30).ev("run.start", phase="psc")
    w.ev("window", "window:opened", phase="psc", node="psc-a", status="opened", data={"by": "psc/upgrade/psc-a"})
    w.upgrade("psc-a", "psc", 30, 70)
    w.simple("psc-a", "verify", "psc", 70, 73)
    w.upgrade("psc-b", "psc", 73, 95, ok=False, error="upgrade job failed: vmdir replication check timed out")
    w.at(95).ev("run.end", phase="psc", status="failed")
    w.run_id = "run-rb"
    w.at(100).ev("run.start", phase="rollback")
    actions = [{"order": 1, "node": "psc-a", "role": "psc", "action": "restore", "method": "file-restore",
                "asset": "pre-psc-a-1", "to_version": "6.7 U1", "reason": "pre backup at domain 6.7 U1"},
               {"order": 2, "node": "psc-a", "role": "psc", "action": "verify", "method": "verify-old",
                "asset": "", "to_version": "6.7 U1", "reason": "old version and instance UUID"}]
    w.ev("note", "rollback:plan", phase="rollback", status="rollback-plan",
         data={"scope": "domain", "to": "pre", "actions": actions})
    sid = "rollback-domain-pre/01-restore/psc-a"
    w.at(101).step("psc-a", sid, "rollback", "rollback", "started", method="file-restore")
    w.at(120).step("psc-a", sid, "rollback", "rollback", "succeeded", "rollback:restored",
                   method="file-restore", version_after="6.7 U1", build_after=10244745)
    w.simple("psc-a", "verify", "rollback", 120, 123, sid="rollback-domain-pre/02-verify/psc-a")
    w.at(124).ev("note", "rollback:done", phase="rollback", status="rollback-done", data={"scope": "domain", "to": "pre"})
    w.step("", "rollback-domain-pre", "rollback", "rollback", "succeeded", scope="domain")
    w.ev("run.end", phase="rollback", status="ok")

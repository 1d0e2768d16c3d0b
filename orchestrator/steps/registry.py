"""Which implementation runs a planned step: chosen by (action, method), both decided by the planner."""
from __future__ import annotations

from typing import Any

from orchestrator.core.plan import Step
from orchestrator.steps.backup import ExternalBackup, FileBackup, SnapshotSetBackup
from orchestrator.steps.decommission import DecommissionPsc
from orchestrator.steps.finalize import RemoveSource
from orchestrator.steps.installer import InstallerUpgrade
from orchestrator.steps.precheck import Precheck
from orchestrator.steps.update import ManualUpgrade, Stage, UpdateInstall
from orchestrator.steps.verify import Verify


class _NoOp:
    """An upgrade whose method is `none`: the node is already at the target."""

    def run(self, ctx: Any) -> dict[str, Any]:
        return {}

    def reconcile(self, ctx: Any, started: Any) -> dict[str, Any]:
        return {}


_IMPLS = {
    ("precheck", ""): Precheck(), ("stage", ""): Stage(), ("verify", ""): Verify(),
    ("backup", "file"): FileBackup(), ("backup", "snapshot-set"): SnapshotSetBackup(),
    ("backup", "external"): ExternalBackup(),
    ("upgrade", "update"): UpdateInstall(), ("upgrade", "installer"): InstallerUpgrade(),
    ("upgrade", "manual"): ManualUpgrade(), ("upgrade", "none"): _NoOp(),
    ("finalize", "remove-source"): RemoveSource(), ("finalize", "decommission-psc"): DecommissionPsc(),
}


def impl_for(step: Step) -> Any:
    key = (step.action, step.method if step.action in ("backup", "upgrade", "finalize") else "")
    try:
        return _IMPLS[key]
    except KeyError:
        raise ValueError(f"no implementation for {step.action}/{step.method or '-'} (step {step.id})") from None

"""Which recorded backups can still bring a node back, given the domain as it is now (pure).

The seed's hardest lesson: "If the backup you need to restore from was taken prior to the start of the
vSphere Domain upgrade, you would not be able to use it to restore [...] the vCenter Server instance that
you would be restoring is expecting a 5.5 vSphere Domain". So a backup is judged against the *current*
domain version (the PSCs'), not against its own age, and every verdict says why.
"""
from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.history import Backup, DomainHistory, domain_version
from orchestrator.core.inventory import Inventory

WHOLE_DOMAIN = "invoke rollback"


@dataclass(frozen=True)
class BackupVerdict:
    backup: Backup
    single_node: bool  # can restore this node alone, now
    whole_domain: bool  # can serve in a rollback of the whole domain (all nodes together)
    reason: str


def judge(backup: Backup, inv: Inventory, history: DomainHistory) -> BackupVerdict:
    """Judge one backup against the domain's current versions."""
    versions = history.versions()
    now = domain_version(inv, versions)
    node = inv.node(backup.node)
    if not backup.verified:
        return BackupVerdict(backup, False, False, "not verified (its verification command did not succeed)")
    if history.finalized is not None and (backup.method in ("snapshot-set", "source-appliance")
                                          or backup.domain_version != now):
        return BackupVerdict(backup, False, False, "taken before `invoke finalize` (the point of no return): no "
                                                   "rollback to before it is offered")
    if backup.method == "snapshot-set":
        return BackupVerdict(backup, False, True,
                             "member of a cold snapshot set: reverted only with every other node of the set "
                             f"(a single reverted PSC breaks replication) — use `{WHOLE_DOMAIN}`")
    if backup.method == "source-appliance":
        return BackupVerdict(backup, False, True,
                             f"powered-off source appliance at {backup.node_version}: brought back only with the "
                             f"whole domain, PSCs first (VMware KB 322065) — use `{WHOLE_DOMAIN}`")
    if "+" in now:
        return BackupVerdict(backup, False, backup.domain_version == _original_domain(inv),
                             f"taken at domain {backup.domain_version}; the domain is mid-upgrade ({now}): "
                             f"no single-node restore while PSCs differ — use `{WHOLE_DOMAIN}`")
    if backup.domain_version != now:
        return BackupVerdict(backup, False, backup.domain_version == _original_domain(inv),
                             f"taken at domain {backup.domain_version}, domain is now {now}: restoring it would not "
                             f"talk to the PSCs — use a whole-domain rollback (`{WHOLE_DOMAIN}`)")
    if node.is_psc and backup.node_version != now:
        return BackupVerdict(backup, False, False,
                             f"PSC backup at {backup.node_version} while its replication partners run {now}")
    return BackupVerdict(backup, True, backup.domain_version == _original_domain(inv) and history.finalized is None,
                         f"taken at the current domain version {now}: restores {backup.node} alone "
                         f"(node back to {backup.node_version})")


def _original_domain(inv: Inventory) -> str:
    return domain_version(inv, {n.name: n.version for n in inv.nodes})


def judge_all(inv: Inventory, history: DomainHistory) -> dict[str, list[BackupVerdict]]:
    """Every node's backups, newest first, each with its verdict."""
    out: dict[str, list[BackupVerdict]] = {n.name: [] for n in inv.nodes}
    for b in sorted(history.backups, key=lambda b: b.ts, reverse=True):
        if b.node in out:
            out[b.node].append(judge(b, inv, history))
    return out


def usable_single(verdicts: list[BackupVerdict]) -> BackupVerdict | None:
    return next((v for v in verdicts if v.single_node), None)


def nodes_without_usable_backup(inv: Inventory, history: DomainHistory) -> list[str]:
    """Nodes that could not be restored alone right now (warn on `invoke backup`)."""
    return [n for n, vs in judge_all(inv, history).items() if usable_single(vs) is None]

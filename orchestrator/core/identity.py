"""One identity, one running VM (pure): which VM serves a node, and whether a VM may be powered on.

Why a rule of its own: after VMware's installer migrates a node, two appliance VMs carry the node's
identity (FQDN, IP, instance UUID, machine certificate): the powered-off source, kept as a rollback asset,
and the new appliance. Two of them running at once is two appliances answering for one node and one
vmdir replica - a split brain the domain does not recover from by itself. So every power-on, in every
path (snapshot set, rollback, installer), asks `power_on_refusal` first, with the VMs' live power states.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from orchestrator.errors import RefusedError

ON = "poweredOn"
RULE = "one-identity-one-vm"


@dataclass(frozen=True)
class NodeVMs:
    """The VMs that carry one node's identity: its own (the inventory's) and, once the installer took
    over, the new appliance. `returned`: a rollback brought the source back after that."""

    node: str
    source: str
    new: str = ""
    returned: bool = False

    @property
    def vms(self) -> tuple[str, ...]:
        return (self.source, self.new) if self.new else (self.source,)


def serving_vm(n: NodeVMs, power: Mapping[str, str]) -> str:
    """The VM that serves the node now: the one running; with none running (a cold snapshot, a stopped
    domain), the one that held the identity last. Raises IdentityConflict when two run."""
    running = [vm for vm in n.vms if power.get(vm) == ON]
    if len(running) > 1:
        raise IdentityConflict(n.node, running)
    if running:
        return running[0]
    return n.new if n.new and not n.returned else n.source


def power_on_refusal(vm: str, n: NodeVMs, power: Mapping[str, str]) -> str | None:
    """Why `vm` must not be powered on now (None: it may): another VM of the same node is running."""
    others = [o for o in n.vms if o != vm and power.get(o) == ON]
    if others:
        return (f"{vm} carries the identity of {n.node}, and {others[0]} (the same identity) is powered on: "
                f"two appliances with one identity. Power {others[0]} off first, or keep {vm} off")
    return None


class IdentityConflict(RefusedError):
    """Two VMs with one node's identity run at once: nothing may decide which one serves."""

    def __init__(self, node: str, vms: list[str]) -> None:
        self.vms = vms
        super().__init__(f"{' and '.join(vms)} both run with its identity; power off the one that does not "
                         f"serve the domain before anything else", rule=RULE, node=node)

"""How vcwave reaches the nodes of an inventory: one place that turns a Node into a client.

Clients know nothing about waves; this module knows which credential, scheme, port and TLS policy each
node uses. TLS verification is on unless the user passed --insecure, which is logged once per run.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.clients.appliance import ApplianceClient
from orchestrator.clients.retry import RetryPolicy
from orchestrator.core.inventory import Inventory, Node
from orchestrator.log import get_logger
from orchestrator.secrets import Secret, resolve

if TYPE_CHECKING:
    from orchestrator.clients.vsphere import VSphereClient


@dataclass(frozen=True)
class TlsOptions:
    insecure: bool = False
    ca_bundle: str | None = None

    def verify(self) -> bool | str:
        if self.insecure:
            return False
        return self.ca_bundle or True


class Connections:
    """Lazily created, cached clients for one command run (thread-safe: lanes run in threads)."""

    def __init__(self, inv: Inventory, tls: TlsOptions | None = None) -> None:
        self.inv = inv
        ca = dict(inv.tls).get("ca_bundle")
        self.tls = tls or TlsOptions(ca_bundle=ca)
        if self.tls.ca_bundle is None and ca:
            self.tls = TlsOptions(self.tls.insecure, ca)
        self._lock = threading.Lock()
        self._appliance: dict[str, ApplianceClient] = {}
        self._vsphere: dict[str, VSphereClient] = {}
        self._secrets: dict[str, Secret] = {}
        self._timeouts: dict[str, float] = {}  # per-client socket timeout; empty: the clients' defaults
        self._policy: RetryPolicy | None = None
        self._probes: dict[float, Connections] = {}  # deadline -> the command's probing clients (see probing)
        if self.tls.insecure:
            get_logger("vcwave.tls").warning("tls.verification_disabled", domain=inv.domain,
                                             reason="--insecure given on the command line")

    def secret(self, credential: str) -> Secret:
        with self._lock:
            if credential not in self._secrets:
                self._secrets[credential] = resolve(self.inv.credential(credential))
            return self._secrets[credential]

    def resolve_all(self) -> None:
        """Read every declared secret now, so bad credentials stop the command before it changes anything."""
        for cred in self.inv.credentials:
            self.secret(cred.name)

    def probing(self, deadline: float) -> "Connections":
        """Sibling connections for a quick look at the domain: clients whose socket timeout and retry budget
        fit in `deadline` seconds, so a dead node costs seconds, not the minutes a step may wait for one.
        Secrets are shared (read once); nothing is logged again.

        Kept for the command (one sibling per deadline): a command looks at the domain before every batch,
        and each look asks every node again, but through the session and connection of the look before
        (a node that restarted refuses the old session and its client logs in again; `about` is read anew
        each look), not a login per node per look that nobody logs out. `forget` drops a node's clients
        while a look's call to it is still running; `close` logs them out."""
        with self._lock:
            probe = self._probes.get(deadline)
            if probe is not None:
                return probe
        probe = copy.copy(self)
        probe._lock = threading.Lock()
        probe._appliance, probe._vsphere, probe._probes = {}, {}, {}
        # Each request within half the deadline, however its bytes trickle in (a per-read timeout alone lets a
        # body at 1 KB/s hold a probe, and the command's exit, for the clients' 120 s): the node then reads as
        # not answering with the request and path that failed, within the deadline.
        probe._timeouts = {"timeout": deadline, "total_timeout": deadline / 2}
        # Several short, quiet tries per call within a quarter of the deadline (a node is asked a few things
        # in turn): a node that answers one 503 or reset in five is up and must not read as silent (the
        # guards would refuse the wave), and a node that is really down still costs about the deadline.
        probe._policy = RetryPolicy(attempts=6, initial_wait=min(0.1, deadline / 20), max_wait=min(0.5, deadline / 8),
                                    deadline=deadline / 4, quiet=True)
        with self._lock:
            return self._probes.setdefault(deadline, probe)

    def forget(self, key: str) -> None:
        """Drop the clients of node `key` (a management vCenter: `mgmt:<name>`): a call to it still runs on a
        thread the caller stopped waiting for, and a client serves one thread at a time. The next call gets
        fresh clients; the running one keeps its own until it ends."""
        with self._lock:
            for k in [k for k in self._appliance if k.rpartition(":")[0] == key]:
                del self._appliance[k]
            self._vsphere.pop(key, None)

    def user(self, credential: str) -> str:
        return self.inv.credential(credential).user

    def appliance(self, node: Node, credential: str = "sso") -> ApplianceClient:
        """The appliance REST API of a node (a fresh session per client; per-thread safe use only)."""
        key = f"{node.name}:{credential}"
        with self._lock:
            c = self._appliance.get(key)
        if c is None:
            c = ApplianceClient(f"{node.scheme}://{node.host}:{node.port}", self.user(credential),
                                self.secret(credential), verify=self.tls.verify(),
                                thumbprint=node.thumbprint, node=node.name,
                                retry_policy=self._policy, **self._timeouts)
            with self._lock:
                c = self._appliance.setdefault(key, c)
        return c

    def vsphere(self, node: Node) -> VSphereClient:
        """vim25 of a vCenter of the domain."""
        return self._vs(node.name, node.host, node.sdk_port, node.scheme, "sso", node.thumbprint)

    def management(self, name: str) -> VSphereClient:
        """vim25 of a management vCenter that hosts appliance VMs."""
        m = self.inv.management_vc(name)
        return self._vs(f"mgmt:{name}", m.host, m.sdk_port, m.scheme, m.credentials, m.thumbprint)

    def _vs(self, key: str, host: str, port: int, scheme: str, credential: str,
            thumbprint: str | None) -> VSphereClient:
        with self._lock:
            c = self._vsphere.get(key)
        if c is None:
            # pyVmomi (~0.1 s of CPU to import) only once a command reaches a vCenter: a refused one never does
            from orchestrator.clients.vsphere import VSphereClient
            c = VSphereClient(host, port, self.user(credential), self.secret(credential), scheme=scheme,
                              verify=self.tls.verify(), thumbprint=thumbprint, node=key,
                              retry_policy=self._policy, **self._timeouts)
            with self._lock:
                c = self._vsphere.setdefault(key, c)
        return c

    def close(self) -> None:
        """Log out of every session the command opened, its looks' included (best effort)."""
        for probe in list(self._probes.values()):
            probe.close()
        for c in list(self._appliance.values()):
            try:
                c.logout()
            except Exception:  # closing is best effort: the command's outcome is already journaled
                pass
        for v in list(self._vsphere.values()):
            try:
                v.disconnect()
            except Exception:
                pass

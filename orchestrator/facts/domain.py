"""One observation of the whole domain: every node asked at once, each within a short deadline (read-only).

Why: every command, and every batch of a wave, decides from what the domain is now (core/live.py folds
this with the journal). Asked one after another, a dead node would cost each command the full retry budget
of a step (minutes); asked concurrently through probing clients (short socket timeout, short retries), a
dead node costs the deadline once, and it is reported as "not answering" with the reason, never guessed.
"""
from __future__ import annotations

import re
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any, Mapping

from orchestrator.clients.retry import ClientError
from orchestrator.core.inventory import Inventory, Node
from orchestrator.core.live import NodeSeen, Observation, VmSeen
from orchestrator.facts.node import NodeFacts, gather

DEFAULT_DEADLINE_S = 8.0


def _why(facts: NodeFacts) -> str:
    """The first error, short enough for one status line: 'appliance: node vc-b: system.version: connection
    refused: ...' -> 'appliance: system.version: connection refused: ...' (the node is named by the line
    already; the call or API path stays: a garbage or trickled answer is known by the path that sent it)."""
    text = re.sub(r"^(appliance|vim25): node [^:]+: ", r"\1: ", facts.errors[0]) if facts.errors \
        else "no version from any API"
    return text if len(text) <= 160 else text[:157] + "..."


def _restore_mode(conns: Any, node: Node, facts: NodeFacts) -> bool:
    """A freshly deployed appliance waiting for a restore has no SSO yet: it refuses the SSO login, answers
    root, and its health is unknown (gray) until it is configured. That is a node to restore, not a node
    that is down; a wrong SSO password on a running node (health known) is not mistaken for it."""
    if not any(e.startswith("appliance") and "login refused" in e for e in facts.errors):
        return False
    try:
        return conns.appliance(node, "root").health(items=()).system == "gray"
    except (ClientError, KeyError):
        return False


def ask_node(conns: Any, node: Node) -> NodeSeen:
    """One node: version, services down, PSC pointer, restore mode (VMs come from the management vCenter)."""
    facts = gather(conns, node, fingerprint=False, health=False, services=True)
    vim_down = node.role == "vcenter" and any(e.startswith("vim25") for e in facts.errors)
    answering = facts.reachable and not vim_down and not any("login refused" in e for e in facts.errors)
    return NodeSeen(node.name, answering, "" if answering else _why(facts), facts.version, facts.services_down,
                    facts.psc_host, _restore_mode(conns, node, facts))


def ask_management(conns: Any, name: str, vm_names: set[str]) -> dict[str, str]:
    """Power state of the named appliance VMs on one management vCenter (one retrieval)."""
    vs = conns.management(name)
    vs.connect()
    return vs.vm_power_states(vm_names)


def _vms(node: Node, new_vm: str, powers: Mapping[str, str] | None) -> tuple[VmSeen, ...]:
    if node.vm is None:
        return ()
    pairs = [("source", node.vm.name)] + ([("new", new_vm)] if new_vm else [])
    if powers is None:
        return tuple(VmSeen(name, role, "unknown") for role, name in pairs)
    return tuple(VmSeen(name, role, powers.get(name, "absent")) for role, name in pairs)


def observe(inv: Inventory, conns: Any, *, deadline: float = DEFAULT_DEADLINE_S,
            new_vms: Mapping[str, str] | None = None) -> Observation:
    """Ask every node and every management vCenter concurrently. `new_vms`: node -> the installer's new
    appliance VM (from the journal), so that the VM holding the node's identity can be told apart."""
    new_vms = new_vms or {}
    probe = conns.probing(deadline)
    wanted: dict[str, set[str]] = {}
    for n in inv.nodes:
        if n.vm is not None:
            wanted.setdefault(n.vm.vcenter, set()).update({n.vm.name, new_vms.get(n.name, "")} - {""})
    pool = ThreadPoolExecutor(max_workers=len(inv.nodes) + len(wanted), thread_name_prefix="vcwave-observe")
    try:
        by_node: dict[str, Future] = {n.name: pool.submit(ask_node, probe, n) for n in inv.nodes}
        by_mgmt: dict[str, Future] = {m: pool.submit(ask_management, probe, m, names) for m, names in wanted.items()}
        wait([*by_node.values(), *by_mgmt.values()], timeout=deadline + 1.0)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a node still silent is reported, not waited for
    for key, f in [*by_node.items(), *((f"mgmt:{m}", f) for m, f in by_mgmt.items())]:
        if not f.done():
            probe.forget(key)  # its call still runs: the next look must not share the client with it
    powers = {m: f.result() if f.done() and f.exception() is None else None for m, f in by_mgmt.items()}
    seen: dict[str, NodeSeen] = {}
    for n in inv.nodes:
        f = by_node[n.name]
        if not f.done():
            s = NodeSeen(n.name, False, f"no answer within {deadline:g} s")
        elif f.exception() is not None:
            s = NodeSeen(n.name, False, f"{type(f.exception()).__name__}: {f.exception()}"[:160])
        else:
            s = f.result()
        vms = _vms(n, new_vms.get(n.name, ""), powers.get(n.vm.vcenter) if n.vm else None)
        seen[n.name] = replace(s, vms=vms)
    return Observation(time.time(), seen)

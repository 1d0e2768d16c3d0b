"""Repoint guard (pure): a vCenter may move only to a running PSC of the same version in the same SSO site.

The seed's scenario: a 5.5/6.0 vCenter pointing at an already-upgraded 6.5 PSC cannot be repointed when
that PSC fails — "the only way to recover from this scenario is to restore or redeploy the failed PSC".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from orchestrator.core import interop, rules
from orchestrator.core.inventory import Inventory
from orchestrator.core.versions import Version
from orchestrator.errors import RefusedError


@dataclass(frozen=True)
class FailoverOption:
    vcenter: str
    psc: str  # the PSC it uses now
    candidates: tuple[str, ...]  # PSCs it could be repointed to if `psc` fails
    advice: str


def check_repoint(inv: Inventory, versions: Mapping[str, Version], vcenter: str, psc: str,
                  down: frozenset[str] = frozenset()) -> rules.Verdict:
    try:
        vc, target = inv.node(vcenter), inv.node(psc)
    except KeyError as exc:
        raise RefusedError(f"no node {exc.args[0]} in the inventory", rule="repoint") from None
    if vc.role != "vcenter" or target.role != "psc":
        raise RefusedError(f"repoint moves a vCenter to a PSC ({vcenter} is a {vc.role}, {psc} a {target.role})",
                           rule="repoint")
    return rules.repoint_allowed(versions[vcenter], vc.site, versions[psc], target.site, psc not in down)


def failover_options(inv: Inventory, versions: Mapping[str, Version | None],
                     down: frozenset[str] = frozenset()) -> tuple[FailoverOption, ...]:
    """For every vCenter: if its PSC failed now, where could it go — or must the PSC be restored?

    `versions` are the live versions when the domain was observed (None: the node does not answer) and
    `down` the nodes that do not answer: only a PSC that answers, in the vCenter's site, at the vCenter's
    live version is proposed (the same rule `invoke repoint` applies), never one the journal alone vouches for."""
    out = []
    known = {n: v for n, v in versions.items() if v is not None}
    for vc in inv.vcenters:
        vc_version = versions[vc.name]
        if vc_version is None:
            out.append(FailoverOption(vc.name, vc.psc or "", (), f"{vc.name} does not answer: its version is "
                                      f"unknown, so no PSC can be proposed until it answers"))
            continue
        if not interop.supports_external_psc(vc_version):
            continue  # converged (7.0+): SSO is its own, no PSC to fail over from
        cands = tuple(p.name for p in inv.pscs if p.name != vc.psc and p.name in known
                      and check_repoint(inv, known, vc.name, p.name, down).ok)
        advice = (f"repoint to {cands[0]}" if cands else
                  f"no other PSC of {vc_version.release} answers in site {vc.site}: restore or redeploy {vc.psc}")
        out.append(FailoverOption(vc.name, vc.psc or "", cands, advice))
    return tuple(out)

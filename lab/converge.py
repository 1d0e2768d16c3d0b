"""The lab's view of a node's release and the 7.0 installer's converge refusals, apart from the lab's state.

Why a module of its own: the installer stand-in (lab/installer_standin.py) is a fresh interpreter on every
installer run and checks a converge exactly as the lab does; importing lab/state.py for these few lines
cost it ~30 ms of CPU per run (the fault injector, YAML, the job machinery), on ~90 runs a suite.
"""
from __future__ import annotations

from functools import lru_cache

from orchestrator.core.versions import Version, catalogue, parse_version

# Lines that still have external PSCs: from 7.0 on, a vCenter carries SSO itself (vSphere 7.0 Upgrade guide).
EXTERNAL_PSC_LINES = {(5, 5), (6, 0), (6, 5), (6, 7)}


def version_of(node: dict) -> Version:
    return _resolved(node["version"], node.get("build") or None)


@lru_cache(maxsize=512)
def _resolved(version: str, build: int | None) -> Version:
    """The release a node's version and build name: asked ~20000 times a lab's life (every REST request asks
    whether its node has the API) for the few versions a lab holds; a Version is immutable."""
    return catalogue().resolve(parse_version(version, build))


def converge_problem(nodes: dict[str, dict], node: dict, target: Version, sso: dict | None,
                     busy: set[str]) -> str:
    """The 7.0 installer's own refusals of a converge (vSphere 7.0 Upgrade guide): the template's sso section
    says first instance or names "an existing vCenter Server 7.0 instance as the replication partner" (`sso`:
    {first_instance, partner: node name}); vCenters are upgraded one at a time ("you cannot perform parallel
    upgrades", vmdird replication of SSO and certificate data). `busy`: nodes being converged right now."""
    others = sorted(busy - {node["name"]})
    if others:
        return (f"another vCenter Server of the SSO domain is being upgraded ({', '.join(others)}): parallel "
                f"upgrades are not supported, each vCenter Server instance must be upgraded separately")
    if not isinstance(sso, dict) or not isinstance(sso.get("first_instance"), bool):
        return (f"{node['name']} uses the external Platform Services Controller {node['psc']}: upgrading it to "
                f"{target.release} converges the PSC, and the template's sso section must say first_instance "
                f"or name a replication partner")
    if sso["first_instance"]:
        return ""
    partner = nodes.get(str(sso.get("partner") or ""))
    if partner is None:
        return "the replication partner is not a node of this SSO domain"
    pv = version_of(partner)
    if partner["role"] != "vcenter" or partner.get("psc") or pv.line < target.line or partner["down"]:
        return (f"the replication partner {partner['name']} is not a running vCenter Server "
                f"{target.major}.{target.minor} instance (it runs {pv.release}"
                f"{' with an external PSC' if partner.get('psc') else ''}): converge the first vCenter of the "
                f"SSO domain first")
    return ""

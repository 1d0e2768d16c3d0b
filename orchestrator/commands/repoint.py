"""`invoke repoint --vcenter VC --psc PSC [--check]`: allowed only to a running PSC of the same version in the
same SSO site. The repoint itself runs on the vCenter appliance's shell (cmsso-util), so vcwave gives the
exact command once the guard passes and confirms it afterwards with `invoke verify --node VC`."""
from __future__ import annotations

from orchestrator.commands.session import CommonFlags, session
from orchestrator.core.repoint import check_repoint
from orchestrator.errors import RefusedError


def run(flags: CommonFlags, vcenter: str, psc: str, check: bool = False, down: str = "") -> str:
    """`down` names PSCs to treat as failed (planning a failover); a PSC that does not answer now is down
    without it. Versions are the live ones where the node answers."""
    with session(flags, "repoint", mutate=False, record=False) as engine:
        state = engine.state
    versions = {n: s.version or s.journal_version for n, s in state.nodes.items()}
    silent = {n for n, s in state.nodes.items() if not s.answering}
    verdict = check_repoint(engine.inv, versions, vcenter, psc,
                            frozenset(x for x in down.split(",") if x) | silent)
    if not verdict:
        why = f" ({psc}: {state.nodes[psc].why or state.nodes[psc].state})" if psc in silent else ""
        raise RefusedError(f"repoint {vcenter} -> {psc} refused: {verdict.reason}{why}", rule=verdict.rule,
                           node=vcenter)
    inv, target = engine.inv, engine.inv.node(psc)
    text = (f"repoint {vcenter} -> {psc} is allowed ({verdict.rule}: same version "
            f"{versions[psc].release}, same site {target.site})")
    if check:
        return text + "\n(check only: nothing changed)"
    return (text + f"\nOn {inv.node(vcenter).host} (appliance shell) run:\n"
            f"  cmsso-util repoint --repoint-psc {target.host} --username {inv.credential('sso').user} --passwd '***'\n"
            f"then set `psc: {psc}` for {vcenter} in the inventory and run `invoke verify --node {vcenter}`")

"""`invoke repoint --vcenter VC --psc PSC [--check]`: allowed only to a running PSC of the same version in the
same SSO site. The repoint itself runs on the vCenter appliance's shell (cmsso-util), so vcwave gives the
exact command once the guard passes and confirms it afterwards with `invoke verify --node VC`."""
from __future__ import annotations

from orchestrator.commands.session import CommonFlags, load_checked
from orchestrator.core.history import fold
from orchestrator.core.repoint import check_repoint
from orchestrator.engine.runner import open_journal
from orchestrator.errors import RefusedError


def run(flags: CommonFlags, vcenter: str, psc: str, check: bool = False, down: str = "") -> str:
    inv, plan = load_checked(flags)
    journal = open_journal(flags.options(), inv.domain)
    try:
        hist = fold(inv, journal.events())
    finally:
        journal.close()
    verdict = check_repoint(inv, hist.versions(), vcenter, psc, frozenset(x for x in down.split(",") if x))
    if not verdict:
        raise RefusedError(f"repoint {vcenter} -> {psc} refused: {verdict.reason}", rule=verdict.rule, node=vcenter)
    target = inv.node(psc)
    text = (f"repoint {vcenter} -> {psc} is allowed ({verdict.rule}: same version "
            f"{hist.versions()[psc].release}, same site {target.site})")
    if check:
        return text + "\n(check only: nothing changed)"
    return (text + f"\nOn {inv.node(vcenter).host} (appliance shell) run:\n"
            f"  cmsso-util repoint --repoint-psc {target.host} --username {inv.credential('sso').user} --passwd '***'\n"
            f"then set `psc: {psc}` for {vcenter} in the inventory and run `invoke verify --node {vcenter}`")

"""The seed's rules, each one small pure function, written once.

The planner uses them to build waves; the engine asks the same functions with live versions before it
acts (e.g. before the vcenter wave); status and rollback use them to explain what is possible. Each rule
returns a `Verdict` whose reason quotes the guidance it comes from, so a refusal says *why*.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from orchestrator.core.versions import Version

SITE_BY_SITE = ("Upgrading site by site is not supported: all PSCs of the SSO domain, across ALL sites, "
                "are upgraded before any vCenter Server")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rule: str
    reason: str = ""

    def __bool__(self) -> bool:  # lets callers write `if not verdict:`
        return self.ok


def _v(x: Version) -> Version:
    return x.without_build()


def vcenter_wave_may_start(psc_versions: Mapping[str, Version], target: Version, converge: bool = False) -> Verdict:
    """The vcenter wave starts only when every PSC of every site is at the target (or newer). A converge
    (target without external PSCs) has no PSC wave: its vCenters fold the PSCs in as they go."""
    if converge:
        return Verdict(True, "pscs-first", "converge: the PSCs cannot go to the target; the vCenters fold them in")
    behind = sorted(name for name, v in psc_versions.items() if _v(v) < _v(target))
    if behind:
        return Verdict(False, "pscs-first",
                       f"{SITE_BY_SITE}; still below {target.release}: {', '.join(behind)}")
    return Verdict(True, "pscs-first")


def vcenter_not_newer_than_psc(vc_version: Version, psc_version: Version, vc: str = "", psc: str = "") -> Verdict:
    """A vCenter must never run a newer version than the PSC it uses."""
    if _v(vc_version) > _v(psc_version):
        return Verdict(False, "vcenter-not-newer-than-psc",
                       f"vCenter {vc} would run {vc_version.release}, newer than its PSC {psc} "
                       f"({psc_version.release})")
    return Verdict(True, "vcenter-not-newer-than-psc")


def repoint_allowed(vc_version: Version, vc_site: str, psc_version: Version, psc_site: str,
                    psc_up: bool = True) -> Verdict:
    """A vCenter may be repointed only to a running PSC of the same version in the same SSO site."""
    if vc_site != psc_site:
        return Verdict(False, "repoint-same-site",
                       f"repoint only within the same SSO site (vCenter in {vc_site}, PSC in {psc_site})")
    if not _v(vc_version).same_release(_v(psc_version)):
        return Verdict(False, "repoint-same-version",
                       f"repoint only to a PSC of the same version (vCenter {vc_version.release}, PSC "
                       f"{psc_version.release}): restore or redeploy the failed PSC instead")
    if not psc_up:
        return Verdict(False, "repoint-target-up", "the target PSC is not running")
    return Verdict(True, "repoint-same-site-same-version")


def mixed_state_allowed(psc_versions: Mapping[str, Version], vc_versions: Mapping[str, Version],
                        vc_psc: Mapping[str, str], source: Version, target: Version) -> Verdict:
    """Which mixes are allowed during a transition: every node at source or target, no vCenter newer than its PSC.

    A mix is a transition state, never a steady state: `is_mixed` tells whether the window is open.
    """
    allowed = {_v(source), _v(target)}
    for name, v in {**psc_versions, **vc_versions}.items():
        if _v(v) not in allowed:
            return Verdict(False, "transition-versions",
                           f"{name} runs {v.release}; during this upgrade only {source.release} and "
                           f"{target.release} may coexist")
    for vc, v in vc_versions.items():
        verdict = vcenter_not_newer_than_psc(v, psc_versions[vc_psc[vc]], vc, vc_psc[vc])
        if not verdict:
            return verdict
    return Verdict(True, "transition-versions")


def is_mixed(versions: Iterable[Version]) -> bool:
    """True when the domain runs more than one release: the mixed-version window is open."""
    return len({_v(v) for v in versions}) > 1


def wave_order_allowed(upgrade_order: Iterable[tuple[str, str]]) -> Verdict:
    """Given upgrade steps in order as (role, node), refuse any vCenter before the last PSC."""
    seen_vc: str | None = None
    for role, node in upgrade_order:
        if role == "vcenter" and seen_vc is None:
            seen_vc = node
        elif role == "psc" and seen_vc is not None:
            return Verdict(False, "pscs-first", f"{SITE_BY_SITE} (vCenter {seen_vc} would go before PSC {node})")
    return Verdict(True, "pscs-first")


def psc_concurrency_allowed(serial: int) -> Verdict:
    """PSCs are upgraded one at a time: 'Concurrent upgrades of Platform Services Controller instances are
    not supported' (VMware upgrade order guide)."""
    if serial != 1:
        return Verdict(False, "psc-one-at-a-time",
                       "Concurrent upgrades of Platform Services Controller instances are not supported: "
                       "the psc wave runs with serial 1")
    return Verdict(True, "psc-one-at-a-time")


def external_psc_target_allowed(has_external_pscs: bool, target_supports_external_psc: bool,
                                target: Version, converge: bool = False) -> Verdict:
    """7.0+ has no external PSC: a domain that has them reaches it only by converging them into its vCenters
    (`converge`: the target is a line vcwave converges into, data/interop.yaml)."""
    if has_external_pscs and not target_supports_external_psc and not converge:
        return Verdict(False, "no-external-psc-in-target",
                       f"{target.release} has no external Platform Services Controller: converge the PSCs into "
                       f"their vCenters on the way (plan a route through a line vcwave converges into)")
    return Verdict(True, "no-external-psc-in-target")


VCENTERS_ONE_AT_A_TIME = ("In environments with multiple instances of vCenter Server appliance, you cannot perform "
                          "parallel upgrades. Each vCenter Server instance must be upgraded separately (vSphere 7.0/"
                          "8.0 upgrade guide: vmdird replication of single sign-on and certificate data)")


def vcenters_in_parallel_allowed(target_supports_external_psc: bool) -> Verdict:
    """To a line without external PSCs (7.0+) every vCenter carries SSO itself: one vCenter at a time."""
    if not target_supports_external_psc:
        return Verdict(False, "vcenters-one-at-a-time", VCENTERS_ONE_AT_A_TIME)
    return Verdict(True, "vcenters-one-at-a-time")


def cold_snapshot_set_required(converge: bool, sso_carriers: int) -> bool:
    """VMware KB 313886 (vCenter 6.x, 7.0, 8.0 in Enhanced Linked Mode): offline snapshots of ALL nodes of the
    SSO domain, taken together, before any update; reverted together before any is powered on (vmdir
    replicates every 30 s: one node reverted alone cannot replicate). vcwave plans that set itself before a
    converge and before any hop of a domain whose SSO is carried by more than one node that replicate with
    each other (linked embedded vCenters); a 6.x external-PSC wave keeps it optional (`backup --snapshots`),
    as the seed's file backups of each node come first there."""
    return converge or sso_carriers > 1


def converge_partners(vcenters_in_order: Iterable[tuple[str, str]]) -> dict[str, str | None]:
    """Replication partner of each converging vCenter, given (name, site) in upgrade order.

    VMware: the first vCenter of the SSO domain is upgraded with `first_instance` (None here); every later
    one names "an existing vCenter Server 7.0 instance as the replication partner". vcwave picks the last
    converged vCenter of the same site (replication stays within the site where it can), else the first
    instance."""
    out: dict[str, str | None] = {}
    last_in_site: dict[str, str] = {}
    first: str | None = None
    for name, site in vcenters_in_order:
        out[name] = last_in_site.get(site, first)
        first = first or name
        last_in_site[site] = name
    return out


def expected_sso_host(vcenter_host: str, psc_host: str, supports_external_psc: bool) -> str:
    """Where a vCenter's SSO lives at a version: its PSC, or itself once converged (7.0+)."""
    return psc_host if supports_external_psc else vcenter_host


def within_configuration_maximums(pscs_per_site: Mapping[str, int], vcenters: int,
                                  maximums: Mapping[str, int]) -> list[Verdict]:
    """The domain's size against VMware's configuration maximums (external PSCs per domain and per site,
    vCenters per domain). Beyond them the domain is unsupported before and after the upgrade: vcwave says
    so in the plan rather than guess how VMware support would see it. Empty list: within every maximum."""
    out = []
    total = sum(pscs_per_site.values())
    if total > maximums["psc_per_domain"]:
        out.append(Verdict(False, "configuration-maximums",
                           f"{total} external PSCs in one SSO domain; VMware supports at most "
                           f"{maximums['psc_per_domain']}"))
    if vcenters > maximums["vcenter_per_domain"]:
        out.append(Verdict(False, "configuration-maximums",
                           f"{vcenters} vCenters in one SSO domain; VMware supports at most "
                           f"{maximums['vcenter_per_domain']}"))
    for site, n in sorted(pscs_per_site.items()):
        if n > maximums["psc_per_site"]:
            out.append(Verdict(False, "configuration-maximums",
                               f"site {site} has {n} PSCs; VMware supports at most {maximums['psc_per_site']} "
                               f"per site"))
    return out


# -- rules on the live domain (orchestrator.core.live's DomainState feeds them) --------------------------------

PRECHECK_MAX_AGE_H = 24.0  # a precheck older than this says little about today's domain: run it again


def pscs_a_vcenter_depends_on(vc_psc: str, vc_site: str, psc_sites: Mapping[str, str]) -> tuple[str, ...]:
    """The PSC a vCenter points at and every PSC of its SSO site: its replication partners there and the
    only PSCs it could be repointed to if its own fails. An install of the vCenter needs them all."""
    return tuple(sorted({vc_psc, *(p for p, site in psc_sites.items() if site == vc_site)} - {""}))


def vcenter_install_allowed(vc: str, pscs: Mapping[str, tuple[bool, Version | None]], target: Version,
                            converge: bool = False) -> Verdict:
    """No vCenter install while a PSC it depends on does not answer or is not at the target, as the PSCs
    answer now (`pscs`: name -> (answering, live version)): a vCenter newer than its PSC, or upgraded while
    its PSC is down, is the seed's unrecoverable case ("restore or redeploy the failed PSC"). A converge
    (`converge`) folds the PSC into the vCenter: it must answer, and stays below the target by nature."""
    down = sorted(p for p, (answering, _) in pscs.items() if not answering)
    if down:
        return Verdict(False, "psc-answers-before-vcenter",
                       f"vCenter {vc} is not upgraded while a PSC it depends on does not answer: "
                       f"{', '.join(down)}. Bring it back (or restore it), then run `invoke status`")
    behind = sorted(f"{p} ({v.release if v else 'version unknown'})" for p, (_, v) in pscs.items()
                    if v is None or (_v(v) < _v(target) and not converge))
    if behind:
        return Verdict(False, "pscs-first", f"{SITE_BY_SITE}; vCenter {vc} depends on PSCs that run below "
                                            f"{target.release}: {', '.join(behind)}")
    return Verdict(True, "psc-answers-before-vcenter")


def window_may_open(prechecks: Mapping[str, tuple[str, float] | None], now: float,
                    max_age_h: float = PRECHECK_MAX_AGE_H) -> Verdict:
    """The mixed-version window (the psc wave) opens only after a successful precheck of every node, run
    within `max_age_h` hours. `prechecks`: node -> (status of its newest precheck, when), None if never."""
    never = sorted(n for n, p in prechecks.items() if p is None)
    failed = sorted(n for n, p in prechecks.items() if p is not None and p[0] != "succeeded")
    old = sorted(f"{n} ({(now - p[1]) / 3600:.0f} h)" for n, p in prechecks.items()
                 if p is not None and p[0] == "succeeded" and now - p[1] > max_age_h * 3600)
    problems = ([f"never prechecked: {', '.join(never)}"] if never else []) + \
               ([f"last precheck failed: {', '.join(failed)}"] if failed else []) + \
               ([f"precheck older than {max_age_h:g} h: {', '.join(old)}"] if old else [])
    if problems:
        return Verdict(False, "precheck-before-window",
                       "the window opens only after a successful precheck of every node: " + "; ".join(problems)
                       + ". Run `invoke precheck` first")
    return Verdict(True, "precheck-before-window")


def nodes_answer_before_change(silent: Mapping[str, str]) -> Verdict:
    """A wave (or its next batch) starts only when every node it will touch answers (`silent`: node -> why
    not). A node that does not answer is unknown: a backup or an install started against it fails halfway
    inside the window, or finds a node that is not what the journal thinks."""
    if silent:
        return Verdict(False, "node-answers-before-change",
                       "these nodes do not answer: " + "; ".join(f"{n} ({why})" for n, why in sorted(silent.items()))
                       + ". Bring them back, then run `invoke status`; if they cannot come back, `invoke rollback "
                       "--plan-only` shows the way back (and, where VMware allows going forward, which nodes "
                       "`--node` may still take)")
    return Verdict(True, "node-answers-before-change")

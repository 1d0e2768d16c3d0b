"""The planner: inventory + playbook + target -> a saved, hashed wave plan.

Pure core (kubeadm's compute.go): it decides what happens to every node, in which phase and batch, by
which method and why. It never calls out. The engine later applies exactly the saved plan, and refuses
it if the plan file was edited or the inventory changed since (hashes).

Batches: steps of one batch may run concurrently across nodes; a node's steps within a batch run in
order. PSCs are always one per batch; vCenters follow the playbook's `serial` (default `per-psc`: the
vCenters that share a PSC together, as VMware's guide allows, and the groups side by side, since once every
PSC is at the target the groups share nothing that VMware's upgrade order constrains).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from itertools import groupby
from pathlib import Path
from typing import Any, Iterable

from orchestrator.core import interop, rules
from orchestrator.core.inventory import Inventory, Node
from orchestrator.core.playbook import PER_PSC, PER_PSC_IN_TURN, Play, Playbook
from orchestrator.core.versions import Version, parse_version
from orchestrator.errors import InputError, RefusedError, Where

PLAN_FORMAT = 1


@dataclass(frozen=True)
class Step:
    id: str
    phase: str
    batch: int
    node: str
    role: str
    site: str
    action: str  # precheck | backup | stage | upgrade | verify
    method: str = ""  # upgrade: update|installer|manual|none; backup: file|snapshot-set|external
    from_: str = ""
    to: str = ""
    reason: str = ""
    tag: str = ""  # backups: pre|during|post

    def to_json(self) -> dict[str, Any]:
        """The step as saved. Every field is a str or an int, so a shallow copy of the fields is all
        `asdict` would give, without its recursive deep copy: a plan of 20 steps is serialized on every
        command (hash, rebuild check), and `asdict` was most of that CPU."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["from"] = d.pop("from_")
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> "Step":
        d = dict(d)
        d["from_"] = d.pop("from")
        return Step(**d)


@dataclass(frozen=True)
class Phase:
    name: str
    steps: tuple[Step, ...]

    def batches(self) -> list[tuple[int, tuple[Step, ...]]]:
        return [(b, tuple(s)) for b, s in groupby(self.steps, key=lambda s: s.batch)]


@dataclass(frozen=True)
class Plan:
    domain: str
    target: str
    inventory: str
    inventory_sha256: str
    playbook: str
    playbook_sha256: str
    concurrency_rule: str
    window_estimate_min: float
    phases: tuple[Phase, ...]
    warnings: tuple[str, ...] = ()
    plan_hash: str = ""
    concurrency: int | None = None  # --concurrency as given to `invoke plan`: the plan is rebuilt with it
    # The whole route when the target is more than one hop away (core/campaign.py): this plan is its first
    # hop. Empty for a one-hop upgrade, so such plans keep their shape.
    route: dict[str, Any] = field(default_factory=dict, hash=False)

    def steps(self) -> Iterable[Step]:
        for ph in self.phases:
            yield from ph.steps

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps() if s.id == step_id)

    def body(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT, "domain": self.domain, "target": self.target, "inventory": self.inventory,
            "inventory_sha256": self.inventory_sha256, "playbook": self.playbook,
            "playbook_sha256": self.playbook_sha256, "concurrency_rule": self.concurrency_rule,
            "window_estimate_min": self.window_estimate_min, "warnings": list(self.warnings),
            "phases": [{"name": p.name, "steps": [s.to_json() for s in p.steps]} for p in self.phases],
            **({"concurrency": self.concurrency} if self.concurrency is not None else {}),
        } | ({"route": self.route} if self.route else {})

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "plan_hash": self.plan_hash}


def content_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------- planning

def _upgrade_step(node: Node, target: Version, phase: str, batch: int) -> Step:
    choice = interop.upgrade_method(node.version, target, node.platform)
    return Step(f"{phase}/upgrade/{node.name}", phase, batch, node.name, node.role, node.site, "upgrade",
                choice.method, node.version.release, target.release, choice.reason)


def _backup_method(node: Node) -> tuple[str, str]:
    declared = node.backup.method if node.backup else None
    if declared:
        return declared, "declared in the inventory"
    methods = interop.backup_methods(node.version, node.platform, node.vm is not None)
    if not methods:
        return "none", "no usable backup method"
    why = {"file": "appliance file-based backup job (6.5+)",
           "snapshot-set": f"{node.version.release} has no file-based backup: cold snapshot set of all appliance "
                           f"VMs of the domain, taken together"}[methods[0]]
    return methods[0], why


def _simple(node: Node, action: str, phase: str, batch: int, ver: Version, target: Version, tag: str = "",
            method: str = "", reason: str = "") -> Step:
    sid = f"{phase}/{action}{'-' + tag if tag and tag != phase else ''}/{node.name}"
    return Step(sid, phase, batch, node.name, node.role, node.site, action, method, ver.release, target.release,
                reason, tag)


def _node_lane(node: Node, play: Play, target: Version, phase: str, batch: int, cur: Version,
               tag: str) -> list[Step]:
    """The steps one node runs in one play, in the play's task order."""
    out = []
    for task in play.tasks:
        if task == "upgrade":
            out.append(_upgrade_step(node, target, phase, batch))
        elif task == "backup":
            method, why = _backup_method(node)
            out.append(_simple(node, "backup", phase, batch, cur, target, tag, method, why))
        elif task == "stage":
            if interop.upgrade_method(node.version, target, node.platform).method == "update":
                out.append(_simple(node, "stage", phase, batch, cur, target, reason="stage the update bits now"))
        else:
            out.append(_simple(node, task, phase, batch, cur, target))
    return out


def _vcenter_batches(inv: Inventory, serial: int | str) -> tuple[list[list[Node]], str]:
    """The vCenter wave's batches and the rule that made them (the plan prints it).

    VMware: "vCenter Server instances that point to the same Platform Services Controller can be upgraded or
    migrated concurrently" — that is where the groups come from. The order rules (all PSCs first, PSCs one at
    a time) are already met when this wave starts, and two groups never share a PSC, so `per-psc` runs the
    groups side by side: the window then holds one vCenter batch, not one per PSC. `per-psc-in-turn` keeps
    the groups apart in time for administrators who read VMware's sentence as the only concurrency allowed.
    """
    vcs = list(inv.vcenters)
    if serial in (PER_PSC, PER_PSC_IN_TURN):
        groups = [list(inv.vcenters_of(p.name)) for p in _psc_order(inv)]
        groups += [[vc] for vc in vcs if not vc.psc]  # embedded-PSC vCenters: each its own group
        groups = [g for g in groups if g]
        words = ("per-psc: vCenter Server instances that point to the same Platform Services Controller are "
                 "upgraded concurrently (VMware upgrade order guide); ")
        if serial == PER_PSC_IN_TURN:
            return groups, words.replace("per-psc:", "per-psc-in-turn:") + "groups one after another"
        side_by_side = [vc for g in groups for vc in g]
        return ([side_by_side] if side_by_side else []), (
            words + f"the {len(groups)} groups share no PSC and run side by side")
    if serial == 0:
        return ([vcs] if vcs else []), "all vCenters at once (playbook serial: 0)"
    return [vcs[i:i + serial] for i in range(0, len(vcs), serial)], f"{serial} vCenter(s) at a time"


def _psc_order(inv: Inventory) -> list[Node]:
    """PSCs in site order, then by name. One at a time means every other PSC stays up, so each PSC's
    replication partners are reachable while it is upgraded; going site by site keeps the partners of a
    site's PSCs (usually in the same site) upgraded next to each other."""
    return _by_site(inv, inv.pscs)


def _by_site(inv: Inventory, nodes: Iterable[Node]) -> list[Node]:
    order = {s: i for i, s in enumerate(inv.sites)}
    return sorted(nodes, key=lambda n: (order[n.site], n.name))


def converges(inv: Inventory, target: Version) -> bool:
    """True when this upgrade folds the external PSCs into the vCenters (a target line without them)."""
    return bool(inv.pscs) and not interop.supports_external_psc(target)


def converge_partners_of(inv: Inventory) -> dict[str, str | None]:
    """Each vCenter's replication partner in a converge (None: the first instance), in converge order:
    site by site, so a vCenter's partner is in its own site whenever one there is already converged."""
    return rules.converge_partners((vc.name, vc.site) for vc in _by_site(inv, inv.vcenters))


def check_target(inv: Inventory, target: Version) -> None:
    """Refuse a target that any node cannot reach directly, that drops external PSCs (7.0+), or that every
    node already runs (a plan of no-op steps would open and close a window for nothing)."""
    if inv.nodes and all(n.version.same_release(target) for n in inv.nodes):
        raise InputError(f"nothing to do: every node of {inv.domain} already runs {target.release}",
                         Where(field="--target"))
    problems = []
    for n in inv.nodes:
        verdict = interop.check_path(n.version, target)
        if not verdict.ok:
            problems.append(f"{n.name} ({n.version.release}): {verdict.reason}")
    if problems:
        raise RefusedError("unsupported upgrade path:\n  " + "\n  ".join(problems), rule="upgrade-path")
    converge = f"{target.major}.{target.minor}" in interop.interop_data().converge_into
    verdict = rules.external_psc_target_allowed(bool(inv.pscs), interop.supports_external_psc(target), target,
                                                converge)
    if not verdict:
        raise RefusedError(verdict.reason, rule=verdict.rule)
    if converges(inv, target) and not inv.vcenters:
        raise RefusedError(f"{target.release} has no external PSC and this domain has no vCenter to converge its "
                           f"PSCs into", rule="converge-needs-a-vcenter")


def build_plan(inv: Inventory, playbook: Playbook, target: Version, *, inventory_sha256: str = "",
               playbook_sha256: str = "", concurrency: int | None = None) -> Plan:
    """Compute the plan. Raises RefusedError (exit 2) when a rule of the seed or an upgrade path forbids it."""
    check_target(inv, target)
    if concurrency is not None and concurrency < 1:
        raise InputError(f"--concurrency must be >= 1, got {concurrency}", Where(field="--concurrency"))
    converge = converges(inv, target)
    cold_set = rules.cold_snapshot_set_required(converge, 0 if inv.pscs else len(inv.vcenters))
    one_at_a_time = rules.vcenters_in_parallel_allowed(interop.supports_external_psc(target))
    if not one_at_a_time and concurrency is not None and concurrency > 1:
        raise RefusedError(f"--concurrency {concurrency}: {one_at_a_time.reason}", rule=one_at_a_time.rule)
    phases, rule_text, warnings = [], "", []
    for play in playbook.plays:
        steps: list[Step] = []
        batch = 0
        if play.phase == "psc":
            groups = [] if converge else [[p] for p in _psc_order(inv)]  # a PSC cannot go to 7.0
        elif play.phase == "vcenter" and not one_at_a_time:
            groups = [[vc] for vc in _by_site(inv, inv.vcenters)]
            rule_text = f"one vCenter at a time: {one_at_a_time.reason}"
        elif play.phase == "vcenter":
            serial = concurrency if concurrency is not None else play.serial
            groups, rule_text = _vcenter_batches(inv, serial)
            if concurrency is not None:
                rule_text = f"--concurrency {concurrency}: {rule_text}"
        else:
            # Outside the waves every task is one batch over all nodes: every precheck passes before any
            # backup starts, and a snapshot-set backup is one batch (taken together).
            members = list({"all": inv.nodes, "psc": inv.pscs, "vcenter": inv.vcenters}[play.hosts])
            if converge and play.phase == "post":  # the PSCs stay as they are until `finalize` decommissions them
                members = [n for n in members if not n.is_psc]
            for i, task in enumerate(play.tasks):
                one = Play(play.name, play.phase, play.hosts, (task,), play.serial)
                for node in members:
                    cur = target if play.phase == "post" else node.version
                    steps += _node_lane(node, one, target, play.phase, i, cur, play.phase)
            if cold_set and play.phase == "pre" and "backup" in play.tasks:
                steps += _cold_snapshot_set(inv, target, len(play.tasks))
            phases.append(Phase(play.phase, tuple(steps)))
            continue
        if converge and play.phase == "vcenter":
            steps += _converge_lanes(inv, play, target, groups)
            phases.append(Phase(play.phase, tuple(steps)))
            continue
        if play.phase == "vcenter" and play.backup_first:
            steps += [_simple(n, "backup", "vcenter", 0, target if n.is_psc else n.version, target, "during",
                              *_backup_method(n)) for n in inv.nodes]
            batch = 1
        for group in groups:
            for node in group:
                cur = target if play.phase == "post" else node.version
                tag = {"pre": "pre", "post": "post"}.get(play.phase, "during")
                steps += _node_lane(node, play, target, play.phase, batch, cur, tag)
            batch += 1
        phases.append(Phase(play.phase, tuple(_split_batches(steps))))
    for n in inv.nodes:
        method, _ = _backup_method(n)
        problem = (interop.backup_method_problem(n.version, n.platform, n.vm is not None,
                                                 None if method == "none" else method,
                                                 n.backup.location_type if n.backup else ""))
        if problem:
            warnings.append(f"{n.name}: {problem} (the precheck will fail)")
    no_vm = [n.name for n in inv.nodes if n.vm is None]
    if cold_set and no_vm:
        warnings.append(f"no appliance VM declared for {', '.join(no_vm)}: the cold snapshot set of all nodes that "
                        f"VMware KB 313886 asks for before this hop cannot include them")
    per_site = {site: sum(1 for p in inv.pscs if p.site == site) for site in inv.sites}
    for verdict in rules.within_configuration_maximums(per_site, len(inv.vcenters),
                                                       interop.interop_data().configuration_maximums):
        warnings.append(f"domain {inv.domain}: {verdict.reason} (unsupported topology, before and after the "
                        f"upgrade)")
    plan = Plan(inv.domain, target.release, inv.path, inventory_sha256, playbook.path, playbook_sha256,
                rule_text, 0.0, tuple(phases), tuple(warnings), concurrency=concurrency)
    plan = _with_window(plan)
    _assert_invariants(plan, inv)
    return _sealed(plan)


def _cold_snapshot_set(inv: Inventory, target: Version, batch: int) -> list[Step]:
    """Before a converge or a linked hop (`rules.cold_snapshot_set_required`): offline snapshots of ALL nodes,
    taken together (VMware KB 313886: "Offline snapshots of all nodes in an SSO domain (ELM) are required when
    any SSO domain update will be performed"; a revert reverts all of them before any is powered on). The
    same step ids as `backup --snapshots`."""
    why = "cold snapshot set of all nodes of the SSO domain before the hop (VMware KB 313886)"
    return [Step(f"pre/snapshot-set/{n.name}", "pre", batch, n.name, n.role, n.site, "backup", "snapshot-set",
                 n.version.release, target.release, why, "pre") for n in inv.nodes if n.vm is not None]


def _converge_lanes(inv: Inventory, play: Play, target: Version, groups: list[list[Node]]) -> list[Step]:
    """The vCenters one per batch; each upgrade says whether it is the SSO domain's first instance or which
    vCenter already at the target is its replication partner (the installer template carries the same)."""
    partners = converge_partners_of(inv)
    steps: list[Step] = []
    for batch, (vc,) in enumerate(groups):
        partner = partners[vc.name]
        role = ("first instance of the SSO domain (sso.first_instance: true)" if partner is None else
                f"replication partner {partner}, already at {target.release} (sso.replication_partner_hostname)")
        for step in _node_lane(vc, play, target, "vcenter", batch, vc.version, "during"):
            if step.action == "upgrade":
                step = replace(step, reason=f"converge: the installer folds PSC {vc.psc} into the new appliance; "
                                            f"{role}")
            steps.append(step)
    return steps


def _split_batches(steps: list[Step]) -> list[Step]:
    """Stable order: by batch, then as planned (a node's lane keeps its task order)."""
    return sorted(steps, key=lambda s: s.batch)


def _with_window(plan: Plan) -> Plan:
    return replace(plan, window_estimate_min=round(window_estimate(plan), 1))


def lane_minutes(steps: Iterable[Step]) -> float:
    return sum(interop.estimate_minutes(s.action, s.method, s.role) for s in steps)


def window_estimate(plan: Plan) -> float:
    """Expected mixed-version window (minutes): from the first PSC install to the last vCenter verified.

    Each batch lasts as long as its longest node lane; batches run one after another.
    """
    total = 0.0
    for name in ("psc", "vcenter"):
        for _, steps in plan.phase(name).batches():
            lanes: dict[str, list[Step]] = {}
            for s in steps:
                lanes.setdefault(s.node, []).append(s)
            total += max(lane_minutes(l) for l in lanes.values())
    return total


def _assert_invariants(plan: Plan, inv: Inventory) -> None:
    """Belt and braces: the seed's order rule, checked on the computed plan with the same rule function."""
    order = [(s.role, s.node) for s in plan.steps() if s.action == "upgrade"]
    verdict = rules.wave_order_allowed(order)
    if not verdict:
        raise RefusedError(verdict.reason, rule=verdict.rule)


def _sealed(plan: Plan) -> Plan:
    return replace(plan, plan_hash=content_hash(plan.body()))


def with_route(plan: Plan, route: dict[str, Any]) -> Plan:
    """The same plan as the first hop of a longer route (the route is part of what the hash seals)."""
    return _sealed(replace(plan, route=route))


# ---------------------------------------------------------------- saved plans

def plan_text(plan: Plan) -> str:
    """The saved form of a plan (sorted keys: the same plan is the same file)."""
    return json.dumps(plan.to_json(), indent=2, sort_keys=True) + "\n"


def save_plan(plan: Plan, path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(plan_text(plan))
    tmp.replace(p)


def plan_from_json(data: Any, filename: str) -> Plan:
    """Rebuild a Plan from its JSON, refusing a file whose content does not match its hash."""
    where = Where(file=filename)
    if not isinstance(data, dict) or "plan_hash" not in data or "phases" not in data:
        raise InputError("not a vcwave plan file (no plan_hash/phases)", where)
    if data.get("format") != PLAN_FORMAT:
        raise InputError(f"plan format {data.get('format')!r} is not supported (expected {PLAN_FORMAT})",
                         Where(file=filename, field="format"))
    body = {k: v for k, v in data.items() if k != "plan_hash"}
    if content_hash(body) != data["plan_hash"]:
        raise InputError("plan file was modified after it was computed (content does not match plan_hash); "
                         "run `invoke plan` again", Where(file=filename, field="plan_hash"))
    try:
        phases = tuple(Phase(p["name"], tuple(Step.from_json(s) for s in p["steps"])) for p in data["phases"])
        return Plan(data["domain"], data["target"], data["inventory"], data["inventory_sha256"], data["playbook"],
                    data["playbook_sha256"], data["concurrency_rule"], float(data["window_estimate_min"]), phases,
                    tuple(data.get("warnings", ())), data["plan_hash"], data.get("concurrency"),
                    dict(data.get("route") or {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"plan file is malformed: {exc!r}", where) from None


def load_plan(path: str | Path) -> Plan:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("plan file not found; make it with `invoke plan --inventory INVENTORY --target VERSION "
                         f"--out {p}`", Where(file=str(p))) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"plan file is not JSON: {exc}", Where(file=str(p))) from None
    return plan_from_json(data, str(p))


def check_plan_matches(plan: Plan, inventory_sha256: str, domain: str) -> None:
    """Later commands apply exactly the saved plan; refuse it if the inventory changed since."""
    if plan.domain != domain:
        raise InputError(f"plan is for domain '{plan.domain}', inventory describes '{domain}'",
                         Where(field="domain"))
    if plan.inventory_sha256 != inventory_sha256:
        raise InputError("the inventory changed since this plan was computed (hash mismatch); run `invoke plan` "
                         "again and review it", Where(file=plan.inventory, field="inventory_sha256"))


# ---------------------------------------------------------------- a saved plan, applied

def seed_rule_breaks(plan: Plan) -> list[rules.Verdict]:
    """The seed's order rules, asked of a loaded plan as it stands (its hash proves only that nobody changed
    it without recomputing a SHA-256, which anyone can)."""
    out = []
    phases = {p.name: p for p in plan.phases}
    for name, role in (("psc", "vcenter"), ("vcenter", "psc")):
        strays = [s.node for s in phases.get(name, Phase(name, ())).steps if s.action == "upgrade" and s.role == role]
        if strays:
            out.append(rules.Verdict(False, "pscs-before-vcenters",
                                     f"{rules.SITE_BY_SITE}: the {name} wave upgrades the {role}(s) "
                                     f"{', '.join(strays)}"))
    for _, steps in phases.get("psc", Phase("psc", ())).batches():
        pscs = sorted({s.node for s in steps if s.action == "upgrade"})
        if len(pscs) > 1:
            out.append(rules.Verdict(False, "psc-one-at-a-time",
                                     f"{rules.psc_concurrency_allowed(len(pscs)).reason}, but one batch "
                                     f"upgrades {', '.join(pscs)} together"))
    order = rules.wave_order_allowed((s.role, s.node) for s in plan.steps() if s.action == "upgrade")
    return out + ([order] if not order else [])


def _step_differences(saved: Plan, rebuilt: Plan) -> list[str]:
    old = {s.id: (p.name, s.to_json()) for p in saved.phases for s in p.steps}
    new = {s.id: (p.name, s.to_json()) for p in rebuilt.phases for s in p.steps}
    out = [f"step {i} is not in the computed plan" for i in old if i not in new]
    out += [f"step {i} is missing" for i in new if i not in old]
    for i in old.keys() & new.keys():
        if old[i] != new[i]:
            fields = sorted(k for k in new[i][1] if old[i][1].get(k) != new[i][1][k]) or ["phase"]
            out.append(f"step {i}: {', '.join(fields)} differ")
    if not out and [s.id for s in saved.steps()] != [s.id for s in rebuilt.steps()]:
        out.append("the steps are in another order")
    return sorted(out)


def check_applied(saved: Plan, plan_file: str, inv: Inventory, playbook: Playbook, playbook_sha256: str) -> None:
    """A saved plan is applied only if it is the plan its inventory and playbook give today: any edit is
    refused (exit 2), named by the seed rule it breaks when it breaks one."""
    where = Where(file=plan_file, field="phases")
    breaks = seed_rule_breaks(saved)
    if breaks:
        raise InputError(f"the saved plan breaks a rule of the seed: {breaks[0].reason}. It was edited after "
                         f"`invoke plan`: run `invoke plan` again", where, rule=breaks[0].rule)
    if playbook_sha256 != saved.playbook_sha256:
        raise InputError(f"the playbook {saved.playbook} changed since this plan was computed; run `invoke plan` "
                         f"again and review it", Where(file=plan_file, field="playbook_sha256"))
    rebuilt = build_plan(inv, playbook, parse_version(saved.target), inventory_sha256=saved.inventory_sha256,
                         playbook_sha256=saved.playbook_sha256, concurrency=saved.concurrency)
    diffs = _step_differences(saved, rebuilt)
    saved_body, rebuilt_body = saved.body(), rebuilt.body()  # each serializes every step: once, not per key
    for key in ("target", "concurrency_rule", "window_estimate_min", "warnings"):
        if saved_body[key] != rebuilt_body[key]:
            diffs.append(f"{key} differs")
    if diffs:
        raise InputError("the saved plan is not the plan its inventory and playbook give (" + "; ".join(diffs[:5])
                         + (f"; {len(diffs) - 5} more" if len(diffs) > 5 else "") + "): it was edited after "
                         "`invoke plan`; run `invoke plan` again", where, rule="plan-as-computed")

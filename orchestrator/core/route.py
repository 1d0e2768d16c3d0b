"""Routes: the chain of campaigns (hops) from a domain's release to a target more than one upgrade away.

Why: VMware only supports direct upgrades between some release lines (`data/interop.yaml`, from its Upgrade
Path tool) and a domain with external PSCs cannot keep them past 6.7. An administrator asking for 8.0 U3 on
a 6.0 U3 domain needs the whole road (6.0 U3 -> 6.7 U3 -> 7.0 U3 -> 8.0 U3), each hop's method and order,
not "no direct upgrade path". Each hop is one campaign of its own: backups before and after, its own
mixed-version window, verified and backed up before the next one is planned. Pure core: the route comes
from the data (direct paths, line features, `converge_into`, GA dates), never from code listing versions.

Hop kinds (decided by the topology before/after and the lines, see `hop_kind`):
- `patch` / `installer`: a 6.x domain, external PSCs one at a time then the vCenters (the seed's order);
- `converge`: external PSCs -> 7.0; each vCenter is upgraded by the installer, which folds the PSC
  services into the new appliance; one vCenter at a time; the PSCs are decommissioned afterwards
  (vSphere 7.0 Upgrade guide; docs/vsphere-facts-7-8.md);
- `linked-major` / `linked-patch`: embedded linked vCenters (7.0 -> 8.0, patches within 7.0/8.0), one at
  a time after a cold snapshot set of all of them (VMware KB 313886).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from orchestrator.core import interop
from orchestrator.core.versions import Version, catalogue
from orchestrator.errors import RefusedError

EXTERNAL = "external-psc"
EMBEDDED = "embedded"

_ORDER = {
    "patch": "every external PSC of every site one at a time, then the vCenters (those sharing a PSC together)",
    "installer": "every external PSC of every site one at a time, then the vCenters (those sharing a PSC "
                 "together); the source appliances are kept powered off",
    "converge": "no PSC step (a PSC cannot go to 7.0): the vCenters one at a time by the installer, the first "
                "with sso.first_instance, each next with a replication partner already at the target (same site "
                "first), after a cold snapshot set of all nodes; then the PSCs are decommissioned",
    "linked-major": "the linked vCenters one at a time by the installer (VMware: no parallel upgrades), after a "
                    "cold snapshot set of all of them",
    "linked-patch": "the linked vCenters one at a time by the appliance update API, after a cold snapshot set of "
                    "all of them",
}


@dataclass(frozen=True)
class Hop:
    """One campaign of a route: the whole domain goes from `source` to `target`."""

    number: int
    source: Version
    target: Version
    kind: str
    topology_before: str
    topology_after: str

    @property
    def order(self) -> str:
        return _ORDER[self.kind]

    @property
    def method(self) -> str:
        """The upgrade method of the hop's nodes (a 6.5 patch is `manual`: no REST update API)."""
        if self.kind in ("converge", "linked-major"):
            return "installer"
        return interop.upgrade_method(self.source, self.target).method

    def to_json(self) -> dict[str, Any]:
        return {"hop": self.number, "from": self.source.release, "to": self.target.release, "kind": self.kind,
                "method": self.method, "order": self.order, "topology_before": self.topology_before,
                "topology_after": self.topology_after}


@dataclass(frozen=True)
class Route:
    hops: tuple[Hop, ...]

    @property
    def first(self) -> Hop:
        return self.hops[0]

    @property
    def final(self) -> Version:
        return self.hops[-1].target


def _line(v: Version) -> str:
    return f"{v.major}.{v.minor}"


def _line_key(line: str) -> tuple[int, ...]:
    return tuple(int(x) for x in line.split("."))


def _next_lines(line: str) -> list[str]:
    """Lines one direct major upgrade away, newest first (so a route prefers newer intermediate lines)."""
    paths = interop.interop_data().upgrade_paths
    return sorted((t for t, sources in paths.items() if line in sources), key=_line_key, reverse=True)


def _external_psc(line: str) -> bool:
    return interop.interop_data().lines[line].external_psc


def _step(line: str, external: bool, nxt: str) -> bool | None:
    """Topology after upgrading a domain on `line` to `nxt` (True: external PSCs), None if vcwave will not.

    A line without external PSCs is reached from an external-PSC domain only by converging, and only into
    the lines of `converge_into` (data, with the reason next to it)."""
    if external and not _external_psc(nxt):
        return False if nxt in interop.interop_data().converge_into else None
    return external


def _line_path(src: str, dst: str, external: bool) -> list[tuple[str, bool]] | None:
    """Fewest-hop chain of (line, external topology after it) from `src` to `dst`; breadth first."""
    start = (src, external)
    parent: dict[tuple[str, bool], tuple[str, bool] | None] = {start: None}
    todo = deque([start])
    while todo:
        line, ext = todo.popleft()
        if line == dst:
            chain = [(line, ext)]
            while parent[chain[-1]] is not None:
                chain.append(parent[chain[-1]])  # type: ignore[arg-type]
            return chain[::-1]
        for nxt in _next_lines(line):
            after = _step(line, ext, nxt)
            if after is not None and (nxt, after) not in parent:
                parent[(nxt, after)] = (line, ext)
                todo.append((nxt, after))
    return None


def _landing(line: str, not_after: Version) -> Version | None:
    """The newest release of `line` not released after `not_after` (so the next hop is never back in time)."""
    cat = catalogue()
    limit = cat.release_date(not_after)
    rows = [r for r in cat.releases if _line(r.version) == line and (limit is None or r.date <= limit)]
    return max(rows, key=lambda r: r.version).version.without_build() if rows else None


def hop_kind(source: Version, target: Version, external_before: bool, external_after: bool) -> str:
    """Which kind of campaign moves a domain from source to target (see the module docstring)."""
    if external_before and not external_after:
        return "converge"
    if _external_psc(_line(target)):
        return "patch" if source.line == target.line else "installer"
    return "linked-patch" if source.line == target.line else "linked-major"


def find_route(source: Version, external_psc: bool, target: Version) -> Route:
    """The route from a domain at `source` (its oldest node) to `target`. Raises RefusedError (exit 2)."""
    s, t = source.without_build(), target.without_build()
    for v in (s, t):
        if _line(v) not in interop.interop_data().lines or catalogue().by_release(v) is None:
            raise RefusedError(f"{v.release} is not a release in vcwave's interop data", rule="upgrade-path")
    if t <= s or s.line == t.line:
        chain = [(_line(s), external_psc), (_line(t), _step(_line(s), external_psc, _line(t)))]
        if chain[1][1] is None:
            chain = None
    else:
        chain = _line_path(_line(s), _line(t), external_psc)
    if chain is None:
        raise RefusedError(f"no upgrade route from {s.release} to {t.release} in vcwave's interop data "
                           f"(direct paths: {_paths_text()})", rule="upgrade-path")
    releases = [t]
    for line, _ in reversed(chain[1:-1]):
        landing = _landing(line, releases[0])
        if landing is None:
            raise RefusedError(f"no {line} release is older than {releases[0].release}: no route from "
                               f"{s.release} to {t.release}", rule="upgrade-path")
        releases.insert(0, landing)
    releases.insert(0, s)
    hops = []
    for i in range(1, len(chain)):
        a, b = releases[i - 1], releases[i]
        before, after = chain[i - 1][1], chain[i][1]
        verdict = interop.check_path(a, b)
        if not verdict.ok:
            raise RefusedError(f"hop {i} of the route ({a.release} -> {b.release}): {verdict.reason}",
                               rule="upgrade-path")
        hops.append(Hop(i, a, b, hop_kind(a, b, before, after), EXTERNAL if before else EMBEDDED,
                        EXTERNAL if after else EMBEDDED))
    return Route(tuple(hops))


def _paths_text() -> str:
    paths = interop.interop_data().upgrade_paths
    return "; ".join(f"{t} from {', '.join(src)}" for t, src in paths.items())


def describe(route: Route) -> str:
    """One line: '6.0 U3 -> 6.7 U3 (installer) -> 7.0 U3 (converge) -> 8.0 U3 (linked-major)'."""
    return route.hops[0].source.release + "".join(f" -> {h.target.release} ({h.kind})" for h in route.hops)

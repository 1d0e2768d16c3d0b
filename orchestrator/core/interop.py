"""Upgrade paths and method choice: which upgrades VMware supports, and how each one is carried out.

Pure core over the data in `data/interop.yaml` + `data/releases.yaml`. Nothing here guesses: a path that
is not in the data is refused with the reason, and every step's method (update API, installer, manual;
file, snapshot-set or external backup) is derived from version data, never assumed.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from orchestrator.core.versions import Version, catalogue, parse_version
from orchestrator.core.yamlsrc import load_trusted

UPGRADE_METHODS = ("update", "installer", "manual", "none")


@dataclass(frozen=True)
class LineFeatures:
    rest: bool
    update_api: bool
    file_backup: bool
    external_psc: bool


@dataclass(frozen=True)
class InteropData:
    upgrade_paths: dict[str, tuple[str, ...]]
    lines: dict[str, LineFeatures]
    location_types_since: dict[str, Version]
    durations_min: dict[str, float]
    configuration_maximums: dict[str, int]
    restart_min: dict[str, float]
    converge_into: tuple[str, ...] = ()

    def features(self, v: Version) -> LineFeatures:
        key = f"{v.major}.{v.minor}"
        if key not in self.lines:
            raise KeyError(f"release line {key} is not in vcwave's interop data")
        return self.lines[key]


@lru_cache(maxsize=1)
def interop_data() -> InteropData:
    raw = load_trusted(resources.files("orchestrator.core").joinpath("data/interop.yaml").read_text())
    return InteropData(
        upgrade_paths={k: tuple(v) for k, v in raw["upgrade_paths"].items()},
        lines={k: LineFeatures(**v) for k, v in raw["lines"].items()},
        location_types_since={k: parse_version(v) for k, v in raw["location_types_since"].items()},
        durations_min={k: float(v) for k, v in raw["durations_min"].items()},
        configuration_maximums={k: int(v) for k, v in raw["configuration_maximums"].items()},
        restart_min={k: float(v) for k, v in raw["restart_min"].items()},
        converge_into=tuple(str(x) for x in raw.get("converge_into", ())),
    )


@dataclass(frozen=True)
class PathVerdict:
    """Whether source -> target is a supported direct upgrade, and why."""

    ok: bool
    kind: str  # "none" (already there), "patch" (same line), "major", or "refused"
    reason: str


def _line(v: Version) -> str:
    return f"{v.major}.{v.minor}"


def check_path(source: Version, target: Version) -> PathVerdict:
    """Is `source` -> `target` a supported direct upgrade? Pure; the reason says which rule decided."""
    data = interop_data()
    s, t = source.without_build(), target.without_build()
    for v in (s, t):
        if _line(v) not in data.lines:
            return PathVerdict(False, "refused", f"release line {_line(v)} is not in vcwave's interop data")
        if catalogue().by_release(v) is None:
            return PathVerdict(False, "refused", f"{v.release} is not a known release")
    if s == t:
        return PathVerdict(True, "none", f"already at {t.release}")
    if t < s:
        return PathVerdict(False, "refused", f"{s.release} -> {t.release} is a downgrade; use a rollback instead")
    if s.line == t.line:
        return PathVerdict(True, "patch", f"patch within the {_line(t)} line")
    sources = data.upgrade_paths.get(_line(t), ())
    if _line(s) not in sources:
        allowed = ", ".join(sources) or "none"
        return PathVerdict(False, "refused",
                           f"no direct upgrade path {s.release} -> {t.release} (to {_line(t)} only from {allowed}); "
                           f"upgrade through an intermediate release")
    s_date, t_date = catalogue().release_date(s), catalogue().release_date(t)
    if s_date and t_date and s_date > t_date:
        return PathVerdict(False, "refused",
                           f"back in time: {s.release} (released {s_date}) is newer than {t.release} "
                           f"(released {t_date}); choose a later update of {_line(t)}")
    return PathVerdict(True, "major", f"major upgrade {_line(s)} -> {_line(t)} (supported direct path)")


@dataclass(frozen=True)
class MethodChoice:
    method: str  # update | installer | manual | none
    reason: str


def upgrade_method(source: Version, target: Version, platform: str = "appliance") -> MethodChoice:
    """How a node goes from source to target. Assumes `check_path` accepted the pair."""
    verdict = check_path(source, target)
    if not verdict.ok:
        raise ValueError(verdict.reason)
    if verdict.kind == "none":
        return MethodChoice("none", verdict.reason)
    if platform == "windows":
        if verdict.kind == "major":
            return MethodChoice("manual", "vCenter on Windows: migrate to the appliance with VMware's Migration "
                                          "Assistant and the GUI installer (vcwave cannot drive it)")
        return MethodChoice("manual", "vCenter on Windows: patch with VMware's Windows installer ISO")
    if verdict.kind == "major":
        return MethodChoice("installer", f"{verdict.reason}: a migration by VMware's installer "
                                         f"(vcsa-deploy upgrade); the source appliance is kept powered off")
    feats = interop_data().features(source)
    if feats.update_api:
        return MethodChoice("update", f"patch within {_line(target)} from {source.release}: appliance update API")
    if feats.rest:
        return MethodChoice("manual", f"{source.release} has no REST update API: patch through the appliance "
                                      f"shell (software-packages stage/install --iso) or the VAMI UI")
    return MethodChoice("manual", f"{source.release} has no appliance API: patch with the {_line(target)} "
                                  f"update ISO (VAMI or shell)")


def backup_methods(version: Version, platform: str, has_vm: bool) -> tuple[str, ...]:
    """Backup methods a node of this version can use, best first (external is declared, not derived)."""
    out = []
    if platform == "appliance" and interop_data().features(version).file_backup:
        out.append("file")
    if has_vm:
        out.append("snapshot-set")
    return tuple(out)


def backup_method_problem(version: Version, platform: str, has_vm: bool, declared: str | None,
                          location_type: str = "") -> str | None:
    """Why the declared backup method cannot work for this node (None if it can)."""
    if declared is None:
        return (None if backup_methods(version, platform, has_vm)
                else f"no backup method: {version.release} has no file-based backup and no appliance VM is "
                     f"declared (add 'vm' for a snapshot-set or an 'external' backup)")
    if declared == "file":
        if platform != "appliance" or not interop_data().features(version).file_backup:
            return (f"file-based backup needs the appliance backup API (6.5+); this node runs "
                    f"{version.release} on {platform}: use 'snapshot-set' or 'external'")
        since = interop_data().location_types_since.get(location_type)
        if since and version.without_build() < since:
            return f"backup location_type {location_type} needs {since.release}+; the node runs {version.release}"
    if declared == "snapshot-set" and not has_vm:
        return "a snapshot-set backup needs the node's appliance VM ('vm: {vcenter, name}')"
    return None


def has_rest_api(version: Version) -> bool:
    return interop_data().features(version).rest


def supports_external_psc(version: Version) -> bool:
    return interop_data().features(version).external_psc


def estimate_minutes(step: str, method: str = "", role: str = "") -> float:
    """Planning estimate (minutes) of one step, from the data."""
    d = interop_data().durations_min
    if step == "upgrade":
        if method == "installer":
            return d[f"installer_{role}"]
        if method == "manual":
            return d["manual"]
        if method == "none":
            return 0.0
        return d["update_install"]
    return d.get(step, 0.0)


def restart_minutes(kind: str) -> float:
    """How long a node may stay silent while a change of this kind lands (update, stage, installer, backup,
    power_on, restore, verify), from the data: the deadline of the "unknown" wait (core.converge)."""
    data = interop_data().restart_min
    if kind not in data:
        raise KeyError(f"no restart deadline for {kind!r} in vcwave's interop data")
    return data[kind]

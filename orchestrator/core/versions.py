"""vCenter/PSC versions: parsing, ordering, and the release catalogue shipped as data.

Why a catalogue: a version string alone ("6.5.0" from vim25 `about.version`) does not say which update a
node runs; the build does. The catalogue maps release <-> build <-> GA date <-> appliance version string,
so every other module reasons over one `Version` type ordered by (major, minor, update, build).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources

from orchestrator.core.yamlsrc import load_trusted

_RELEASE_RE = re.compile(
    r"^\s*(?P<major>\d+)\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?"  # 6.5 or 6.5.0
    r"(?:\s*(?:update\s*|u)(?P<update>\d+)(?P<letter>[a-z]?))?\s*$",
    re.IGNORECASE,  # VMware writes "Update 3", "U3"; admins type "UPDATE 3" or "u3" too
)
_APPLIANCE_RE = re.compile(r"^(?P<major>\d+)\.(?P<minor>\d+)\.(?P<x>\d+)\.(?P<y>\d+)$")


class VersionError(ValueError):
    """A version string we cannot read."""


@dataclass(frozen=True, order=True)
class Version:
    """A release line plus update level, e.g. 6.5 U1. Ordered by (major, minor, update, letter, build).

    `build` is optional: 0 means "not known"; two versions of the same release with unknown builds
    compare equal on build.
    """

    major: int
    minor: int
    update: int = 0
    letter: str = ""
    build: int = field(default=0, compare=True)

    @property
    def line(self) -> tuple[int, int]:
        """The release line (major, minor): patches move within it, major upgrades between lines."""
        return (self.major, self.minor)

    @property
    def release(self) -> str:
        """Human release name: '6.5', '6.5 U1', '6.0 U3a'."""
        base = f"{self.major}.{self.minor}"
        return base + (f" U{self.update}{self.letter}" if self.update or self.letter else "")

    @property
    def release_key(self) -> tuple[int, int, int, str]:
        """What names the release (line + update level), builds ignored."""
        return (self.major, self.minor, self.update, self.letter)

    def same_release(self, other: "Version") -> bool:
        """True when both are the same release (line + update level), builds ignored."""
        return self.release_key == other.release_key

    def without_build(self) -> "Version":
        return Version(self.major, self.minor, self.update, self.letter, 0)

    def __str__(self) -> str:
        return self.release + (f" (build {self.build})" if self.build else "")


def parse_version(text: str | int | float, build: int | str | None = None) -> Version:
    """Parse '6.0 U3', '6.0.0 U3', '6.5U1', '6.7 Update 2', '7.0' (optionally with a build).

    An appliance string like '6.5.0.10000' is also accepted (see `parse_appliance_version`).
    Raises VersionError naming the text when it is not a version.
    """
    raw = str(text).strip()
    if _APPLIANCE_RE.match(raw):
        v = parse_appliance_version(raw)
    else:
        m = _RELEASE_RE.match(raw)
        if not m:
            raise VersionError(f"not a vCenter/PSC version: {raw!r} (expected e.g. '6.5 U1' or '6.7.0 U3')")
        _refuse_patch_field(raw, m, build)
        v = Version(int(m["major"]), int(m["minor"]), int(m["update"] or 0), (m["letter"] or "").lower())
    if build not in (None, "", 0):
        try:
            b = int(build)
        except (TypeError, ValueError):
            raise VersionError(f"not a build number: {build!r}") from None
        if b <= 0:
            raise VersionError(f"not a build number: {build!r}")
        v = Version(v.major, v.minor, v.update, v.letter, b)
    return v


def read_as(text: str | int | float) -> str:
    """How a version typed by a user was read, when it is not the release's own name: "'6.7U3' read as
    6.7 U3". Empty for '6.7 U3' itself. Why: '6.7U3', '6.7 update 3' or '6.7.0 U3' are unambiguous and
    accepted (unlike '6.0.3', refused by `_refuse_patch_field`), but never silently: the operator sees
    which release the plan is for, in the words the plan uses."""
    raw = str(text).strip()
    release = parse_version(raw).release
    return "" if raw == release else f"{raw!r} read as {release}"


def _refuse_patch_field(raw: str, m: re.Match, build: object) -> None:
    """'6.0.3' is not 6.0 GA: vCenter releases are named 'x.y Un', and the third field only ever reads 0
    except in vim25's `about.version` of 7.0+ ('7.0.3'), which always comes with a build that says which
    update it is. Without a build, or next to an explicit update, a non-zero third field is refused."""
    patch = int(m["patch"] or 0)
    if patch and (build in (None, "", 0) or m["update"]):
        raise VersionError(f"not a vCenter/PSC release name: {raw!r} (releases are written 'x.y Un'; did you "
                           f"mean '{m['major']}.{m['minor']} U{patch}'?)")


def parse_appliance_version(text: str) -> Version:
    """Parse what /rest/appliance/system/version answers: '6.5.0.10000' -> 6.5 U1, '7.0.2.00000' -> 7.0 U2.

    6.x appliances encode the update in the fourth field (x0000), 7.0+ in the third. The catalogue
    is consulted first, so GA strings like '6.5.0.5100' map to the right release.
    """
    raw = text.strip()
    for rel in catalogue().releases:
        if rel.appliance_version == raw:
            return rel.version.without_build()
    m = _APPLIANCE_RE.match(raw)
    if not m:
        raise VersionError(f"not an appliance version string: {raw!r}")
    major, minor, x, y = (int(m[k]) for k in ("major", "minor", "x", "y"))
    update = x if major >= 7 else y // 10000
    return Version(major, minor, update)


@dataclass(frozen=True)
class Release:
    """One row of the catalogue."""

    version: Version  # with its build
    date: dt.date
    appliance_version: str = ""


@dataclass(frozen=True)
class Catalogue:
    releases: tuple[Release, ...]

    @cached_property
    def _by_build(self) -> dict[int, Release]:
        """Build -> its first row, as a scan in catalogue order finds it. Why an index: every plan and every
        look resolves each node's version; a scan of the rows per lookup was the property tests' hottest line
        (~60k scans)."""
        out: dict[int, Release] = {}
        for r in self.releases:
            out.setdefault(r.version.build, r)
        return out

    @cached_property
    def _by_release(self) -> dict[tuple[int, int, int, str], Release]:
        """Release (builds ignored) -> its first row (see `_by_build`)."""
        out: dict[tuple[int, int, int, str], Release] = {}
        for r in self.releases:
            out.setdefault(r.version.release_key, r)
        return out

    def by_build(self, build: int) -> Release | None:
        return self._by_build.get(build)

    def by_release(self, v: Version) -> Release | None:
        return self._by_release.get(v.release_key)

    def resolve(self, v: Version) -> Version:
        """Fill in the update level from the build (vim25 only says '6.5.0'), or the build from the release."""
        if v.build:
            r = self.by_build(v.build)
            if r and r.version.line == v.line:
                return r.version
            return v
        r = self.by_release(v)
        return r.version if r else v

    def release_date(self, v: Version) -> dt.date | None:
        r = self.by_release(v)
        return r.date if r else None

    def appliance_string(self, v: Version) -> str:
        """The string an appliance of version v answers on /rest/appliance/system/version."""
        r = self.by_release(v)
        if r and r.appliance_version:
            return r.appliance_version
        if v.major >= 7:
            return f"{v.major}.{v.minor}.{v.update}.00000"
        return f"{v.major}.{v.minor}.0.{v.update}0000"


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The release catalogue shipped in orchestrator/core/data/releases.yaml."""
    text = resources.files("orchestrator.core").joinpath("data/releases.yaml").read_text()
    rows = load_trusted(text)["releases"]
    out = []
    for row in rows:
        base = parse_version(row["release"], row["build"])
        date = row["date"] if isinstance(row["date"], dt.date) else dt.date.fromisoformat(str(row["date"]))
        out.append(Release(base, date, str(row.get("appliance_version", ""))))
    return Catalogue(tuple(out))

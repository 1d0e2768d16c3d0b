"""Versions: parsing the ways people and APIs write them, ordering, and the release catalogue."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from tests.conftest import examples

from orchestrator.core.versions import (
    Version,
    VersionError,
    catalogue,
    parse_appliance_version,
    parse_version,
)


@pytest.mark.parametrize("text, expected", [
    ("6.0 U3", Version(6, 0, 3)),
    ("6.0.0 U3", Version(6, 0, 3)),
    ("6.5U1", Version(6, 5, 1)),
    ("6.5 u1", Version(6, 5, 1)),
    ("6.7 Update 2", Version(6, 7, 2)),
    ("6.7 update 2", Version(6, 7, 2)),
    ("6.7Update2", Version(6, 7, 2)),
    ("6.0 UPDATE 3", Version(6, 0, 3)),
    ("6.0 uPdAtE3", Version(6, 0, 3)),
    ("6.0 U3A", Version(6, 0, 3, "a")),
    ("6.0 U3a", Version(6, 0, 3, "a")),
    ("7.0", Version(7, 0)),
    ("  6.5  ", Version(6, 5)),
    ("6.5.0", Version(6, 5)),
    ("6.5.0.10000", Version(6, 5, 1)),
    ("6.5.0.5100", Version(6, 5, 0)),     # 6.5 GA, from the catalogue
    ("6.7.0.40000", Version(6, 7, 3)),    # 6.7 U3: the catalogue, not the x0000 rule, decides
    ("7.0.2.00000", Version(7, 0, 2)),
    ("7.0.0.10100", Version(7, 0, 0)),
])
def test_parse(text, expected):
    assert parse_version(text) == expected


def test_parse_accepts_yaml_numbers():
    assert parse_version(6.5) == Version(6, 5)
    assert parse_version(6.0) == Version(6, 0)


@pytest.mark.parametrize("text, build, expected_build", [
    ("6.5 U1", 5973321, 5973321),
    ("6.5 U1", "5973321", 5973321),
    ("6.5 U1", None, 0),
    ("6.5 U1", "", 0),
])
def test_parse_with_build(text, build, expected_build):
    v = parse_version(text, build)
    assert (v.major, v.minor, v.update, v.build) == (6, 5, 1, expected_build)


@pytest.mark.parametrize("text", ["", "six", "6", "7", "6.5 U", "U1", "6.5 Update", "6.5 U1 extra", "v6.5",
                                  "6.5-U1", "6.5 SP1", "6..5", "6.5.0.1.2", "latest", "6.5 U1.2"])
def test_bad_strings_raise(text):
    with pytest.raises(VersionError, match="not a vCenter/PSC version"):
        parse_version(text)


@pytest.mark.parametrize("build", ["abc", "12x", -1, "0x10", 1.5j])
def test_bad_builds_raise(build):
    with pytest.raises(VersionError, match="build"):
        parse_version("6.5 U1", build)


def test_version_error_is_a_value_error():
    assert issubclass(VersionError, ValueError)


@pytest.mark.parametrize("text", ["6.5", "6.5.0.x", "6.5.0"])
def test_bad_appliance_strings(text):
    with pytest.raises(VersionError):
        parse_appliance_version(text)


def test_appliance_rule_outside_catalogue():
    assert parse_appliance_version("6.7.0.50000") == Version(6, 7, 5)
    assert parse_appliance_version("7.0.4.00000") == Version(7, 0, 4)


def test_ordering_by_version_then_build():
    texts = ["7.0", "6.0 U3", "6.5", "6.7 U3", "6.5 U2", "5.5 U3", "6.0", "6.5 U1", "6.7"]
    ordered = sorted(parse_version(t) for t in texts)
    assert [v.release for v in ordered] == ["5.5 U3", "6.0", "6.0 U3", "6.5", "6.5 U1", "6.5 U2", "6.7", "6.7 U3",
                                            "7.0"]
    a, b = parse_version("6.5 U1", 100), parse_version("6.5 U1", 200)
    assert a < b < parse_version("6.5 U2", 1)
    assert parse_version("6.0 U3") < parse_version("6.0 U3a") < parse_version("6.0 U3b") < parse_version("6.5")
    assert parse_version("6.5 U1", 100) > parse_version("6.5 U1")  # unknown build sorts first


def test_release_names_and_helpers():
    v = parse_version("6.0 U3a", 5112527)
    assert v.release == "6.0 U3a"
    assert v.line == (6, 0)
    assert str(v) == "6.0 U3a (build 5112527)"
    assert str(parse_version("6.5")) == "6.5"
    assert v.without_build() == Version(6, 0, 3, "a")
    assert v.same_release(Version(6, 0, 3, "a", 1))
    assert not v.same_release(Version(6, 0, 3))


def test_catalogue_resolve_by_build():
    cat = catalogue()
    # vim25 only says "6.5.0" + build: the build decides the update level
    assert cat.resolve(Version(6, 5, 0, "", 5973321)) == Version(6, 5, 1, "", 5973321)
    assert cat.resolve(Version(6, 7, 0, "", 14367737)).release == "6.7 U3"
    assert cat.resolve(Version(6, 0, 0, "", 5112527)).release == "6.0 U3"
    # release without build -> the catalogue's build
    assert cat.resolve(parse_version("6.7 U2")).build == 13010631
    # unknown build, or a build of another line: left as it is
    assert cat.resolve(Version(6, 5, 0, "", 1)) == Version(6, 5, 0, "", 1)
    assert cat.resolve(Version(6, 7, 0, "", 5973321)) == Version(6, 7, 0, "", 5973321)
    assert cat.resolve(parse_version("6.6")) == parse_version("6.6")
    assert cat.by_build(5973321).version.release == "6.5 U1"
    assert cat.by_build(42) is None


def test_catalogue_is_consistent():
    rels = catalogue().releases
    builds = [r.version.build for r in rels]
    assert len(set(builds)) == len(builds) and all(b > 0 for b in builds)
    assert len({r.version.release for r in rels}) == len(rels)
    lines: dict = {}
    for r in rels:
        lines.setdefault(r.version.line, []).append(r)
    for line, rs in lines.items():
        ordered = sorted(rs, key=lambda r: r.version)
        assert [r.date for r in ordered] == sorted(r.date for r in ordered), line
        assert [r.version.build for r in ordered] == sorted(r.version.build for r in ordered), line
    assert catalogue().release_date(parse_version("6.0 U3")).isoformat() == "2017-02-23"
    assert catalogue().release_date(parse_version("6.6")) is None


@pytest.mark.parametrize("release", [r.version.release for r in catalogue().releases])
def test_catalogue_round_trips(release):
    cat = catalogue()
    v = parse_version(release)
    assert cat.by_release(v).version.release == release
    if v >= Version(6, 5):
        s = cat.appliance_string(v)
        assert parse_appliance_version(s) == v
        assert parse_version(s) == v


def test_appliance_string_outside_catalogue():
    assert catalogue().appliance_string(Version(7, 0, 9)) == "7.0.9.00000"
    assert catalogue().appliance_string(Version(6, 7, 9)) == "6.7.0.90000"


_releases = st.builds(Version, st.integers(5, 9), st.integers(0, 9), st.integers(0, 9),
                      st.sampled_from(["", "a", "b"]))


@settings(max_examples=examples(150), deadline=None)
@given(_releases, st.sampled_from(["{r}", "{mj}.{mn}.0 U{u}{l}", "{mj}.{mn}U{u}{l}", "{mj}.{mn} Update {u}{l}"]))
def test_every_spelling_parses_back(v, spelling):
    text = v.release if spelling == "{r}" else spelling.format(mj=v.major, mn=v.minor, u=v.update, l=v.letter)
    assert parse_version(text) == v


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.builds(Version, st.integers(5, 8), st.integers(0, 7), st.integers(0, 3),
                          st.sampled_from(["", "a"]), st.integers(0, 3)), min_size=2, max_size=8))
def test_order_is_lexicographic(vs):
    assert sorted(vs) == sorted(vs, key=lambda v: (v.major, v.minor, v.update, v.letter, v.build))


@pytest.mark.parametrize("text, suggestion", [("6.0.3", "6.0 U3"), ("6.5.1", "6.5 U1"), ("6.7.2", "6.7 U2"),
                                              ("6.0.3 U3", "6.0 U3")])
def test_third_field_is_not_silently_dropped(text, suggestion):
    """'6.0.3' used to read as 6.0 GA: a plan against the wrong release. It is refused with the right name."""
    with pytest.raises(VersionError, match=f"did you mean '{suggestion}'"):
        parse_version(text)


def test_vim25_third_field_with_a_build_is_resolved_by_the_build():
    """vim25's about.version of 7.0 U3 reads '7.0.3': with its build the catalogue says which update."""
    assert catalogue().resolve(parse_version("7.0.3", 18700403)) == Version(7, 0, 3, "", 18700403)

"""Interop: the upgrade method for every ordered pair of catalogue releases, refusals, backup methods.

The expected method is computed by an independent oracle written from the facts (docs/vsphere-facts.md,
"Upgrade order, paths and limits") — not by calling the code under test.
"""
from __future__ import annotations

import datetime as dt
import itertools

import pytest

from orchestrator.core import interop
from orchestrator.core.interop import backup_method_problem, backup_methods, check_path, upgrade_method
from orchestrator.core.versions import Version, catalogue, parse_version

# Direct major paths from the facts: target line <- source lines.
FACT_PATHS = {(6, 5): {(5, 5), (6, 0)}, (6, 7): {(6, 0), (6, 5)}, (7, 0): {(6, 5), (6, 7)},
              (8, 0): {(6, 7), (7, 0)}}
# GA dates (release notes / KB 2143838), written out again so a typo in the data shows up.
GA = {"6.0 U3": dt.date(2017, 2, 23), "6.5": dt.date(2016, 11, 15), "6.5 U1": dt.date(2017, 7, 27),
      "6.5 U2": dt.date(2018, 5, 3), "6.7": dt.date(2018, 4, 17), "6.7 U1": dt.date(2018, 10, 16)}

RELEASES = [r.version.without_build() for r in catalogue().releases]
PAIRS = list(itertools.product(RELEASES, RELEASES))


def oracle(s: Version, t: Version, platform: str) -> str | None:
    """The method the rules prescribe, or None when the pair is refused."""
    if s == t:
        return "none"
    if t < s:
        return None
    if s.line == t.line:
        if platform == "windows":
            return "manual"
        return "update" if s.line >= (6, 7) else "manual"  # REST update API from 6.7; 6.5 shell/VAMI; 5.5/6.0 ISO
    if s.line not in FACT_PATHS.get(t.line, set()):
        return None
    if catalogue().release_date(s) > catalogue().release_date(t):
        return None  # back in time
    return "manual" if platform == "windows" else "installer"


def test_ga_dates_match_the_facts():
    for rel, date in GA.items():
        assert catalogue().release_date(parse_version(rel)) == date, rel


@pytest.mark.parametrize("s, t", PAIRS, ids=[f"{s.release}->{t.release}" for s, t in PAIRS])
def test_method_for_every_pair(s, t):
    for platform in ("appliance", "windows"):
        want = oracle(s, t, platform)
        verdict = check_path(s, t)
        assert verdict.ok == (want is not None), (platform, verdict)
        if want is None:
            assert verdict.kind == "refused" and verdict.reason
            with pytest.raises(ValueError):
                upgrade_method(s, t, platform)
        else:
            choice = upgrade_method(s, t, platform)
            assert choice.method == want, (platform, choice)
            assert choice.method in interop.UPGRADE_METHODS
            assert choice.reason


def test_builds_do_not_change_the_verdict():
    s, t = parse_version("6.7 U1", 10244745), parse_version("6.7 U3", 14367737)
    assert upgrade_method(s, t).method == "update"
    assert upgrade_method(parse_version("6.7 U1", 1), parse_version("6.7 U1", 999)).method == "none"


@pytest.mark.parametrize("src, dst, fragment", [
    ("5.5 U3", "6.7", "no direct upgrade path"),
    ("5.5", "6.7 U3", "no direct upgrade path"),
    ("6.0 U3", "7.0", "no direct upgrade path"),
    ("6.5 U3", "8.0", "no direct upgrade path"),
    ("6.0 U3", "6.5", "back in time"),
    ("6.5 U2", "6.7", "back in time"),
    ("6.5 U3", "6.7 U2", "back in time"),
    ("6.7 U1", "6.5 U2", "downgrade"),
    ("6.7 U3", "6.7 U1", "downgrade"),
    ("7.0", "6.7 U3", "downgrade"),
    ("6.5", "6.6", "not in vcwave's interop data"),
    ("6.5", "6.5 U9", "not a known release"),
    ("6.0 U3a", "6.5 U1", "not a known release"),
])
def test_refusals(src, dst, fragment):
    verdict = check_path(parse_version(src), parse_version(dst))
    assert not verdict.ok and verdict.kind == "refused"
    assert fragment in verdict.reason


def test_back_in_time_reason_names_both_releases():
    reason = check_path(parse_version("6.0 U3"), parse_version("6.5")).reason
    assert "6.0 U3" in reason and "6.5" in reason and "2017-02-23" in reason


@pytest.mark.parametrize("src, dst, kind, method", [
    ("6.0 U3", "6.5 U1", "major", "installer"),   # the seed's scenario
    ("6.5 U2", "6.7 U1", "major", "installer"),
    ("5.5 U3", "6.5", "major", "installer"),
    ("6.7 U1", "6.7 U3", "patch", "update"),
    ("7.0", "7.0 U3", "patch", "update"),
    ("6.5", "6.5 U3", "patch", "manual"),
    ("6.0", "6.0 U3", "patch", "manual"),
    ("5.5", "5.5 U3", "patch", "manual"),
    ("6.7 U3", "7.0", "major", "installer"),
    ("6.7 U3", "6.7 U3", "none", "none"),
])
def test_known_paths(src, dst, kind, method):
    s, t = parse_version(src), parse_version(dst)
    assert check_path(s, t).kind == kind
    assert upgrade_method(s, t).method == method
    if kind != "none":
        assert upgrade_method(s, t, "windows").method == "manual"


def test_manual_reasons_say_how():
    assert "software-packages" in upgrade_method(parse_version("6.5"), parse_version("6.5 U1")).reason
    assert "ISO" in upgrade_method(parse_version("6.0"), parse_version("6.0 U3")).reason
    assert "Migration Assistant" in upgrade_method(parse_version("6.0 U3"), parse_version("6.5 U1"),
                                                   "windows").reason


# ------------------------------------------------------------------ backups

V = parse_version


def test_backup_methods_by_version():
    assert backup_methods(V("6.0 U3"), "appliance", True) == ("snapshot-set",)
    assert backup_methods(V("6.0 U3"), "appliance", False) == ()
    assert backup_methods(V("6.5"), "appliance", False) == ("file",)
    assert backup_methods(V("6.5 U1"), "appliance", True) == ("file", "snapshot-set")
    assert backup_methods(V("6.7 U1"), "windows", True) == ("snapshot-set",)


def test_file_backup_on_6_0_is_a_problem():
    problem = backup_method_problem(V("6.0 U3"), "appliance", True, "file", "SFTP")
    assert problem and "6.5+" in problem and "snapshot-set" in problem
    assert backup_method_problem(V("5.5 U3"), "appliance", True, "file") is not None
    assert backup_method_problem(V("6.7 U1"), "windows", True, "file") is not None


@pytest.mark.parametrize("version", ["6.5", "6.5 U1", "6.7 U1", "7.0"])
def test_file_backup_on_6_5_plus_is_fine(version):
    assert backup_method_problem(V(version), "appliance", False, "file", "SFTP") is None


@pytest.mark.parametrize("loc", ["NFS", "SMB"])
def test_nfs_smb_need_6_7_u2(loc):
    problem = backup_method_problem(V("6.7 U1"), "appliance", False, "file", loc)
    assert problem and loc in problem and "6.7 U2" in problem
    assert backup_method_problem(V("6.5 U3"), "appliance", False, "file", loc) is not None
    assert backup_method_problem(V("6.7 U2"), "appliance", False, "file", loc) is None
    assert backup_method_problem(V("6.7 U3"), "appliance", False, "file", loc) is None


def test_snapshot_set_needs_a_vm():
    problem = backup_method_problem(V("6.0 U3"), "appliance", False, "snapshot-set")
    assert problem and "vm" in problem
    assert backup_method_problem(V("6.0 U3"), "appliance", True, "snapshot-set") is None


def test_no_declared_method():
    assert "no backup method" in backup_method_problem(V("6.0 U3"), "appliance", False, None)
    assert backup_method_problem(V("6.0 U3"), "appliance", True, None) is None
    assert backup_method_problem(V("6.5"), "appliance", False, None) is None
    assert backup_method_problem(V("6.0"), "appliance", False, "external") is None


def test_features_and_estimates():
    assert not interop.has_rest_api(V("6.0 U3")) and interop.has_rest_api(V("6.5"))
    assert interop.supports_external_psc(V("6.7 U3")) and not interop.supports_external_psc(V("7.0"))
    with pytest.raises(KeyError):
        interop.interop_data().features(V("6.6"))
    assert interop.estimate_minutes("upgrade", "installer", "vcenter") > interop.estimate_minutes(
        "upgrade", "update", "vcenter") > 0
    assert interop.estimate_minutes("upgrade", "none") == 0
    assert interop.estimate_minutes("backup") > 0
    assert interop.estimate_minutes("nonsense") == 0

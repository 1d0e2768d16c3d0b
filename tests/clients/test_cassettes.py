"""Offline replay of the recorded cassettes (record_mode="none"), and a scan for secrets in every cassette.

A missing cassette FAILS (never skips): re-record with `python -m lab.record` against a working lab.
"""
from __future__ import annotations

import re

import pytest

from lab.record import SCENARIOS, Endpoints, make_vcr

from .conftest import ROOT

CASSETTES = ROOT / "cassettes"

# The lab's secrets (lab/daemon.py gen_password, lab/appliance.py session ids, vcsim cookies) and every
# secret-bearing field left unscrubbed.
LEAK_PATTERNS = {
    "lab password": re.compile(r"Lb[A-Za-z0-9]{12}7!"),
    "appliance session id": re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"),
    "soap cookie": re.compile(r"vmware_soap_session=(?!\*\*\*)[\"']?[^\s;\"']+"),
    "soap password": re.compile(r"<password[^>]*>(?!\*\*\*</password>)"),
    "api session header": re.compile(r"vmware-api-session-id:\s*\n\s*-\s*'?(?!\*\*\*)[^\s']+"),
    "authorization": re.compile(r"Authorization:\s*\n\s*-\s*'?(?!\*\*\*)[^\s']+"),
    "json password": re.compile(r"\"(?:location_password|backup_password|sso_admin_user_password)\":\s*\"(?!\*\*\*)"),
    "user_data": re.compile(r"\"key\":\s*\"[^\"]*password[^\"]*\",\s*\"value\":\s*\"(?!\*\*\*)"),
    "vim25 session key": re.compile(r"<key>(?!\*\*\*)[^<]+</key>\s*<userName>"),
    "vcsim session object": re.compile(r"session\[(?!\*\*\*\])"),
    "session body": re.compile(r"\{\"value\":\s*\"[0-9a-f]{16,}\"\}"),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_cassette_replays_offline(name):
    path = CASSETTES / f"{name}.yaml"
    assert path.exists(), f"cassette {path} is missing: record it with `python -m lab.record`"
    with make_vcr("none").use_cassette(str(path), allow_playback_repeats=False) as cass:
        result = SCENARIOS[name](Endpoints.placeholder())
    assert cass.play_count > 0
    assert cass.all_played, f"{len(cass) - cass.play_count} recorded interactions were not replayed"
    assert result


def test_replayed_values_are_typed():
    with make_vcr("none").use_cassette(str(CASSETTES / "vsphere_fingerprint.yaml")):
        r = SCENARIOS["vsphere_fingerprint"](Endpoints.placeholder())
    assert r["fingerprint"].count("vms") >= 4 and r["round_trips"] == 3
    with make_vcr("none").use_cassette(str(CASSETTES / "appliance_update.yaml")):
        r = SCENARIOS["appliance_update"](Endpoints.placeholder())
    assert r["done"].state == "UP_TO_DATE" and r["version"].version == r["target"]


def test_no_cassette_is_missing():
    missing = [n for n in SCENARIOS if not (CASSETTES / f"{n}.yaml").exists()]
    assert not missing, f"missing cassettes: {missing}"


@pytest.mark.parametrize("path", sorted(CASSETTES.glob("*.yaml")), ids=lambda p: p.name)
def test_no_secret_in_cassette(path):
    text = path.read_text()
    hits = {k: rx.search(text).group(0) for k, rx in LEAK_PATTERNS.items() if rx.search(text)}
    assert not hits, f"{path.name} leaks: {hits}"


def test_scan_catches_leaks():
    """The scanner itself: every pattern fires on an unscrubbed sample."""
    samples = {
        "lab password": "pwd Lbabcdefghijkl7!",
        "appliance session id": "sid 0123456789abcdef0123456789abcdef",
        "soap cookie": 'vmware_soap_session="52aa-bb"',
        "soap password": '<password versionId="6.7">x</password>',
        "api session header": "vmware-api-session-id:\n      - 'abc'",
        "authorization": "Authorization:\n      - Basic YWJj",
        "json password": '"backup_password": "x"',
        "user_data": '"key": "vmdir.password", "value": "x"',
        "session body": '{"value": "0123456789abcdef0123"}',
        "vim25 session key": "<returnval><key>52ab-cd</key><userName>",
        "vcsim session object": 'type="ContainerView">session[sid-1]f8ac',
    }
    for k, s in samples.items():
        assert LEAK_PATTERNS[k].search(s), k


def test_record_all_then_replay(tmp_path, vcsim_factory):
    """Recording still works against a fresh lab, scrubs, and what it writes replays offline."""
    from lab.record import record_all
    counts = record_all(tmp_path, only=("appliance_session", "vsphere_about_sso"))
    assert counts["appliance_session"] > 0 and counts["vsphere_about_sso"] > 0
    for name in counts:
        text = (tmp_path / f"{name}.yaml").read_text()
        assert not [k for k, rx in LEAK_PATTERNS.items() if rx.search(text)]
        # only the scenario's own traffic: a lab sharing this process had its management vCenter SOAP session
        # recorded into appliance_session (then never asked again on replay)
        foreign = "/sdk" if name.startswith("appliance_") else "/rest/"
        assert foreign not in text, f"{name}: recorded traffic that is not the scenario's ({foreign})"
        with make_vcr("none").use_cassette(str(tmp_path / f"{name}.yaml")) as cass:
            SCENARIOS[name](Endpoints.placeholder())
        unplayed = [f"{r.method} {r.uri}" for i, r in enumerate(cass.requests) if not cass.play_counts[i]]
        assert cass.all_played, f"{name}: recorded but not asked again on replay: {unplayed}"

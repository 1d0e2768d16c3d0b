"""The pure parts of the kill harness and the lab's record (lab/kills.py, lab/ledger.py, lab/boot.py): when to
kill, whether a kill landed inside a reboot, which points a command offers, and whether the domain is whole."""
from __future__ import annotations

import random

import pytest

from lab import boot, kills, ledger

ROLES = {"psc-a": "psc", "psc-b": "psc", "vc-a": "vcenter", "vc-b": "vcenter"}


def record(*events: tuple[str, str, dict]) -> list[dict]:
    out: list[dict] = []
    for t, (node, event, detail) in enumerate(events):
        ledger.append(out, 100.0 + t, node, event, **detail)
    return out


def test_ledger_counts_and_refuses_unknown_events():
    led = record(("psc-a", "install_started", {}), ("psc-a", "install_completed", {}),
                 ("psc-a", "install_started", {}))
    assert ledger.counts(led) == {"psc-a": {"install_started": 2, "install_completed": 1}}
    assert [e["seq"] for e in led] == [1, 2, 3]
    with pytest.raises(ValueError, match="unknown ledger event"):
        ledger.append(led, 0.0, "psc-a", "installed")


def test_after_all_pscs_means_each_of_them():
    after = {"event": "install_completed", "node": "*", "role": "psc", "count": "all"}
    one = record(("psc-a", "install_completed", {}), ("psc-a", "install_completed", {}))
    assert not ledger.met(one, after, ROLES)  # twice the same PSC is not every PSC
    assert ledger.met(one + record(("psc-b", "install_completed", {})), after, ROLES)
    vc = {"event": "install_started", "node": "vc-a", "role": None, "count": 1}
    assert not ledger.met(record(("vc-b", "install_started", {})), vc, ROLES)
    assert ledger.met(record(("vc-a", "install_started", {})), vc, ROLES)


def test_boot_phases_refused_then_services_then_done():
    b = boot.start(10.0, 100.0, "install")
    assert [boot.phase(b, t) for t in (10.0, 39.9, 40.0, 109.9, 110.0)] == ["os", "os", "services", "services",
                                                                           None]
    assert boot.phase(None, 0.0) is None
    assert boot.REBOOT_PHASE == pytest.approx(0.625)  # 15 of the 40 minutes


def test_kill_time_for_each_kind():
    led = record(("psc-a", "install_started", {}), ("psc-a", "boot_started", {"why": "power_on", "seconds": 9}),
                 ("psc-a", "boot_started", {"why": "install", "seconds": 10.0}))
    assert kills.kill_time("random", 1, 2.5, [], started=50.0) == 52.5
    assert kills.kill_time("lab:install_started", 1, 0.0, led, 0.0) == 100.0
    assert kills.kill_time("lab:install_started", 2, 0.0, led, 0.0) is None
    assert kills.kill_time("reboot", 1, 0.5, led, 0.0) == 102.0 + 5.0  # the install's reboot, not the power-on
    assert kills.kill_time("reboot", 2, 0.5, led, 0.0) is None
    with pytest.raises(ValueError):
        kills.kill_time("boundary", 1, 0.0, led, 0.0)


def test_a_reboot_kill_counts_only_inside_the_reboot():
    led = record(("psc-a", "boot_started", {"why": "install", "seconds": 3.0}))
    assert kills.landed_in_reboot(led, 1, 101.0)
    assert not kills.landed_in_reboot(led, 1, 103.5)
    assert not kills.landed_in_reboot(led, 2, 101.0)


def test_lab_points_are_seeded_and_cover_every_event():
    led = record(("psc-a", "install_started", {}), ("psc-a", "boot_started", {"why": "install", "seconds": 3}),
                 ("psc-b", "power_on", {}), ("psc-b", "snapshot", {}), ("psc-b", "snapshot", {}))
    a = kills.lab_points(led, 20.0, random.Random(3), randoms=2)
    assert a == kills.lab_points(led, 20.0, random.Random(3), randoms=2)
    kinds = [k for k, _, _ in a]
    assert kinds.count("lab:snapshot") == 2 and kinds.count("reboot") == 1 and kinds.count("random") == 2
    assert {"lab:install_started", "lab:power_on"} <= set(kinds)
    assert all(0.05 <= at <= 0.9 for k, _, at in a if k == "reboot")
    assert all(0.02 * 20.0 <= at <= 0.8 * 20.0 for k, _, at in a if k == "random")  # a moment a rerun reaches


def test_a_command_too_short_to_time_has_no_random_point_and_leaves_the_seeded_sequence_alone():
    """A random moment in a command of a few milliseconds (a local `plan`) was missed whenever the killed run
    was a little faster than the clean one: such a command gets none; the moments of the commands after it
    are the same whether it got one or not."""
    short, longer = random.Random(5), random.Random(5)
    assert kills.lab_points([], kills.RANDOM_MIN_S / 10, short, randoms=2) == []
    assert [k for k, _, _ in kills.lab_points([], kills.RANDOM_MIN_S, longer, randoms=2)] == ["random"] * 2
    assert kills.lab_points([], 20.0, short, randoms=1) == kills.lab_points([], 20.0, longer, randoms=1)


def test_installed_once_from_the_record():
    c = {"psc-a": {"install_started": 1, "install_completed": 1}, "vc-a": {"install_started": 2,
                                                                          "install_completed": 1}}
    problems = kills.installed_once(c, ["psc-a", "vc-a", "vc-b"])
    assert problems == ["lab record: vc-a installs started 2, completed 1 (expected 1 and 1)",
                        "lab record: vc-b installs started 0, completed 0 (expected 1 and 1)"]


def _state(**changes):
    nodes = {n: {"version": "6.7 U3", "instance_uuid": f"u-{n}", "reachability": "up", "broken": "",
                 "restore_mode": False, "vm": {"vcenter": "mgmt", "name": n}, "previous": None} for n in ROLES}
    for n, ch in changes.items():
        nodes[n].update(ch)
    return {"nodes": nodes, "vms": {"mgmt": {n: "poweredOn" for n in ROLES}}}


def test_whole_domain_and_what_breaks_it():
    want = {n: "6.7 U3" for n in ROLES}
    uuids = {n: f"u-{n}" for n in ROLES}
    assert kills.whole(_state(), want, uuids) == []
    st = _state(**{"vc-b": {"reachability": "refused", "down_reason": "lab fault"},
                   "psc-a": {"version": "6.7 U1", "instance_uuid": "other"},
                   "vc-a": {"previous": {"vm": {"name": "vc-a-old"}}}})
    st["vms"]["mgmt"]["vc-a-old"] = "poweredOn"
    problems = kills.whole(st, want, uuids)
    assert "lab: vc-b does not answer (refused: lab fault)" in problems
    assert "lab: psc-a runs 6.7 U1, not 6.7 U3" in problems
    assert "lab: psc-a has instance UUID other, not u-psc-a" in problems
    assert "lab: vc-a's identity runs on two VMs (vc-a and vc-a-old)" in problems


def test_any_kill_may_land_inside_a_reboot_and_says_whose():
    led = record(("psc-a", "boot_started", {"why": "power_on", "seconds": 9.0}),
                 ("psc-b", "boot_started", {"why": "install", "seconds": 3.0}))
    assert kills.in_any_reboot(led, 102.5) == "psc-b"
    assert kills.in_any_reboot(led, 100.5) == ""  # a power-on boot is not an install's reboot
    assert kills.in_any_reboot(led, 104.0) == ""


def test_installs_per_node_from_the_record():
    c = {"psc-a": {"install_started": 1, "install_completed": 1}, "vc-a": {"install_started": 2}}
    assert kills.installs(c, ["psc-a", "vc-a", "vc-b"]) == {"psc-a": 1, "vc-a": 2, "vc-b": 0}

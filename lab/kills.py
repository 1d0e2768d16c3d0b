"""Kill points the journal cannot see, and what must hold after them — judged from the lab's own record.

Why apart from lab/harness.py: the harness's first kill points are journal events (a step started or
succeeded). The failures that hurt an administrator happen *between* them, inside the domain: while an
appliance reboots at the end of its install (15 of its 40 minutes, lab/boot.py), while a snapshot set powers
VMs off and on, while a rollback reverts. Those moments are in the lab's ledger (lab/ledger.py), read here
from outside through the control API (`GET /lab/record`), never through vcwave's code. Deciding *when* to
kill and *whether the domain is whole* are pure functions of that record, tested without a lab.

Kinds of point (`CrashPoint.kind` in lab/harness.py):

* ``lab:<event>`` — SIGKILL as soon as the n-th `<event>` of the command is in the record (LAB_EVENTS).
* ``reboot`` — SIGKILL inside the n-th install reboot of the command, at fraction `at` of it (seeded); the
  point counts only if the node was still rebooting when the kill landed (else it says so).
* ``random`` — SIGKILL `at` seconds after the command started (seeded, within its clean duration).
"""
from __future__ import annotations

import random
from typing import Any, Iterable

LAB_EVENTS = ("install_started", "snapshot", "power_off", "power_on", "revert", "restore_started")
REBOOT = "reboot"
RANDOM = "random"
# A random point is a moment after its command started, drawn within the part of the command's clean run that
# a run of the same command reliably reaches again. Durations vary from run to run: a forked `plan` that took
# ~33 ms in the clean run finished in under 32 ms when killed at 32 ms (the installer-path sweep's one point that
# never came, "exited 0 before the point"). So no moment falls in the last fifth of a run, and a command shorter
# than RANDOM_MIN_S (a local plan, a refusal) has none: its instants are its boundaries' and its journal's.
RANDOM_MIN_S = 0.5
RANDOM_SPAN = (0.02, 0.8)


class LabWatch:
    """The lab's record, read incrementally from its control API while a command runs."""

    def __init__(self, lab_dir: Any) -> None:
        self.lab_dir = lab_dir
        self.entries: list[dict] = []

    def _control(self, path: str) -> Any:
        from lab import manage
        return manage.control(self.lab_dir, path)

    def seq(self) -> int:
        """The last entry's number (entries after it belong to what runs next)."""
        view = self._control("/lab/record?since=0")
        return len(view["events"])

    def poll(self, since: int) -> list[dict]:
        """Entries after `since` (cumulative across calls: only the new ones are fetched)."""
        got = self._control(f"/lab/record?since={since + len(self.entries)}")["events"]
        self.entries += got
        return self.entries

    def counts(self) -> dict[str, dict[str, int]]:
        return self._control("/lab/record?since=0")["counts"]

    def state(self) -> dict:
        return self._control("/lab/state")


def reboots(entries: Iterable[dict]) -> list[dict]:
    """The install reboots in a list of record entries (power-on boots are not an install's reboot)."""
    return [e for e in entries if e["event"] == "boot_started" and e.get("why") == "install"]


def kill_time(kind: str, n: int, at: float, entries: list[dict], started: float) -> float | None:
    """When (epoch seconds) to SIGKILL for this point, given the record so far; None = not yet known."""
    if kind == RANDOM:
        return started + at
    if kind == REBOOT:
        rb = reboots(entries)
        return rb[n - 1]["t"] + at * rb[n - 1]["seconds"] if len(rb) >= n else None
    if kind.startswith("lab:"):
        hits = [e for e in entries if e["event"] == kind[4:]]
        return hits[n - 1]["t"] if len(hits) >= n else None
    raise ValueError(f"not a lab kill point: {kind!r}")


def landed_in_reboot(entries: list[dict], n: int, killed_at: float) -> bool:
    """Did the kill land while the n-th install reboot was still going on?"""
    rb = reboots(entries)
    return len(rb) >= n and rb[n - 1]["t"] <= killed_at < rb[n - 1]["t"] + rb[n - 1]["seconds"]


def in_any_reboot(entries: list[dict], killed_at: float) -> str:
    """The node whose install reboot was going on when the kill landed ("" when none): any kind of point
    may land in one, and how many did is what says the sweep tested the reboots."""
    for rb in reboots(entries):
        if rb["t"] <= killed_at < rb["t"] + rb["seconds"]:
            return rb["node"]
    return ""


def installs(counts: dict[str, dict[str, int]], nodes: Iterable[str]) -> dict[str, int]:
    """{node: installs started} per the lab's own record (the figure `bench.faults` prints per node)."""
    return {n: counts.get(n, {}).get("install_started", 0) for n in nodes}


def lab_points(entries: list[dict], seconds: float, rng: random.Random, randoms: int) -> list[tuple[str, int, float]]:
    """(kind, n, at) of the lab-side points of one command, from its clean run's record and duration."""
    out: list[tuple[str, int, float]] = []
    for ev in LAB_EVENTS:
        out += [(f"lab:{ev}", i, 0.0) for i in range(1, sum(e["event"] == ev for e in entries) + 1)]
    out += [(REBOOT, i, round(rng.uniform(0.05, 0.9), 3)) for i in range(1, len(reboots(entries)) + 1)]
    moments = [round(rng.uniform(*RANDOM_SPAN) * seconds, 3) for _ in range(randoms)]  # drawn either way: the
    # seeded sequence of the next commands' points does not depend on this command's length
    if seconds >= RANDOM_MIN_S:
        out += [(RANDOM, i, at) for i, at in enumerate(moments, 1)]
    return out


def installed_once(counts: dict[str, dict[str, int]], nodes: Iterable[str]) -> list[str]:
    """Every node's install started and completed exactly once, per the lab's record."""
    problems = []
    for n in nodes:
        c = counts.get(n, {})
        started, done = c.get("install_started", 0), c.get("install_completed", 0)
        if (started, done) != (1, 1):
            problems.append(f"lab record: {n} installs started {started}, completed {done} (expected 1 and 1)")
    return problems


def whole(state: dict, versions: dict[str, str], uuids: dict[str, str] | None = None) -> list[str]:
    """Every node answering (not rebooting, not broken, not in restore mode) at its expected version, with
    its instance UUID when `uuids` is given, and only the VM that holds its identity powered on."""
    problems = []
    for name, n in sorted(state["nodes"].items()):
        if n.get("reachability", "up") != "up":
            problems.append(f"lab: {name} does not answer ({n.get('reachability')}: {n.get('down_reason', '')})")
        if n.get("broken"):
            problems.append(f"lab: {name} is broken: {n['broken']}")
        if n.get("restore_mode"):
            problems.append(f"lab: {name} waits in restore mode")
        if name in versions and n["version"] != versions[name]:
            problems.append(f"lab: {name} runs {n['version']}, not {versions[name]}")
        if uuids and n["instance_uuid"] != uuids.get(name):
            problems.append(f"lab: {name} has instance UUID {n['instance_uuid']}, not {uuids.get(name)}")
        problems += _identity_problems(state, name, n)
    return problems


def _identity_problems(state: dict, name: str, n: dict) -> list[str]:
    vms = state.get("vms", {}).get(n["vm"]["vcenter"], {})
    prev = (n.get("previous") or {}).get("vm", {}).get("name")
    if n["vm"]["vcenter"] and vms.get(n["vm"]["name"]) != "poweredOn":
        return [f"lab: {name}'s appliance VM {n['vm']['name']} is not powered on"]
    if prev and vms.get(prev) == "poweredOn":
        return [f"lab: {name}'s identity runs on two VMs ({n['vm']['name']} and {prev})"]
    return []

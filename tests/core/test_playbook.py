"""Playbooks: the bundled ones load; every bad playbook in tests/core/bad/ is refused naming the seed rule."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.playbook import PER_PSC, bundled_playbook_path, load_playbook, loads_playbook
from orchestrator.errors import InputError

BAD = Path(__file__).parent / "bad"

# file (without "playbook-"), field named, rule ("" when not a seed rule), message fragment
CASES = [
    ("site-by-site", "hosts", "pscs-first", "selects one site"),
    ("vcenter-before-psc", "phase", "pscs-first", "phase order"),
    ("psc-serial-2", "serial", "psc-one-at-a-time", "Concurrent upgrades of Platform Services Controller"),
    ("psc-per-psc", "serial", "psc-one-at-a-time", "Concurrent upgrades of Platform Services Controller"),
    ("upgrade-in-all", "hosts", "pscs-first", "upgrades happen only in the psc wave"),
    ("upgrade-in-pre", "hosts", "pscs-first", "upgrades happen only in the psc wave"),
    ("no-verify", "tasks", "verify-after-upgrade", "followed by 'verify'"),
    ("verify-before-upgrade", "tasks", "verify-after-upgrade", "followed by 'verify'"),
    ("no-backup", "tasks", "backup-before-upgrade", "no backup of the psc nodes"),
    ("not-fatal", "any_errors_fatal", "stop-on-failure", "stop at the first failure"),
    ("max-fail", "max_fail_percentage", "stop-on-failure", "max_fail_percentage must be 0"),
    ("unknown-task", "tasks", "", "unknown task 'snapshot'"),
    ("duplicate-phase", "phase", "pscs-first", "appears in more than one play"),
    ("no-vcenter-wave", None, "", "no 'vcenter' play that upgrades"),
    ("not-a-list", None, "", "non-empty YAML list of plays"),
]


def test_corpus_is_complete():
    assert {p.name for p in BAD.glob("playbook-*.yml")} == {f"playbook-{c[0]}.yml" for c in CASES}
    assert len(CASES) >= 8


@pytest.mark.parametrize("name, field, rule, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_playbook(name, field, rule, fragment):
    path = BAD / f"playbook-{name}.yml"
    with pytest.raises(InputError) as info:
        load_playbook(path)
    err = info.value
    text = str(err)
    assert err.exit_code == 2
    assert str(path) in text and fragment in text
    assert err.where.line, text
    assert err.rule == rule
    if rule:
        assert f"[rule: {rule}]" in text
    if field:
        assert err.where.field == field and f"field '{field}'" in text


def test_errors_point_at_the_offending_play():
    err = _err("psc-serial-2")
    assert err.where.line == 10  # serial: 2 of the psc play
    assert _err("site-by-site").where.line == 9
    assert _err("not-fatal").where.line == 11


def _err(name: str) -> InputError:
    with pytest.raises(InputError) as info:
        load_playbook(BAD / f"playbook-{name}.yml")
    return info.value


@pytest.mark.parametrize("name", ["default", "serial"])
def test_bundled_playbooks_load(name):
    pb = load_playbook(bundled_playbook_path(name))
    assert [p.phase for p in pb.plays] == ["pre", "psc", "vcenter", "post"]
    assert pb.play("psc").serial == 1 and pb.play("psc").hosts == "psc"
    assert all(p.any_errors_fatal for p in pb.plays)
    assert load_playbook(name) == pb  # by name too


def test_default_playbook_shape():
    pb = load_playbook()
    assert pb.play("vcenter").serial == PER_PSC and pb.play("vcenter").backup_first
    assert pb.play("pre").tasks == ("precheck", "backup", "stage")
    assert pb.play("nope") is None


MINIMAL = """\
- {phase: psc, hosts: psc, tasks: [backup, upgrade, verify]}
- {phase: vcenter, hosts: vcenter, serial: %s, tasks: [backup, upgrade, verify]}
"""


@pytest.mark.parametrize("serial, expected", [("0", 0), ("3", 3), ("per-psc", PER_PSC),
                                             ("per-psc-in-turn", "per-psc-in-turn")])
def test_minimal_playbook_and_serials(serial, expected):
    pb = loads_playbook(MINIMAL % serial, "m.yml")
    assert pb.play("vcenter").serial == expected
    assert pb.play("psc").name == "play #1"


@pytest.mark.parametrize("serial", ["-1", "two", "true", "1.5"])
def test_bad_serials(serial):
    with pytest.raises(InputError) as info:
        loads_playbook(MINIMAL % serial, "m.yml")
    assert info.value.where.field == "serial"


def test_duplicate_task_refused():
    with pytest.raises(InputError, match="listed twice"):
        loads_playbook("- {phase: psc, hosts: psc, tasks: [backup, upgrade, upgrade, verify]}\n"
                       "- {phase: vcenter, hosts: vcenter, tasks: [backup, upgrade, verify]}\n", "m.yml")


# ------------------------------------------------------------------ core bugs found while testing

def test_phase_order_error_points_at_the_play_that_comes_too_early():
    """The phase-order error names the play that is out of order (the vcenter play, 'phase' at line 8)."""
    assert _err("vcenter-before-psc").where.line == 8


@pytest.mark.parametrize("text", [
    # backups only inside the psc lane: vCenters are never backed up
    "- {phase: pre, hosts: all, tasks: [precheck]}\n"
    "- {phase: psc, hosts: psc, tasks: [backup, upgrade, verify]}\n"
    "- {phase: vcenter, hosts: vcenter, tasks: [upgrade, verify]}\n",
    # the pre backup covers only the PSCs: vCenters are never backed up
    "- {phase: pre, hosts: psc, tasks: [precheck, backup]}\n"
    "- {phase: psc, hosts: psc, tasks: [upgrade, verify]}\n"
    "- {phase: vcenter, hosts: vcenter, tasks: [upgrade, verify]}\n",
    # the pre backup covers only the vCenters: PSCs are never backed up
    "- {phase: pre, hosts: vcenter, tasks: [precheck, backup]}\n"
    "- {phase: psc, hosts: psc, tasks: [upgrade, verify]}\n"
    "- {phase: vcenter, hosts: vcenter, tasks: [upgrade, verify]}\n",
], ids=["psc-lane-only", "pre-psc-only", "pre-vcenter-only"])
def test_playbook_without_backup_for_some_nodes_is_refused(text):
    """BUG (playbook._check_rules, backup-before-upgrade): the check looks only at whether the pre play has a
    'backup' task (whatever its hosts) or the psc play backs up before upgrading. A playbook whose vCenters (or
    PSCs) get no backup before their upgrade is accepted, and build_plan upgrades them without a backup."""
    with pytest.raises(InputError) as info:
        loads_playbook(text, "b.yml")
    assert info.value.rule == "backup-before-upgrade"

"""What a new user hit (issue 15 leftovers, issue 17): a target typed '6.7U3' is read visibly, the state
folder is private, the advice names the program being run with flags that exist, and `lab.up` says when it
resumes an old lab (`--reset` starts afresh)."""
from __future__ import annotations

import json
import os
import stat
import urllib.request
from pathlib import Path

import pytest
from invoke import Context

from orchestrator.core.versions import VersionError, read_as
from orchestrator.engine.journal import Journal

from .test_cli import INVOKE, ROOT, VCWAVE, run

TWO_SITE = ROOT / "examples" / "two-site.yml"


@pytest.mark.parametrize("typed, note", [
    ("6.7 U3", ""),
    ("6.7U3", "'6.7U3' read as 6.7 U3"),
    ("6.7 update 3", "'6.7 update 3' read as 6.7 U3"),
    ("6.7.0 U3", "'6.7.0 U3' read as 6.7 U3"),
    ("  6.5  ", ""),
    ("6.0 U3a", ""),
    ("6.0 u3A", "'6.0 u3A' read as 6.0 U3a"),
])
def test_a_target_is_read_visibly(typed, note):
    assert read_as(typed) == note


def test_an_ambiguous_target_is_still_refused():
    with pytest.raises(VersionError, match="did you mean '6.0 U3'"):
        read_as("6.0.3")


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)  # the usual default: without care, folders 0755 and files 0644
    yield
    os.umask(old)


def test_plan_says_how_it_read_the_target_and_keeps_the_state_folder_private(tmp_path, capsys, monkeypatch,
                                                                              umask_022):
    from orchestrator.cli.tasks import plan
    monkeypatch.chdir(tmp_path)
    plan(Context(), inventory=str(TWO_SITE), target="6.7U3")
    out = capsys.readouterr().out
    assert out.startswith("--target '6.7U3' read as 6.7 U3\n")
    saved = json.loads((tmp_path / ".vcwave" / "plan.json").read_text())
    assert saved["target"].startswith("6.7 U3")
    state = tmp_path / ".vcwave"
    events = next(state.glob("*/events.jsonl"))
    assert (_mode(state), _mode(events.parent), _mode(events)) == (0o700, 0o700, 0o600)
    assert "plan.target_read_as" in events.read_text()


def test_journal_files_are_0600_in_a_0700_folder(tmp_path, umask_022):
    path = tmp_path / "state" / "two-site.example" / "journal.sqlite"
    j = Journal.open(path)
    try:
        made = [path.parent.parent, path.parent]
        assert [_mode(d) for d in made] == [0o700, 0o700]
        files = [path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))]
        assert {f.name: _mode(f) for f in files if f.exists()} == {f.name: 0o600 for f in files if f.exists()}
        assert path.with_name(path.name + "-wal").exists()  # WAL mode: the -wal file exists while open
    finally:
        j.close()


def test_an_existing_state_folder_keeps_the_operators_mode(tmp_path, umask_022):
    state = tmp_path / "shared"
    state.mkdir(mode=0o750)
    os.chmod(state, 0o750)
    Journal.open(state / "d" / "journal.sqlite").close()
    assert (_mode(state), _mode(state / "d")) == (0o750, 0o700)


@pytest.mark.parametrize("tool", ["vcwave", pytest.param("invoke", marks=pytest.mark.full)])
def test_advice_and_errors_name_the_program_being_run(tmp_path, tool):
    """`status` without a plan advises a `plan` command the operator can run: their program, the flags
    `plan` requires, and the file status looked for."""
    r = run([*(VCWAVE if tool == "vcwave" else INVOKE), "status", "--plan", "p.json"], tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"{tool}: error: p.json: plan file not found; ")
    assert f"`{tool} plan --inventory INVENTORY --target VERSION --out p.json`" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_repository_task_is_not_advised_as_a_vcwave_command():
    from orchestrator.cli.tasks import as_typed, running_as
    old = running_as()
    try:
        running_as("vcwave")
        assert as_typed("run `invoke verify --node a`, then `invoke lab.up`") == \
            "run `vcwave verify --node a`, then `invoke lab.up`"
        assert as_typed("invoke upgrade --wave psc") == "vcwave upgrade --wave psc"
        assert as_typed("next safe command: invoke precheck && invoke backup --phase pre && invoke stage") == \
            "next safe command: vcwave precheck && vcwave backup --phase pre && vcwave stage"  # a new user saw invoke
        running_as("invoke")
        assert as_typed("run `invoke verify`") == "run `invoke verify`"
    finally:
        running_as(old)


def test_advice_repeats_the_operators_plan_and_state_dir(monkeypatch):
    """`status --plan /tmp/p.json --state-dir /tmp/s` advised a bare `vcwave precheck`, which acts on the default
    folder's campaign: the advised commands carry the session flags the operator typed (not `plan`)."""
    from orchestrator.cli import tasks

    flags = tasks.session_flags({"plan": "/tmp/my plan.json", "state_dir": "/tmp/s", "inventory": None})
    assert flags == " --plan '/tmp/my plan.json' --state-dir /tmp/s"
    assert tasks.session_flags({"plan": None, "state_dir": ".vcwave"}) == ""
    monkeypatch.setitem(tasks._RUNNING, "program", "vcwave")
    monkeypatch.setitem(tasks._RUNNING, "flags", flags)
    assert tasks.as_typed("next safe command: invoke precheck && invoke upgrade --wave psc; or `invoke plan "
                          "--target X`; `invoke lab.up`") == (
        f"next safe command: vcwave precheck{flags} && vcwave upgrade --wave psc{flags}; or `vcwave plan "
        "--target X`; `invoke lab.up`")


def _psc_a(info: dict) -> str:
    with urllib.request.urlopen(info["control_url"] + "/lab/state", timeout=10) as r:
        return "down" if json.loads(r.read())["nodes"]["psc-a"]["down"] else "up"


@pytest.mark.full  # three lab daemons: ~3-5 s
def test_lab_up_says_it_resumed_and_reset_starts_afresh(tmp_path):
    from lab import manage
    d = tmp_path / "lab"

    def up(**kw) -> dict:
        return manage.up(TWO_SITE, d, 0.001, warm=True, extra=("--no-vcsim",), **kw)
    try:
        first = up()
        assert first["resumed"] is False
        urllib.request.urlopen(urllib.request.Request(first["control_url"] + "/lab/node/psc-a/fail", data=b"{}",
                                                      method="POST"), timeout=10).close()
        manage.down(d)
        again = up()
        assert again["resumed"] is True and _psc_a(again) == "down"  # where the last lab left it
        manage.down(d)
        fresh = up(reset=True)
        assert fresh["resumed"] is False and _psc_a(fresh) == "up"
    finally:
        manage.down(d)


def test_finalize_with_no_terminal_is_not_confirmed_not_a_traceback(monkeypatch, capsys):
    """`vcwave finalize < /dev/null` (cron, AWX) ended in EOFError (exit 1) at the point of no return: closed
    input is a plain 'no'; only the typed word confirms."""
    import io

    from orchestrator.cli.tasks import typed_finalize

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert typed_finalize("finalize psc-a?") is False
    assert "standard input is closed" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("finalize\n"))
    assert typed_finalize("finalize psc-a?") is True
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    assert typed_finalize("finalize psc-a?") is False


def test_status_with_a_mistyped_state_dir_creates_nothing_and_says_no_journal_was_found(tmp_path, monkeypatch):
    """`vcwave status --state-dir /tmp/nonexistent-dir` created the folder and showed a fresh domain with no word
    that nothing was found there: status makes no folder and names the journal it did not find."""
    from orchestrator.commands import plan as plan_cmd
    from orchestrator.commands import status as status_cmd
    from orchestrator.commands.session import CommonFlags

    import itertools
    import re

    text = (ROOT / "examples" / "two-site.yml").read_text()
    inv = tmp_path / "inv.yml"  # every node on its own loopback address: silent at once, no name lookup
    n = itertools.count(2)
    inv.write_text(re.sub(r"host: [\w.-]+", lambda m: f"host: 127.0.0.{next(n)}", text))
    for var in ("SSO", "ROOT", "BACKUP"):
        monkeypatch.setenv(f"VCWAVE_{var}_PASSWORD", "x")
    plan_cmd.run(str(inv), "6.7 U3", str(tmp_path / "plan.json"))
    typo = tmp_path / "nonexistent-dir"
    out = status_cmd.run(CommonFlags(plan=str(tmp_path / "plan.json"), state_dir=str(typo)))
    assert f"no journal at {typo / 'vsphere.local' / 'journal.sqlite'}" in out and not typo.exists()

"""The command line as a user meets it: `vcwave` (the console script's program) and `invoke` in the checkout.
Every command's --help exits 0; every parse error (unknown flag, a flag without its value, a missing required
flag, an unknown command) exits 2 with the error and the command's usage on stderr, never a traceback."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.badinputs import run_inprocess
from orchestrator.cli.program import program
from orchestrator.cli.tasks import REQUIRED, ns

ROOT = Path(__file__).resolve().parents[2]
VCWAVE = [sys.executable, "-c", "from orchestrator.cli.program import main; main()"]
INVOKE = [sys.executable, "-m", "invoke", "-r", str(ROOT)]
COMMANDS = sorted(ns.task_names)


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd)}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """`vcwave ARGV` through the console script's own Program object in this process: (exit code, stdout).
    For the per-command help pages (a fresh interpreter each cost ~0.25 s of CPU); start-up and exit-code
    plumbing keep their real processes below (the help page, the parse errors, a plan)."""
    try:
        program.run(["vcwave", *argv])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, capsys.readouterr().out


def test_every_product_command_is_in_the_namespace_and_the_lab_is_not():
    assert {"plan", "precheck", "backup", "stage", "upgrade", "verify", "status", "rollback", "finalize",
            "repoint", "report"} == set(COMMANDS)
    assert not any(name.startswith(("lab", "bench", "cassettes")) for name in ns.task_names)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_exits_0(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    code, out = run_in_process([command, "--help"], capsys)
    assert code == 0, out
    assert f"vcwave [--core-opts] {command}" in out
    assert "--verbose" in out  # -v: the full event stream


PARSE_ERRORS = [
    (["plan", "--nope"], "No idea what '--nope' is"),
    (["plan", "--inventory"], "--inventory needs a value"),
    (["plan", "--inventory", "site.yml"], "'plan' needs --target"),
    (["plan", "--target", "6.7 U3"], "'plan' needs --inventory"),
    (["upgrade"], "'upgrade' needs --wave"),
    (["repoint", "--vcenter", "vc-a"], "'repoint' needs --psc"),
]


def _parse_error_seen(tool: str, argv: list[str], message: str, code: int, err: str, folder: Path) -> None:
    assert code == 2, err
    assert err.startswith(f"{tool}: error: ") and message in err  # the program being run, not inv[oke]
    assert f"[--core-opts] {argv[0]} [--options]" in err  # the command's usage
    assert "Options:" in err and "Traceback" not in err
    assert not (folder / ".vcwave").exists()  # nothing written


@pytest.mark.parametrize("argv, message", PARSE_ERRORS)
@pytest.mark.parametrize("tool", ["vcwave", "invoke"])
def test_parse_errors_exit_2_with_the_usage(tmp_path, monkeypatch, capsys, tool, argv, message):
    """Each parse error through the tool's own Program object, in this process (a fresh interpreter each cost
    ~0.3 s of CPU); the exit code through a real process: the test below."""
    if tool == "vcwave":
        monkeypatch.chdir(tmp_path)
        try:
            program.run(["vcwave", *argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        err = capsys.readouterr().err
    else:
        code, err = run_inprocess(argv, tmp_path, dict(os.environ))
    _parse_error_seen(tool, argv, message, code, err, tmp_path)


@pytest.mark.parametrize("tool", ["vcwave", "invoke"])
def test_a_parse_error_exits_2_from_a_real_process(tmp_path, tool):
    """The exit code and stderr as the shell sees them, from the console script's entry and `python -m invoke`."""
    argv, message = PARSE_ERRORS[2]
    r = run([*(VCWAVE if tool == "vcwave" else INVOKE), *argv], tmp_path)
    _parse_error_seen(tool, argv, message, r.returncode, r.stderr, tmp_path)


def test_one_processs_command_lines_never_see_each_others_flags(tmp_path, monkeypatch, capsys):
    """The parser is made without Invoke's second deep copy of its contexts (orchestrator/cli/program.py): each
    command line still gets contexts of its own, so a flag given to one run is not there for the next."""
    monkeypatch.chdir(tmp_path)
    inv = str(ROOT / "examples" / "two-site.yml")

    def vcwave(*argv: str) -> tuple[int, str]:
        try:
            program.run(["vcwave", *argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return code, capsys.readouterr().err

    assert vcwave("plan", "--inventory", inv, "--target", "6.7 U3", "--out", "p.json")[0] == 0
    assert (tmp_path / "p.json").is_file()
    code, err = vcwave("plan", "--inventory", inv)
    assert code == 2 and "'plan' needs --target" in err, err
    code, err = vcwave("plan", "--target", "6.7 U3")
    assert code == 2 and "'plan' needs --inventory" in err, err


def test_unknown_command_exits_2(tmp_path):
    r = run([*VCWAVE, "nosuch"], tmp_path)
    assert r.returncode == 2 and "No idea what 'nosuch' is" in r.stderr and "vcwave --list" in r.stderr


def test_required_flags_are_declared_parameters():
    """A REQUIRED entry that names no parameter would never be checked (and a typo would pass silently)."""
    for command, flags in REQUIRED.items():
        params = inspect.signature(ns[command].body).parameters
        assert set(flags) <= set(params), (command, flags, params)


def test_lab_up_help_says_time_scale_takes_a_value(tmp_path):
    r = run([*INVOKE, "lab.up", "--help"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "--time-scale=STRING" in r.stdout


def test_plan_from_elsewhere_uses_the_bundled_playbook(tmp_path):
    """No checkout-relative path: the default playbook comes with the package."""
    r = run([*VCWAVE, "plan", "--inventory", str(ROOT / "examples" / "two-site.yml"), "--target", "6.7 U3"],
            tmp_path)
    assert r.returncode == 0, r.stderr
    assert "playbook default.yml" in r.stdout and (tmp_path / ".vcwave" / "plan.json").is_file()
    assert (tmp_path / ".vcwave" / "vsphere.local" / "events.jsonl").is_file()  # the event log, always


def test_help_page_lists_the_commands_and_only_options_that_apply(tmp_path):
    r = run([*VCWAVE, "--help"], tmp_path)
    assert r.returncode == 0
    for command in COMMANDS:
        assert f"  {command} " in r.stdout
    assert "--version" in r.stdout and "--pty" not in r.stdout and "sudo" not in r.stdout

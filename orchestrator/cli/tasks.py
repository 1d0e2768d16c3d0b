"""vcwave's commands as Invoke tasks (`vcwave --list`, `vcwave <command> --help`).

Each task parses flags, calls one orchestrator function, prints. Flags only, never positionals: a required
positional would swallow `--help`; the flags a command cannot do without are listed in REQUIRED and
checked by the program (orchestrator.cli.program), which exits 2 with the usage when one is missing.
The repository's tasks.py adds the lab, benchmark and cassette tasks to this namespace; the product never
imports the lab.
"""
from __future__ import annotations

import functools
import re
import shlex
import sys
from typing import Any, Callable

from invoke import Collection, Exit, task

from orchestrator import stop
from orchestrator.errors import InputError, VcwaveError, Where

COMMON_HELP = {
    "inventory": "domain inventory YAML (default: the one the plan was made from)",
    "plan": "saved plan file (default .vcwave/plan.json)",
    "state_dir": "where journals, locks and event logs live (default .vcwave)",
    "insecure": "turn TLS verification OFF (logged; never the default)",
    "ca_bundle": "CA bundle to verify the nodes' certificates",
    "installer": "VMware's vcsa-deploy (or env VCWAVE_INSTALLER)",
    "json": "log JSON lines instead of the console view",
    "verbose": "show every event (the full stream) instead of the console view",
    "break_stale_lock": "take over a lock whose holder process is dead (never a live one)",
}

# Flags a command cannot run without (checked at parse time: exit 2 with the usage).
REQUIRED: dict[str, tuple[str, ...]] = {
    "plan": ("inventory", "target"),
    "upgrade": ("wave",),
    "repoint": ("vcenter", "psc"),
}


def helps(params: str, **extra: str) -> dict[str, str]:
    """Help text for the common flags a task takes (Invoke refuses help for absent parameters)."""
    return {**{k: COMMON_HELP[k] for k in params.split()}, **extra}


_RUNNING = {"program": "vcwave", "flags": ""}  # set by the parse hooks (orchestrator.cli.program) before a task runs
# An advised command and its flags: `invoke upgrade --wave psc`, a bare next command, or one of several
# (`next safe command: invoke precheck && invoke stage`); a flag's value ends at a quote (JSON output too).
_ADVICE = re.compile(r"(?:(?<=[`\s(])|^)invoke (\w+)\b((?: --?[\w-]+(?:[ =](?!-)[^\s`\x22\x27&;,)]+)?)*)", re.MULTILINE)
_SESSION_FLAGS = (("--inventory", "inventory", None), ("--plan", "plan", None), ("--state-dir", "state_dir", ".vcwave"))


def running_as(program: str | None = None) -> str:
    """The program the operator typed (`vcwave`, or `invoke` in the checkout); set once per run."""
    if program:
        _RUNNING["program"] = program
    return _RUNNING["program"]


def session_flags(kwargs: dict[str, Any]) -> str:
    """The operator's own --inventory/--plan/--state-dir (when not the defaults), for the advice to repeat: a
    new user's `status --plan /tmp/p.json --state-dir /tmp/s` advised `vcwave precheck`, which acts on
    another campaign (the default folder's)."""
    return "".join(f" {flag} {shlex.quote(str(kwargs[key]))}" for flag, key, default in _SESSION_FLAGS
                   if kwargs.get(key) not in (None, "", default))


def as_typed(text: str) -> str:
    """Advice in vcwave's messages names commands as `invoke <command>` (the checkout's form); run as
    `vcwave`, the product's commands are advised as `vcwave <command>`, the way the operator runs them, with
    the operator's session flags (`session_flags`; not for `plan`, which makes a plan rather than reading
    one). The repository's own tasks (`invoke lab.up`) are left alone: `vcwave` does not have them."""
    program, extra = running_as(), _RUNNING.get("flags", "")
    names = {t.name for t in PRODUCT_TASKS}
    return _ADVICE.sub(lambda m: f"{program} {m.group(1)}{m.group(2)}{'' if m.group(1) == 'plan' else extra}"
                       if m.group(1) in names else m.group(0), text)


def cli(fn: Callable[..., str | None]) -> Callable[..., None]:
    """Set up the console (or JSON lines, or the full event stream with -v) and map vcwave errors to a clear
    message on stderr and the right exit code (2 = bad input/refused), never a traceback."""
    @functools.wraps(fn)
    def wrapper(c: Any, *args: Any, **kwargs: Any) -> None:
        _RUNNING["flags"] = session_flags(kwargs)
        try:
            run_and_report(fn, c, *args, **kwargs)
        finally:
            _RUNNING["flags"] = ""  # the advice of one run only (several run in one process in the tests)
    return wrapper


def run_and_report(fn: Callable[..., str | None], c: Any, *args: Any, **kwargs: Any) -> None:
    """The body of `cli`: run the task, print its output or its error as the operator typed the command."""
    from orchestrator import log
    log.configure(json=bool(kwargs.get("json")), verbose=bool(kwargs.get("verbose")), human=True)
    try:
        with stop.signals_stop():  # Ctrl-C / SIGTERM: every wait stops, the run is journaled, the lock released
            out = fn(c, *args, **kwargs)
    except VcwaveError as exc:
        log.finish(keep=exc.exit_code != 2)  # refused (bad input): nothing written
        print(f"{running_as()}: error: {as_typed(str(exc))}", file=sys.stderr)
        raise Exit(code=exc.exit_code) from None
    except stop.Interrupted as exc:
        log.finish()
        nxt = getattr(exc, "next_command", "")
        print(f"{running_as()}: {as_typed(str(exc))}; the domain lock is released"
              + (f"; next: {as_typed(nxt)}" if nxt else ""), file=sys.stderr)
        raise Exit(code=exc.exit_code) from None
    except BaseException:
        log.finish()  # whatever happened: the live view gives the terminal back, the log is kept
        raise
    log.finish()
    if out:
        print(as_typed(out))


def whole_number(v: Any, flag: str) -> int | None:
    """A flag's whole-number value, or a clear input error naming the flag."""
    if v in (None, ""):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise InputError(f"{flag} must be a whole number, got {v!r}", Where(field=flag)) from None


def _flags(inventory=None, plan=None, state_dir=".vcwave", insecure=False, ca_bundle=None, installer=None,
           break_stale_lock=False):
    from orchestrator.commands.session import CommonFlags
    return CommonFlags(inventory=inventory, plan=plan, state_dir=state_dir, insecure=insecure, ca_bundle=ca_bundle,
                       installer=installer, break_stale_lock=break_stale_lock)


@task(help={"inventory": "domain inventory YAML (required)", "target": "target release, e.g. '6.7 U3' (required)",
            "out": "where to save the plan (default .vcwave/plan.json)", "json": "print the plan as JSON",
            "playbook": "playbook file or bundled name: default, wide, serial (default: default)",
            "concurrency": "vCenters upgraded at once (overrides the playbook)",
            "site": "refused: upgrading site by site is not supported", "verbose": COMMON_HELP["verbose"]})
@cli
def plan(c, inventory=None, target=None, out=None, json=False, playbook=None, concurrency=None, site=None,
         verbose=False):
    """Compute and save the wave plan: prechecks/backups/staging, every PSC, then vCenters, then verify."""
    from orchestrator.commands import plan as cmd
    return cmd.run(inventory, target, out, json, playbook, whole_number(concurrency, "--concurrency"), site)


@task(help=helps("inventory plan state_dir insecure ca_bundle installer json verbose",
                 node="only these nodes (comma-separated)"))
@cli
def precheck(c, inventory=None, plan=None, state_dir=".vcwave", insecure=False, ca_bundle=None, installer=None,
             node=None, json=False, verbose=False):
    """Read-only checks before the window: paths, declared vs live facts, health, backup method, method prechecks."""
    from orchestrator.commands import waves
    return waves.precheck(_flags(inventory, plan, state_dir, insecure, ca_bundle, installer), node)


@task(help=helps("inventory plan state_dir insecure ca_bundle json verbose break_stale_lock",
                 phase="pre | during | post (default pre)", node="only these nodes",
                 snapshots="also take a cold snapshot set of ALL appliance VMs, together"))
@cli
def backup(c, phase="pre", node=None, snapshots=False, inventory=None, plan=None, state_dir=".vcwave",
           insecure=False, ca_bundle=None, json=False, verbose=False, break_stale_lock=False):
    """Back up every node (file job, snapshot set or external, as planned), recorded with its domain version."""
    from orchestrator.commands import waves
    return waves.backup(_flags(inventory, plan, state_dir, insecure, ca_bundle, None, break_stale_lock), phase, node,
                        snapshots)


@task(help=helps("inventory plan state_dir insecure ca_bundle json verbose break_stale_lock", node="only these nodes"))
@cli
def stage(c, node=None, inventory=None, plan=None, state_dir=".vcwave", insecure=False, ca_bundle=None, json=False,
          verbose=False, break_stale_lock=False):
    """Stage the update bits on every node that the update API will patch, before the window opens."""
    from orchestrator.commands import waves
    return waves.stage(_flags(inventory, plan, state_dir, insecure, ca_bundle, None, break_stale_lock), node)


@task(help=helps("inventory plan state_dir insecure ca_bundle installer json verbose break_stale_lock",
                 wave="psc | vcenter (required)", check="print what would happen; change nothing",
                 concurrency="vCenters at once (vcenter wave)", node="only these nodes"))
@cli
def upgrade(c, wave=None, check=False, concurrency=None, node=None, inventory=None, plan=None, state_dir=".vcwave",
            insecure=False, ca_bundle=None, installer=None, json=False, verbose=False, break_stale_lock=False):
    """Run one wave of the saved plan: psc (every PSC of every site, one at a time) or vcenter (only after all PSCs)."""
    from orchestrator.commands import waves
    return waves.upgrade(_flags(inventory, plan, state_dir, insecure, ca_bundle, installer, break_stale_lock), wave,
                         check, whole_number(concurrency, "--concurrency"), node)


@task(help=helps("inventory plan state_dir insecure ca_bundle json verbose break_stale_lock",
                 node="only these nodes (confirms a paused manual step)"))
@cli
def verify(c, node=None, inventory=None, plan=None, state_dir=".vcwave", insecure=False, ca_bundle=None, json=False,
           verbose=False, break_stale_lock=False):
    """Verify version/build, health, SSO, PSC pointer and continuity (instance UUID, morefs) of every node."""
    from orchestrator.commands import waves
    return waves.verify(_flags(inventory, plan, state_dir, insecure, ca_bundle, None, break_stale_lock), node)


@task(name="status", help=helps("inventory plan state_dir verbose", json="print status as JSON"))
@cli
def status_(c, inventory=None, plan=None, state_dir=".vcwave", json=False, verbose=False):
    """Where every node is, which waves are done, the mixed-version window clock, usable backups, next command."""
    from orchestrator.commands import status as cmd
    return cmd.run(_flags(inventory, plan, state_dir), as_json=json)


@task(help=helps("inventory plan state_dir insecure ca_bundle json verbose break_stale_lock",
                 plan_only="print the rollback plan; change nothing", to="pre (before the window) | during",
                 node="roll back one node alone (only when provably safe)"))
@cli
def rollback(c, plan_only=False, to="pre", node=None, inventory=None, plan=None, state_dir=".vcwave",
             insecure=False, ca_bundle=None, json=False, verbose=False, break_stale_lock=False):
    """Roll the whole domain back (vCenters stopped, PSCs restored, then vCenters, then verified), resumable."""
    from orchestrator.commands import rollback as cmd
    return cmd.run(_flags(inventory, plan, state_dir, insecure, ca_bundle, None, break_stale_lock), to, node,
                   plan_only)


@task(help=helps("inventory plan state_dir insecure ca_bundle json verbose break_stale_lock",
                 yes="do not ask: finalize now (the point of no return)"))
@cli
def finalize(c, yes=False, inventory=None, plan=None, state_dir=".vcwave", insecure=False, ca_bundle=None, json=False,
             verbose=False, break_stale_lock=False):
    """The point of no return of a finished hop (rollback no longer offered).

    Decommissions a converge's external PSCs, deletes the kept source appliances, writes the next hop's
    inventory. (`--list` shows the first line alone: a sentence cut at the line end read as a broken one.)"""
    from orchestrator.commands import finalize as cmd
    return cmd.run(_flags(inventory, plan, state_dir, insecure, ca_bundle, None, break_stale_lock), yes,
                   confirm=typed_finalize)


def typed_finalize(text: str) -> bool:
    """The operator types 'finalize'. With nothing to type on (cron, AWX, `< /dev/null`) it is simply not
    confirmed: `input()` raised EOFError, a traceback (exit 1) on the point-of-no-return command."""
    try:
        return input(text + "\nType 'finalize' to go on: ").strip() == "finalize"
    except EOFError:
        print("\n(no answer: standard input is closed)")
        return False


@task(help=helps("inventory plan state_dir verbose", vcenter="the vCenter to move (required)",
                 psc="the PSC to move it to (required)", check="only say whether it is allowed",
                 down="PSCs known to be down (comma-separated)"))
@cli
def repoint(c, verbose=False, vcenter=None, psc=None, check=False, down="", inventory=None, plan=None,
            state_dir=".vcwave"):  # verbose first: it takes -v, as in every other command
    """Repoint a vCenter to another PSC: only the same version, in the same SSO site, and running."""
    from orchestrator.commands import repoint as cmd
    return cmd.run(_flags(inventory, plan, state_dir), vcenter, psc, check, down)


@task(help=helps("inventory plan state_dir verbose", out="output folder (default .vcwave/<domain>/report)"))
@cli
def report(c, out=None, inventory=None, plan=None, state_dir=".vcwave", verbose=False):
    """Write report.md and a self-contained report.html (SVG timeline: waves, steps, backups, window, rollbacks)."""
    from orchestrator.commands import report as cmd
    return cmd.run(_flags(inventory, plan, state_dir), out)


PRODUCT_TASKS = (plan, precheck, backup, stage, upgrade, verify, status_, rollback, finalize, repoint, report)


def product_namespace() -> Collection:
    """A fresh namespace of the product's commands (tasks.py adds the repository's own to its copy)."""
    return Collection(*PRODUCT_TASKS)


ns = product_namespace()

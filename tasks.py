"""vcwave's commands. Each task parses flags, calls one orchestrator function, prints. `invoke --list`."""
from __future__ import annotations

import functools
import sys

from invoke import Collection, Exit, task

from orchestrator import stop
from orchestrator.errors import VcwaveError

COMMON_HELP = {
    "inventory": "domain inventory YAML (default: the one the plan was made from)",
    "plan": "saved plan file (default .vcwave/plan.json)",
    "state_dir": "where journals and locks live (default .vcwave)",
    "insecure": "turn TLS verification OFF (logged; never the default)",
    "ca_bundle": "CA bundle to verify the nodes' certificates",
    "installer": "VMware's vcsa-deploy (or env VCWAVE_INSTALLER)",
    "json": "log JSON lines instead of the console format",
    "break_stale_lock": "take over a lock whose holder process is dead (never a live one)",
}


def _help(params: str, **extra: str) -> dict:
    """Help text for the common flags a task takes (invoke refuses help for absent parameters)."""
    return {**{k: COMMON_HELP[k] for k in params.split()}, **extra}


def _cli(fn):
    """Map vcwave errors to a clear message on stderr and the right exit code (2 = bad input/refused)."""
    @functools.wraps(fn)
    def wrapper(c, *args, **kwargs):
        from orchestrator import log
        log.configure(json=bool(kwargs.get("json")))
        try:
            with stop.signals_stop():
                out = fn(c, *args, **kwargs)
        except VcwaveError as exc:
            print(f"vcwave: error: {exc}", file=sys.stderr)
            raise Exit(code=exc.exit_code) from None
        except stop.Interrupted as exc:
            nxt = getattr(exc, "next_command", "")
            print(f"vcwave: {exc}; the domain lock is released" + (f"; next: {nxt}" if nxt else ""),
                  file=sys.stderr)
            raise Exit(code=exc.exit_code) from None
        if out:
            print(out)
    return wrapper


def _flags(inventory=None, plan=None, state_dir=".vcwave", insecure=False, ca_bundle=None, installer=None,
           break_stale_lock=False):
    from orchestrator.commands.session import CommonFlags
    return CommonFlags(inventory=inventory, plan=plan, state_dir=state_dir, insecure=insecure, ca_bundle=ca_bundle,
                       installer=installer, break_stale_lock=break_stale_lock)


@task(help={"inventory": "domain inventory YAML", "target": "target release, e.g. '6.7 U3'",
            "out": "where to save the plan (default .vcwave/plan.json)", "json": "print the plan as JSON",
            "playbook": "playbook file or bundled name (default: default)",
            "concurrency": "vCenters upgraded at once (overrides the playbook)",
            "site": "refused: upgrading site by site is not supported"})
@_cli
def plan(c, inventory, target, out=None, json=False, playbook=None, concurrency=None, site=None):
    """Compute and save the wave plan: prechecks/backups/staging, every PSC, then vCenters, then verify."""
    from orchestrator.commands import plan as cmd
    return cmd.run(inventory, target, out, json, playbook, _int(concurrency, "--concurrency"), site)


def _int(v, flag):
    if v in (None, ""):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        from orchestrator.errors import InputError, Where
        raise InputError(f"{flag} must be a whole number, got {v!r}", Where(field=flag)) from None


@task(help=_help("inventory plan state_dir insecure ca_bundle installer json", node="only these nodes (comma-separated)"))
@_cli
def precheck(c, inventory=None, plan=None, state_dir=".vcwave", insecure=False, ca_bundle=None, installer=None,
             node=None, json=False):
    """Read-only checks before the window: paths, declared vs live facts, health, backup method, method prechecks."""
    from orchestrator.commands import waves
    return waves.precheck(_flags(inventory, plan, state_dir, insecure, ca_bundle, installer), node)


@task(help=_help("inventory plan state_dir insecure ca_bundle json break_stale_lock", phase="pre | during | post",
                 node="only these nodes", snapshots="also take a cold snapshot set of ALL appliance VMs, together"))
@_cli
def backup(c, phase="pre", node=None, snapshots=False, inventory=None, plan=None, state_dir=".vcwave",
           insecure=False, ca_bundle=None, json=False, break_stale_lock=False):
    """Back up every node (file-based job, snapshot set or external, as planned) and record it with its domain version."""
    from orchestrator.commands import waves
    return waves.backup(_flags(inventory, plan, state_dir, insecure, ca_bundle, None, break_stale_lock), phase, node,
                        snapshots)


@task(help=_help("inventory plan state_dir insecure ca_bundle json break_stale_lock", node="only these nodes"))
@_cli
def stage(c, node=None, inventory=None, plan=None, state_dir=".vcwave", insecure=False, ca_bundle=None, json=False,
          break_stale_lock=False):
    """Stage the update bits on every node that the update API will patch, before the window opens."""
    from orchestrator.commands import waves
    return waves.stage(_flags(inventory, plan, state_dir, insecure, ca_bundle, None, break_stale_lock), node)


@task(help=_help("inventory plan state_dir insecure ca_bundle installer json break_stale_lock", wave="psc | vcenter",
                 check="print what would happen; change nothing", concurrency="vCenters at once (vcenter wave)",
                 node="only these nodes"))
@_cli
def upgrade(c, wave, check=False, concurrency=None, node=None, inventory=None, plan=None, state_dir=".vcwave",
            insecure=False, ca_bundle=None, installer=None, json=False, break_stale_lock=False):
    """Run one wave of the saved plan: psc (every PSC of every site, one at a time) or vcenter (only after all PSCs)."""
    from orchestrator.commands import waves
    return waves.upgrade(_flags(inventory, plan, state_dir, insecure, ca_bundle, installer, break_stale_lock), wave,
                         check, _int(concurrency, "--concurrency"), node)


@task(help=_help("inventory plan state_dir insecure ca_bundle json break_stale_lock", node="only these nodes (confirms a paused manual step)"))
@_cli
def verify(c, node=None, inventory=None, plan=None, state_dir=".vcwave", insecure=False, ca_bundle=None, json=False,
           break_stale_lock=False):
    """Verify version/build, health, SSO, PSC pointer and continuity (instance UUID, morefs) of every node."""
    from orchestrator.commands import waves
    return waves.verify(_flags(inventory, plan, state_dir, insecure, ca_bundle, None, break_stale_lock), node)


@task(name="status", help=_help("inventory plan state_dir", json="print status as JSON"))
@_cli
def status_(c, inventory=None, plan=None, state_dir=".vcwave", json=False):
    """Where every node is, which waves are done, the mixed-version window clock, usable backups, next command."""
    from orchestrator.commands import status as cmd
    return cmd.run(_flags(inventory, plan, state_dir), as_json=json)


@task(help=_help("inventory plan state_dir insecure ca_bundle json break_stale_lock",
                 plan_only="print the rollback plan; change nothing", to="pre (before the window) | during",
                 node="roll back one node alone (only when provably safe)"))
@_cli
def rollback(c, plan_only=False, to="pre", node=None, inventory=None, plan=None, state_dir=".vcwave",
             insecure=False, ca_bundle=None, json=False, break_stale_lock=False):
    """Roll the whole domain back (vCenters stopped, PSCs restored, then vCenters, then verified), resumable."""
    from orchestrator.commands import rollback as cmd
    return cmd.run(_flags(inventory, plan, state_dir, insecure, ca_bundle, None, break_stale_lock), to, node,
                   plan_only)


@task(help=_help("inventory plan state_dir", vcenter="the vCenter to move", psc="the PSC to move it to",
                 check="only say whether it is allowed", down="PSCs known to be down (comma-separated)"))
@_cli
def repoint(c, vcenter, psc, check=False, down="", inventory=None, plan=None, state_dir=".vcwave"):
    """Repoint a vCenter to another PSC: only the same version, in the same SSO site, and running."""
    from orchestrator.commands import repoint as cmd
    return cmd.run(_flags(inventory, plan, state_dir), vcenter, psc, check, down)


@task(help=_help("inventory plan state_dir", out="output folder (default .vcwave/<domain>/report)"))
@_cli
def report(c, out=None, inventory=None, plan=None, state_dir=".vcwave"):
    """Write report.md and a self-contained report.html (SVG timeline: waves, steps, backups, window, rollbacks)."""
    from orchestrator.commands import report as cmd
    return cmd.run(_flags(inventory, plan, state_dir), out)


# ------------------------------------------------------------------------------------------------- lab
LAB_DIR = ".vcwave/lab"


@task(name="up", help={"inventory": "inventory to mirror (default: examples/two-site.yml)",
                       "dir": f"lab folder (default {LAB_DIR})", "time_scale": "job durations x F (default 0.001)",
                       "faults": "fault-injection YAML"})
@_cli
def lab_up(c, inventory="examples/two-site.yml", dir=LAB_DIR, time_scale=0.001, faults=None):
    """Start a twin of the domain in the background (vcsim + appliance REST twin); writes lab-inventory.yml."""
    from lab import manage
    info = manage.up(inventory, dir, float(time_scale), faults)
    return (f"lab up in {info['startup_seconds']}s: inventory {info['inventory']}\n"
            f"next: invoke plan --inventory {info['inventory']} --target ...")


@task(name="status", help={"dir": f"lab folder (default {LAB_DIR})"})
@_cli
def lab_status(c, dir=LAB_DIR):
    """Show the lab's processes and its nodes' versions."""
    import json as _json
    from lab import manage
    return _json.dumps(manage.status(dir), indent=1)


@task(name="down", help={"dir": f"lab folder (default {LAB_DIR})"})
@_cli
def lab_down(c, dir=LAB_DIR):
    """Stop exactly the processes the lab started (by pid)."""
    from lab import manage
    return f"stopped pids: {manage.down(dir)}"


@task(name="build")
@_cli
def lab_build(c):
    """Build the lab's vcsim (VMware's simulator, from Debian's Go + govmomi packages) into the cache."""
    from lab.vcsim import ensure_vcsim_binary
    return f"vcsim: {ensure_vcsim_binary()}"


@task(help={"inventory": "inventory to rehearse (default: the bundled two-site example)",
            "target": "target release (default: the latest update of the domain's line)",
            "faults": "fault-injection YAML for the lab (a failing step triggers a rollback)",
            "time_scale": "lab job durations x F (default 0.0005: a 40-minute install takes 1.2 s)",
            "workdir": "where the rehearsal's lab, plan, journal and report go (default .vcwave/rehearsal)",
            "playbook": "playbook name or file", "concurrency": "vCenters at once", "json": "JSON log lines"})
@_cli
def rehearse(c, inventory="examples/two-site.yml", target=None, faults=None, time_scale=0.0005,
             workdir=".vcwave/rehearsal", playbook=None, concurrency=None, json=False):
    """Rehearse the whole upgrade on a lab twin of the inventory, through the production code paths."""
    from lab.rehearse import rehearse as run
    return run(inventory, target, faults, float(time_scale), workdir, playbook, _int(concurrency, "--concurrency"))


@task(name="record", help={"out": "cassette folder (default cassettes)"})
@_cli
def cassettes_record(c, out="cassettes"):
    """Start a lab, run the recording scenarios with the real clients, write scrubbed vcrpy cassettes."""
    from lab.record import record_all
    return f"cassettes written: {record_all(out)}"


# ------------------------------------------------------------------------------------------------- bench
def _bench(name: str, json: bool, **kw):
    from lab import bench
    rows = getattr(bench, f"bench_{name}")(**kw)
    return bench.as_json(rows) if json else bench.render(rows)


@task(name="plan", help={"json": "JSON output"})
@_cli
def bench_plan(c, json=False):
    """Plan time for the large example (target well under 100 ms) and for 1000 generated domains."""
    return _bench("plan", json)


@task(name="lab", help={"json": "JSON output"})
@_cli
def bench_lab(c, json=False):
    """Start a twin of the large example (10 PSCs + 15 vCenters): seconds to ready (< 15) and RSS (< 2 GiB)."""
    return _bench("lab", json)


@task(name="facts", help={"json": "JSON output"})
@_cli
def bench_facts(c, json=False):
    """HTTP round trips to gather one vCenter's facts at 10 and at 1000 VMs (must be equal)."""
    return _bench("facts", json)


@task(name="overhead", help={"json": "JSON output"})
@_cli
def bench_overhead(c, json=False):
    """The engine's own time per step (journal writes included) against a lab with zero-length jobs."""
    return _bench("overhead", json)


@task(name="window", help={"json": "JSON output", "inventory": "inventory (default: two-site and large)"})
@_cli
def bench_window(c, json=False, inventory=None):
    """Mixed-version window: default playbook vs serial playbook vs the theoretical minimum."""
    return _bench("window", json, **({"inventory": inventory} if inventory else {}))


@task(name="faults", help={"json": "JSON output", "limit": "crash points to try (default: all)"})
@_cli
def bench_faults(c, json=False, limit=None):
    """The full fault harness: kill -9 at every step boundary and mid-job, transient faults, bad inputs."""
    from lab import harness
    return harness.main_report(limit=_int(limit, "--limit"), as_json=json)


@task(name="all", default=True, help={"json": "JSON output"})
@_cli
def bench_all(c, json=False):
    """Every benchmark above except the fault harness."""
    from lab import bench
    rows = [r for name in ("plan", "lab", "facts", "overhead", "window") for r in getattr(bench, f"bench_{name}")()]
    return bench.as_json(rows) if json else bench.render(rows)


ns = Collection(plan, precheck, backup, stage, upgrade, verify, status_, rollback, repoint, report, rehearse)
ns.add_collection(Collection("lab", lab_up, lab_status, lab_down, lab_build))
ns.add_collection(Collection("cassettes", cassettes_record))
ns.add_collection(Collection("bench", bench_all, bench_plan, bench_lab, bench_facts, bench_overhead, bench_window,
                             bench_faults))

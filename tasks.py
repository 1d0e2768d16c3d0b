"""The repository's Invoke tasks: the product's commands (orchestrator.cli.tasks, the same ones the `vcwave`
console script runs) plus what only a checkout has: the lab, the rehearsal, benchmarks, cassettes.
`invoke --list`; `invoke <command> --help`. The product never imports `lab`; only these tasks do."""
from __future__ import annotations

from invoke import Collection, task

from orchestrator.cli.program import exit_2_on_parse_errors
from orchestrator.cli.tasks import COMMON_HELP, cli, product_namespace, whole_number

exit_2_on_parse_errors()  # `invoke` in the checkout: a parse error exits 2 with the usage, as `vcwave` does

# ------------------------------------------------------------------------------------------------- lab
LAB_DIR = ".vcwave/lab"


@task(name="up", help={"inventory": "inventory to mirror (default: examples/two-site.yml)",
                       "dir": f"lab folder (default {LAB_DIR})",
                       "time_scale": "job durations x F, a number (default 0.001: a 40-minute install lasts 2.4 s)",
                       "faults": "fault-injection YAML",
                       "reset": "forget the last lab's state in this folder: a fresh lab at the inventory's versions"})
@cli
def lab_up(c, inventory="examples/two-site.yml", dir=LAB_DIR, time_scale="0.001", faults=None, reset=False):
    """Start a twin of the domain in the background (vcsim + appliance REST twin); writes lab-inventory.yml.

    And env.sh (the installer stand-in for a by-hand session: `. .vcwave/lab/env.sh`). A lab folder used before
    resumes where its last lab stopped (versions, backups, snapshots), and says so; --reset starts afresh."""
    from lab import manage
    info = manage.up(inventory, dir, _number(time_scale, "--time-scale"), faults, reset=reset)
    env = manage.write_session_env(dir)
    resumed = (f"resumed the last lab's state in {dir} (its nodes' versions, backups and snapshots as they were "
               f"at `lab.down`); `invoke lab.down` then `invoke lab.up --reset` for a fresh lab\n"
               if info.get("resumed") else "")
    return (resumed + f"lab up in {info['startup_seconds']}s: inventory {info['inventory']}\n"
            f"next, by hand:  . {env}   (VCWAVE_INSTALLER = the lab's vcsa-deploy stand-in)\n"
            f"                vcwave plan --inventory {info['inventory']} --target ...   then every command")


def _number(v, flag):
    try:
        return float(v)
    except (TypeError, ValueError):
        from orchestrator.errors import InputError, Where
        raise InputError(f"{flag} must be a number, got {v!r}", Where(field=flag)) from None


@task(name="status", help={"dir": f"lab folder (default {LAB_DIR})", "json": "everything the lab holds, as JSON"})
@cli
def lab_status(c, dir=LAB_DIR, json=False):
    """Show the lab's daemon, its nodes (version, build, up/down/booting, addresses) and its VMs."""
    from lab import manage
    info = manage.status(dir)
    if json:
        import json as _json
        return _json.dumps(info, indent=1)
    return manage.render_status(info)


@task(name="down", help={"dir": f"lab folder (default {LAB_DIR})"})
@cli
def lab_down(c, dir=LAB_DIR):
    """Stop exactly the processes the lab started (by pid)."""
    from lab import manage
    return f"stopped pids: {manage.down(dir)}"


@task(name="build")
@cli
def lab_build(c):
    """Build the lab's vcsim (VMware's simulator, from Debian's Go + govmomi packages) into the cache."""
    from lab.vcsim import ensure_vcsim_binary
    return f"vcsim: {ensure_vcsim_binary()}"


@task(help={"inventory": "inventory to rehearse (default: the bundled two-site example)",
            "target": "target release (default: the latest update of the domain's line)",
            "faults": "fault-injection YAML for the lab (a failing step triggers a rollback)",
            "time_scale": "lab job durations x F (default 0.0005: a 40-minute install takes 1.2 s)",
            "workdir": "where the rehearsal's lab, plan, journal and report go (default .vcwave/rehearsal)",
            "playbook": "playbook name or file", "concurrency": "vCenters at once", "json": "JSON log lines",
            "verbose": COMMON_HELP["verbose"]})
@cli
def rehearse(c, inventory="examples/two-site.yml", target=None, faults=None, time_scale="0.0005",
             workdir=".vcwave/rehearsal", playbook=None, concurrency=None, json=False, verbose=False):
    """Rehearse the whole upgrade on a lab twin of the inventory, through the production code paths."""
    from lab.rehearse import rehearse as run
    return run(inventory, target, faults, _number(time_scale, "--time-scale"), workdir, playbook,
               whole_number(concurrency, "--concurrency"))


@task(name="record", help={"out": "cassette folder (default cassettes)"})
@cli
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
@cli
def bench_plan(c, json=False):
    """Plan time for the large example (target well under 100 ms) and for 1000 generated domains."""
    return _bench("plan", json)


@task(name="lab", help={"json": "JSON output"})
@cli
def bench_lab(c, json=False):
    """Start a twin of the large example (10 PSCs + 15 vCenters): seconds to ready (< 15) and RSS (< 2 GiB)."""
    return _bench("lab", json)


@task(name="facts", help={"json": "JSON output"})
@cli
def bench_facts(c, json=False):
    """HTTP round trips to gather one vCenter's facts at 10 and at 1000 VMs (must be equal)."""
    return _bench("facts", json)


@task(name="overhead", help={"json": "JSON output"})
@cli
def bench_overhead(c, json=False):
    """The engine's own time per step (journal writes included) against a lab with zero-length jobs."""
    return _bench("overhead", json)


@task(name="window", help={"json": "JSON output", "inventory": "inventory (default: two-site and large)"})
@cli
def bench_window(c, json=False, inventory=None):
    """Mixed-version window: default playbook vs serial playbook vs the theoretical minimum."""
    return _bench("window", json, **({"inventory": inventory} if inventory else {}))


@task(name="hops", help={"json": "JSON output"})
@cli
def bench_hops(c, json=False):
    """Each hop's window (6.0 U3 -> 6.7 U3 -> 7.0 U3 -> 8.0 U3 rehearsed hop by hop) against its theoretical minimum."""
    return _bench("hops", json)


@task(name="faults", help={"json": "JSON output", "limit": "crash points to try per sweep (default: all)",
                           "sweep": "only these kill sweeps, comma-separated: update, installer, reboots, "
                                    "long reboots, rollback, file restore (then no transient or bad-input run)"})
@cli
def bench_faults(c, json=False, limit=None, sweep=None):
    """The full fault harness: kill -9 at every step boundary and mid-job, transient faults, bad inputs."""
    from lab import harness
    return harness.main_report(limit=whole_number(limit, "--limit"), as_json=json,
                               only=[s.strip() for s in sweep.split(",")] if sweep else None)


@task(name="suite", help={"runs": "runs in a row (default 1)", "write_order": "rewrite tests/slow_first.txt "
                                                                              "from the last run's times",
                           "full": "the full sweep (--full) instead of the default tier"})
def bench_suite(c, runs="1", write_order=False, full=False):
    """The README's test command N times in a row: wall and CPU per run, median and worst, runs green."""
    from lab import suitebench
    rows = suitebench.bench_suite(whole_number(runs, "--runs"), ["--full"] if full else [], order=write_order)
    if any(r["returncode"] != 0 for r in rows):
        raise SystemExit(1)


@task(name="all", default=True, help={"json": "JSON output"})
@cli
def bench_all(c, json=False):
    """Every benchmark above except the fault harness."""
    from lab import bench
    rows = [r for name in bench.BENCHES for r in getattr(bench, f"bench_{name}")()]
    return bench.as_json(rows) if json else bench.render(rows)


ns = product_namespace()
ns.add_task(rehearse)
ns.add_collection(Collection("lab", lab_up, lab_status, lab_down, lab_build))
ns.add_collection(Collection("cassettes", cassettes_record))
ns.add_collection(Collection("bench", bench_all, bench_plan, bench_lab, bench_facts, bench_overhead, bench_window,
                             bench_hops, bench_faults, bench_suite))

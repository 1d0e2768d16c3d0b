"""vcwave's benchmarks: they PRINT figures (never timed assertions). `python -m lab.bench {plan,lab,facts,
overhead,window,all} [--json]`.

Every benchmark returns result rows: dicts with `name, value, unit, target, ok` (`ok` is True/False when the
row has a target, None when it is a plain figure). `render(rows)` prints a table, `as_json(rows)` JSON.

- plan:     load + plan examples/large.yml (median of 20), and 1000 generated domains (1-4 sites, 1-4 PSCs each).
- lab:      a twin of examples/large.yml: wall time until ready, peak RSS of the daemon + its vcsims, down.
- facts:    vim25 round trips for one vCenter's facts (about, sso_psc, fingerprint) at 10 and at 1000 VMs.
- overhead: the engine's own time per step (a lab with ~zero-length jobs), and ms per durable journal append.
- window:   the mixed-version window of the default and the serial playbook on a time-scaled lab, beside the
            theoretical minimum (sum of PSC installs + the longest vCenter batch — its in-domain backup and
            install — + verify, lab durations), and the installs-only figure.
- hops:     a route rehearsed hop by hop on one lab (examples/two-site-6.0.yml to 8.0 U3: installer, converge,
            linked major): each hop's window from its own journal beside its theoretical minimum.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from orchestrator.core.playbook import bundled_playbook_path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
LARGE = EXAMPLES / "large.yml"
TWO_SITE = EXAMPLES / "two-site.yml"
TWO_SITE_60 = EXAMPLES / "two-site-6.0.yml"
SINGLE_SITE = EXAMPLES / "single-site.yml"
GIB = 1024 ** 3

Row = dict


def row(name: str, value: float | int | str, unit: str = "", target: str = "", ok: bool | None = None,
        **extra: Any) -> Row:
    r = {"name": name, "value": value, "unit": unit, "target": target, "ok": ok}
    r.update(extra)
    return r


# ------------------------------------------------------------------------------------------------ output
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        a = abs(v)
        return f"{v:.4f}" if a < 0.1 else f"{v:.3f}" if a < 10 else f"{v:.2f}" if a < 1000 else f"{v:.0f}"
    return str(v)


def render(rows: Iterable[Row]) -> str:
    rows = list(rows)
    head = ("benchmark", "value", "unit", "target", "ok")
    table = [head] + [(r["name"], _fmt(r["value"]), r.get("unit", ""), r.get("target", ""),
                       {True: "yes", False: "NO", None: "-"}[r.get("ok")]) for r in rows]
    widths = [max(len(str(t[i])) for t in table) for i in range(len(head))]
    lines = []
    for i, t in enumerate(table):
        lines.append("  ".join(str(c).ljust(widths[j]) if j != 1 else str(c).rjust(widths[j])
                               for j, c in enumerate(t)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def as_json(rows: Iterable[Row]) -> str:
    return json.dumps(list(rows), indent=1, default=str)


def _median_ms(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times)


# ------------------------------------------------------------------------------------------------ plan
def generated_inventory(rng: random.Random, index: int) -> str:
    """One external-PSC domain: 1-4 sites, 1-4 PSCs per site, 0-2 vCenters per PSC (at least one per site),
    from a 6.7 release before U3 (the plan target is 6.7 U3)."""
    sites = rng.randint(1, 4)
    version = rng.choice(["6.7", "6.7 U1", "6.7 U2"])
    lines = [f"domain: d{index}.local", "topology: external-psc", "credentials:",
             "  sso: {user: administrator@vsphere.local, password_env: VCWAVE_SSO_PASSWORD}",
             "  root: {user: root, password_env: VCWAVE_ROOT_PASSWORD}",
             "  backup: {user: vcwave-backup, password_env: VCWAVE_BACKUP_PASSWORD}",
             "sites: [" + ", ".join(f"s{s}" for s in range(1, sites + 1)) + "]",
             "management:", "  - {name: mgmt, host: mgmt.example, port: 443, credentials: sso}", "nodes:"]
    for s in range(1, sites + 1):
        pscs = rng.randint(1, 4)
        for p in range(1, pscs + 1):
            name = f"p{s}-{p}"
            lines.append(f"  - {{name: {name}, role: psc, site: s{s}, host: {name}.example, version: '{version}', "
                         f"vm: {{vcenter: mgmt, name: {name}}}, backup: {{method: file, location_type: SFTP, "
                         f"location: 'sftp://b.example/{name}'}}}}")
            for v in range(1, (rng.randint(1, 2) if p == 1 else rng.randint(0, 2)) + 1):
                vname = f"v{s}-{p}-{v}"
                lines.append(f"  - {{name: {vname}, role: vcenter, site: s{s}, host: {vname}.example, "
                             f"version: '{version}', psc: {name}, vm: {{vcenter: mgmt, name: {vname}}}, "
                             f"backup: {{method: file, location_type: SFTP, location: 'sftp://b.example/{vname}'}}}}")
    return "\n".join(lines) + "\n"


def bench_plan(domains: int = 1000, runs: int = 20, inventory: str | Path = LARGE, target: str = "6.7 U3",
               seed: int = 1) -> list[Row]:
    """Load + plan `inventory` (median of `runs`), then plan `domains` generated domains."""
    from orchestrator.commands.plan import make_plan
    from orchestrator.core.inventory import loads_inventory
    from orchestrator.core.plan import build_plan
    from orchestrator.core.playbook import load_playbook
    from orchestrator.core.versions import parse_version

    make_plan(str(inventory), target)  # warm: data files, catalogue caches, imports
    med, worst = _median_ms(lambda: make_plan(str(inventory), target), runs)
    rows = [row(f"plan: load+plan {Path(inventory).name} (median of {runs})", med, "ms", "well under 100 ms",
                med < 100, max_ms=round(worst, 3))]

    rng = random.Random(seed)
    texts = [generated_inventory(rng, i) for i in range(domains)]
    t0 = time.perf_counter()
    invs = [loads_inventory(t, f"<generated {i}>") for i, t in enumerate(texts)]
    t_load = time.perf_counter() - t0
    pb = load_playbook(None)
    tgt = parse_version(target)
    nodes = sum(len(i.nodes) for i in invs)
    t0 = time.perf_counter()
    plans = [build_plan(inv, pb, tgt) for inv in invs]
    t_plan = time.perf_counter() - t0
    steps = sum(sum(1 for _ in p.steps()) for p in plans)
    rows += [
        row(f"plan: {domains} generated domains ({nodes} nodes, {steps} steps), plan only", t_plan, "s"),
        row("plan: per generated domain, plan only", t_plan / domains * 1000, "ms", "well under 100 ms",
            t_plan / domains * 1000 < 100),
        row(f"plan: {domains} generated domains, inventory parse", t_load, "s"),
        row("plan: per generated domain, parse + plan", (t_load + t_plan) / domains * 1000, "ms"),
    ]
    return rows


# ------------------------------------------------------------------------------------------------ lab
def _status_field(pid: int, field: str) -> int:
    """kB value of a /proc/<pid>/status field (VmRSS, VmHWM); 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def lab_pids(info: dict) -> list[int]:
    """The daemon's pid and every vcsim pid recorded in lab.json."""
    pids = [int(info["pid"])] if info.get("pid") else []
    for entry in list((info.get("nodes") or {}).values()) + list((info.get("management") or {}).values()):
        if entry.get("vcsim_pid"):
            pids.append(int(entry["vcsim_pid"]))
    return pids


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def bench_lab(inventory: str | Path = LARGE, time_scale: float = 0.001, sample_s: float = 1.0,
              workdir: str | Path | None = None) -> list[Row]:
    """Start a twin of `inventory` with `lab.manage.up` in a tmp dir, measure, stop, check no pid survives."""
    from lab import manage
    from lab.warm_relay import alive
    name = Path(inventory).name
    with _tmpdir(workdir, "vcwave-bench-lab-") as tmp:
        lab_dir = Path(tmp) / "lab"
        t0 = time.monotonic()
        info = manage.up(str(inventory), lab_dir, time_scale)
        wall = time.monotonic() - t0
        try:
            info = manage.read_lab(lab_dir)
            pids = lab_pids(info)
            peak_rss = 0
            end = time.monotonic() + sample_s
            while True:  # the sum of the processes' VmRSS, sampled: its peak
                peak_rss = max(peak_rss, sum(_status_field(p, "VmRSS") for p in pids))
                if time.monotonic() >= end:
                    break
                time.sleep(0.05)
            hwm = sum(_status_field(p, "VmHWM") for p in pids)  # each process's own peak: an upper bound
            vcsims = len(pids) - 1
        finally:
            manage.down(lab_dir)
        _reap(int(info.get("pid") or 0))
        time.sleep(0.2)
        survivors = [p for p in pids if alive(p)]
    nodes = len(info.get("nodes") or {})
    return [
        row(f"lab: {name} twin ready ({nodes} nodes, {vcsims} vcsim)", wall, "s", "< 15 s", wall < 15,
            daemon_startup_s=info.get("startup_seconds")),
        row(f"lab: peak RSS, daemon + {vcsims} vcsim (sum of VmRSS)", round(peak_rss / GIB, 3), "GiB", "< 2 GiB",
            peak_rss < 2 * GIB),
        row("lab: sum of per-process VmHWM (upper bound)", round(hwm / GIB, 3), "GiB", "< 2 GiB", hwm < 2 * GIB),
        row("lab: processes alive after down", len(survivors), "pids", "0", not survivors, pids=survivors),
    ]


# ------------------------------------------------------------------------------------------------ facts
def _facts_vcsim(vms: int, binary: Path, password: str):
    from lab.vcsim import VcsimProcess, VcsimSpec
    spec = VcsimSpec(name=f"bench-vc-{vms}", version="6.7.0", build=10244745, api_version="6.7.1",
                     full_name="VMware vCenter Server 6.7.0 build-10244745",
                     instance_uuid=f"00000000-0000-4000-8000-{vms:012d}", psc_host="psc-bench.example:443",
                     user="administrator@vsphere.local", password=password, vms=vms)
    return VcsimProcess(spec, binary)


def bench_facts(sizes: tuple[int, int] = (10, 1000)) -> list[Row]:
    """Round trips (after connect) and seconds for one vCenter's facts: about, sso_psc, fingerprint."""
    import secrets as _secrets
    from lab.vcsim import ensure_vcsim_binary
    from orchestrator.clients.vsphere import VSphereClient
    from orchestrator.secrets import Secret

    binary = ensure_vcsim_binary()
    password = "Bv" + _secrets.token_urlsafe(12) + "7!"
    procs = [_facts_vcsim(n, binary, password) for n in sizes]
    results: dict[int, dict] = {}
    try:
        threads = [threading.Thread(target=p.start) for p in procs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for n, p in zip(sizes, procs):
            if not p.running:
                p.start()  # raises with the log tail if it really cannot start
            client = VSphereClient("127.0.0.1", p.port, p.spec.user, Secret(password), scheme="http",
                                   node=p.spec.name)
            t0 = time.perf_counter()
            client.connect()
            t_connect = time.perf_counter() - t0
            base = client.round_trips
            t0 = time.perf_counter()
            about = client.about()
            psc = client.sso_psc()
            fp = client.fingerprint()
            secs = time.perf_counter() - t0
            results[n] = {"trips": client.round_trips - base, "s": secs, "connect_s": t_connect,
                          "vms": fp.count("vms"), "about": about.version, "psc": psc.host if psc else ""}
            client.disconnect()
    finally:
        for p in procs:
            p.stop()
    a, b = sizes
    equal = results[a]["trips"] == results[b]["trips"]
    rows = []
    for n in sizes:
        r = results[n]
        rows.append(row(f"facts: round trips at {n} VMs (fingerprint sees {r['vms']} VMs)", r["trips"], "trips",
                        "equal at every size", equal, vms_seen=r["vms"], about=r["about"], psc=r["psc"]))
    for n in sizes:
        rows.append(row(f"facts: seconds at {n} VMs (after connect)", results[n]["s"], "s",
                        connect_s=round(results[n]["connect_s"], 4)))
    return rows


# ------------------------------------------------------------------------------------------------ lab runs
def lab_durations(time_scale: float) -> dict[str, float]:
    """The lab's own job durations (lab/state.py DURATIONS, stage 1 of the installer stand-in), scaled."""
    from lab.installer_standin import STAGE1_SECONDS
    from lab.state import DURATIONS
    d = {k: v * time_scale for k, v in DURATIONS.items()}
    d["stage1"] = STAGE1_SECONDS * time_scale
    return d


def step_seconds(step: Any, durations: dict[str, float]) -> float:
    """What the lab makes one plan step last (its jobs only; prechecks and verifies have no job)."""
    if step.action == "backup":
        return durations["backup"] if step.method == "file" else 0.0
    if step.action == "stage":
        return durations["stage"]
    if step.action == "upgrade":
        if step.method == "update":
            return durations["install"]  # the bits are staged by an earlier step of every bundled playbook
        if step.method == "installer":
            return durations["stage1"] + durations["upgrade"]
        return 0.0
    return 0.0


def _lanes(steps: Iterable[Any]) -> dict[str, list[Any]]:
    lanes: dict[str, list[Any]] = {}
    for s in steps:
        lanes.setdefault(s.node, []).append(s)
    return lanes


def window_model(plan: Any, durations: dict[str, float]) -> dict[str, float]:
    """Lab-duration model of a plan's window: batches one after another, each as long as its longest lane;
    the window opens at the first PSC upgrade step. Returns the split of where that time goes."""
    psc_install = backups_in = staging_in = vc_batches = 0.0
    opened = False
    longest_vc_batch = 0.0
    for name in ("psc", "vcenter"):
        for _, steps in plan.phase(name).batches():
            lane_totals = []
            for lane in _lanes(steps).values():
                if not opened:
                    ups = [i for i, s in enumerate(lane) if s.action == "upgrade"]
                    if not ups:
                        continue
                    lane = lane[ups[0]:]
                    opened = True
                lane_totals.append((sum(step_seconds(s, durations) for s in lane), lane))
            if not lane_totals:
                continue
            total, lane = max(lane_totals, key=lambda t: t[0])
            for s in lane:
                sec = step_seconds(s, durations)
                if s.action == "backup":
                    backups_in += sec
                elif s.action == "stage":
                    staging_in += sec
                elif name == "psc":
                    psc_install += sec
                else:
                    vc_batches += sec
            if name == "vcenter":
                ups = [max((step_seconds(s, durations) for s in l if s.action == "upgrade"), default=0.0)
                       for l in _lanes(steps).values()]
                longest_vc_batch = max(longest_vc_batch, max(ups, default=0.0))
    return {"psc_installs": psc_install, "vcenter_batches": vc_batches, "longest_vcenter_batch": longest_vc_batch,
            "backups_inside": backups_in, "staging_inside": staging_in,
            "total": psc_install + vc_batches + backups_in + staging_in}


def phase_job_seconds(plan: Any, phase: str, actions: set[str] | None, durations: dict[str, float]) -> float:
    """The lab's job time of one phase (optionally some actions only): batches in turn, lanes in parallel."""
    total = 0.0
    for _, steps in plan.phase(phase).batches():
        steps = [s for s in steps if actions is None or s.action in actions]
        total += max((sum(step_seconds(s, durations) for s in lane) for lane in _lanes(steps).values()), default=0.0)
    return total


def theoretical_minimum(plan: Any, durations: dict[str, float], verify_s: float = 0.0,
                        in_domain_backup: bool = True) -> float:
    """Sum of PSC installs + the longest vCenter batch (to 7.0+: every vCenter, one at a time) + verify (lab
    durations).

    The vCenter batch counts, per vCenter, its install and — with `in_domain_backup` — the backup it needs
    first *in the upgraded domain*: the seed's lesson is that a vCenter backup from before the PSC wave cannot
    restore that vCenter alone into the upgraded domain, so without it a failed vCenter install means a
    rollback of the whole domain. PSCs' own in-domain backups run beside the vCenters' and add nothing.
    `in_domain_backup=False` gives the installs-only figure (no backup inside the window at all)."""
    from orchestrator.core import interop, rules
    from orchestrator.core.versions import parse_version
    psc = sum(step_seconds(s, durations) for s in plan.phase("psc").steps if s.action == "upgrade")
    backup = durations["backup"] if in_domain_backup and psc else 0.0  # a converge has no upgraded domain yet
    batches = []
    for _, steps in plan.phase("vcenter").batches():
        lanes = [sum(step_seconds(s, durations) for s in l if s.action == "upgrade") for l in _lanes(steps).values()]
        batches.append(max(lanes, default=0.0))
    # To 7.0+ VMware allows no parallel vCenter upgrades: the minimum then holds every vCenter in turn.
    parallel = rules.vcenters_in_parallel_allowed(interop.supports_external_psc(parse_version(plan.target)))
    vcenters = max(batches, default=0.0) if parallel else sum(batches)
    return psc + (backup + vcenters if vcenters else 0.0) + verify_s


@contextlib.contextmanager
def _tmpdir(workdir: str | Path | None, prefix: str) -> Iterator[str]:
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        yield str(workdir)
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            yield tmp


def run_sequence(inventory: str | Path, workdir: Path, *, time_scale: float, target: str | None = None,
                 playbook: str | None = None, poll_interval: float | None = None,
                 snapshots: bool = False) -> dict[str, Any]:
    """The rehearsal's production sequence against a fresh lab twin (flags built as `Rehearsal.flags`), with
    wall time per command and the journal's events. The lab is always stopped."""
    from lab import manage
    from lab.installer_standin import ENV_LAB_DIR
    from lab.rehearse import Rehearsal, default_target
    from orchestrator.commands import plan as plan_cmd
    from orchestrator.commands import waves
    from orchestrator.core.inventory import load_inventory
    from orchestrator.core.plan import load_plan
    from orchestrator.engine.journal import Journal, journal_path

    target = target or default_target(inventory)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    reh = Rehearsal(str(inventory), target, workdir, time_scale, playbook=playbook, snapshots=snapshots,
                    say=lambda _t: None)
    lab_dir = workdir / "lab"
    old_env = os.environ.get(ENV_LAB_DIR)
    timings: list[tuple[str, float]] = []
    out: dict[str, Any] = {"target": target}
    try:
        t0 = time.monotonic()
        with manage.running(str(inventory), lab_dir, time_scale=time_scale) as info:
            out["lab_up_s"] = time.monotonic() - t0
            out["lab_pids"] = lab_pids(manage.read_lab(lab_dir))
            os.environ[ENV_LAB_DIR] = str(lab_dir.resolve())
            flags = reh.flags(info["inventory"])
            if poll_interval is not None:
                flags = replace(flags, poll_interval=poll_interval)
            sequence: list[tuple[str, Callable[[], str]]] = [
                ("plan", lambda: plan_cmd.run(info["inventory"], target, flags.plan, False, playbook, None)),
                ("precheck", lambda: waves.precheck(flags)),
                ("backup pre", lambda: waves.backup(flags, "pre", snapshots=snapshots)),
                ("stage", lambda: waves.stage(flags)),
                ("upgrade psc", lambda: waves.upgrade(flags, "psc")),
                ("upgrade vcenter", lambda: waves.upgrade(flags, "vcenter")),
                ("verify", lambda: waves.verify(flags)),
                ("backup post", lambda: waves.backup(flags, "post")),
            ]
            for name, fn in sequence:
                t1 = time.monotonic()
                fn()
                timings.append((name, time.monotonic() - t1))
            inv = load_inventory(info["inventory"])
            plan = load_plan(flags.plan)
            with contextlib.closing(Journal.open(journal_path(flags.state_dir, inv.domain))) as j:
                events = j.events()
    finally:
        if old_env is None:
            os.environ.pop(ENV_LAB_DIR, None)
        else:
            os.environ[ENV_LAB_DIR] = old_env
        for p in out.get("lab_pids", [])[:1]:
            _reap(p)
    out.update(timings=timings, inventory=inv, plan=plan, events=events)
    return out


# ------------------------------------------------------------------------------------------------ overhead
COMMAND_PHASE = {"precheck": ("pre", {"precheck"}), "backup pre": ("pre", {"backup"}), "stage": ("pre", {"stage"}),
                 "upgrade psc": ("psc", None), "upgrade vcenter": ("vcenter", None), "verify": ("post", {"verify"}),
                 "backup post": ("post", {"backup"})}


def bench_overhead(inventory: str | Path = TWO_SITE, time_scale: float = 1e-9, poll_interval: float = 0.001,
                   appends: int = 1000, workdir: str | Path | None = None) -> list[Row]:
    """Engine time per step: each command's wall time minus the lab's job time (~0 here), per step run."""
    from orchestrator.engine.journal import bench_append

    rows: list[Row] = []
    with _tmpdir(workdir, "vcwave-bench-overhead-") as tmp:
        for label, scaled in (("production retry waits", False), ("retry waits = poll interval", True)):
            rows += _overhead_run(inventory, Path(tmp) / ("scaled" if scaled else "prod"), time_scale,
                                  poll_interval, label, scaled)
    per_append = bench_append(appends)
    rows.append(row(f"overhead: journal append (durable, {appends} appends)", per_append * 1000, "ms/append"))
    return rows


@contextlib.contextmanager
def _retry_waits(wait: float | None, **policy: Any) -> Iterator[None]:
    """The client retry policy with tiny waits (as the tests do), restored after; None: unchanged."""
    from orchestrator.clients import retry
    if wait is None:
        yield
        return
    # by default more attempts, so that the same ~seconds are bridged (a vCenter's vim25 restarting after its
    # install)
    policy = policy or {"max_wait": max(wait * 10, 0.05), "attempts": 200}
    old = retry.set_default_policy(initial_wait=wait, **policy)
    try:
        yield
    finally:
        retry.set_default_policy(old)


def _overhead_run(inventory: str | Path, workdir: Path, time_scale: float, poll_interval: float, label: str,
                  scaled_retries: bool) -> list[Row]:
    from orchestrator.clients import retry
    durations = lab_durations(time_scale)
    retries0 = retry.retry_count()
    with _retry_waits(poll_interval if scaled_retries else None):
        res = run_sequence(inventory, workdir, time_scale=time_scale, poll_interval=poll_interval)
    retries = retry.retry_count() - retries0
    plan, events = res["plan"], res["events"]
    rows: list[Row] = []
    total_wall = total_steps = total_job = 0.0
    by_cmd = _steps_per_command(res["timings"], events)
    for name, wall in res["timings"]:
        n = by_cmd.get(name, 0)
        if name == "plan" or n == 0:
            rows.append(row(f"overhead [{label}]: {name} (no engine steps)", wall * 1000, "ms"))
            continue
        phase, actions = COMMAND_PHASE[name]
        job = phase_job_seconds(plan, phase, actions, durations)
        per = (wall - job) / n * 1000
        total_wall += wall
        total_steps += n
        total_job += job
        rows.append(row(f"overhead [{label}]: {name} ({n} steps)", per, "ms/step", lab_job_s=job))
    if total_steps:
        rows.append(row(f"overhead [{label}]: whole sequence on {Path(inventory).name} ({int(total_steps)} steps, "
                        f"{retries} client retries)", (total_wall - total_job) / total_steps * 1000, "ms/step", "",
                        lab_job_s=total_job, wall_s=round(total_wall, 3), lab_up_s=round(res["lab_up_s"], 3),
                        retries=retries))
    return rows


def _steps_per_command(timings: list[tuple[str, float]], events: list[Any]) -> dict[str, int]:
    """Number of steps each command ran (succeeded step events), matched to commands by run order: every
    command of the sequence opens one session (one run_id), `backup pre` with snapshots an extra ad-hoc run
    under the same run_id."""
    names = [n for n, _ in timings if n != "plan"]
    run_ids = list(dict.fromkeys(e.run_id for e in events if e.kind == "run.start"))
    counts = {r: 0 for r in run_ids}
    for e in events:
        if e.kind == "step" and e.status == "succeeded" and e.run_id in counts:
            counts[e.run_id] += 1
    out = {}
    for name, rid in zip(names, run_ids):
        out[name] = counts[rid]
    return out


# ------------------------------------------------------------------------------------------------ window
def _bundled(name: str) -> str:
    return str(bundled_playbook_path(name))


def measure_window(inventory: str | Path, playbook: str, time_scale: float, target: str | None = None,
                   workdir: str | Path | None = None, poll_interval: float | None = None,
                   scaled_retries: bool = True) -> dict[str, Any]:
    """One run; `scaled_retries`: the client's retry waits shrink with the lab's clock as `invoke rehearse`
    does (a real reboot lasts minutes: 0.5-4 s waits are nothing beside it, but not beside a scaled one)."""
    from orchestrator.clients import retry
    from orchestrator.core.history import fold
    retries0 = retry.retry_count()
    waits = ((min(0.5, 0.5 * time_scale * 200), {"max_wait": min(15.0, 15.0 * time_scale * 20)})
             if scaled_retries else (None, {}))
    with _tmpdir(workdir, "vcwave-bench-window-") as tmp, _retry_waits(waits[0], **waits[1]):
        res = run_sequence(inventory, Path(tmp) / Path(playbook).stem, time_scale=time_scale, target=target,
                           playbook=playbook, poll_interval=poll_interval)
    res["retries"] = retry.retry_count() - retries0
    res["install_steps_s"] = _install_step_seconds(res["events"])
    hist = fold(res["inventory"], res["events"])
    if hist.window_opened is None or hist.window_closed is None:
        raise RuntimeError(f"{inventory} with {playbook}: the journal has no closed window "
                           f"(opened={hist.window_opened}, closed={hist.window_closed})")
    res["window_s"] = hist.window_closed - hist.window_opened
    res["nodes_at_target"] = sum(1 for n in hist.nodes.values() if n.version.release == res["target"])
    res["nodes"] = len(hist.nodes)
    return res


def _install_step_seconds(events: list[Any]) -> list[float]:
    """Wall time of every upgrade step, from its journal started -> succeeded events."""
    started: dict[str, float] = {}
    out = []
    for e in events:
        if e.kind == "step" and e.action == "upgrade":
            if e.status == "started" and not e.data.get("progress"):
                started.setdefault(e.step, e.ts)
            elif e.status == "succeeded" and e.step in started:
                out.append(e.ts - started[e.step])
    return out


def bench_window(inventory: str | Path = TWO_SITE, time_scale: float = 0.002, target: str | None = None,
                 poll_interval: float | None = None, workdir: str | Path | None = None,
                 scaled_retries: bool = True) -> list[Row]:
    """Default vs serial playbook: window from the journal, beside the theoretical minimum."""
    durations = lab_durations(time_scale)
    name = Path(inventory).name + ("" if scaled_retries else " [production retry waits]")
    runs = {}
    with _tmpdir(workdir, "vcwave-bench-window-") as tmp:
        for pb in ("default", "serial"):
            runs[pb] = measure_window(inventory, _bundled(pb), time_scale, target, Path(tmp) / pb, poll_interval,
                                      scaled_retries)
    dflt, ser = runs["default"], runs["serial"]
    minimum = theoretical_minimum(dflt["plan"], durations)
    installs_only = theoretical_minimum(dflt["plan"], durations, in_domain_backup=False)
    model = {pb: window_model(r["plan"], durations) for pb, r in runs.items()}
    vc, sv = dflt["window_s"], ser["window_s"]
    ratio_min, ratio_serial = vc / minimum, sv / vc
    m = model["default"]
    rows = [
        row(f"window {name}: theoretical minimum (lab durations x {time_scale})", minimum, "s",
            psc_installs_s=round(m["psc_installs"], 4), longest_vcenter_batch_s=round(m["longest_vcenter_batch"], 4),
            in_domain_backup_s=round(durations["backup"], 4), verify_s=0.0),
        row(f"window {name}: installs only (no backup inside the window)", installs_only, "s"),
        row(f"window {name}: vcwave (default playbook), journal", vc, "s",
            upgraded=f"{dflt['nodes_at_target']}/{dflt['nodes']}", rule=dflt["plan"].concurrency_rule),
        row(f"window {name}: vcwave model (its plan, lab durations)", m["total"], "s",
            psc_installs_s=round(m["psc_installs"], 4), vcenter_batches_s=round(m["vcenter_batches"], 4),
            backups_inside_s=round(m["backups_inside"], 4), staging_inside_s=round(m["staging_inside"], 4)),
        row(f"window {name}: vcwave - model (polls, engine, lab restarts)", vc - m["total"], "s",
            client_retries=dflt["retries"]),
        row(f"window {name}: vcwave install step, mean wall vs lab job", statistics.mean(dflt["install_steps_s"]),
            "s", lab_job_s=round(statistics.mean(step_seconds(s, durations) for s in dflt["plan"].steps()
                                                 if s.action == "upgrade"), 4), steps=len(dflt["install_steps_s"]),
            client_retries=dflt["retries"]),
        row(f"window {name}: serial playbook, journal", sv, "s",
            upgraded=f"{ser['nodes_at_target']}/{ser['nodes']}"),
        row(f"window {name}: serial model (its plan, lab durations)", model["serial"]["total"], "s",
            backups_inside_s=round(model["serial"]["backups_inside"], 4),
            staging_inside_s=round(model["serial"]["staging_inside"], 4)),
        row(f"window {name}: vcwave / minimum", ratio_min, "x", "<= 1.05", ratio_min <= 1.05),
        row(f"window {name}: vcwave / installs only", vc / installs_only, "x"),
        row(f"window {name}: vcwave model / minimum", m["total"] / minimum, "x", "<= 1.05",
            m["total"] / minimum <= 1.05),
        row(f"window {name}: serial / vcwave", ratio_serial, "x", ">= 3", ratio_serial >= 3),
        row(f"window {name}: serial model / vcwave model (the most the lab allows)",
            model["serial"]["total"] / m["total"], "x"),
    ]
    return rows


# ------------------------------------------------------------------------------------------------ hops
def bench_hops(inventory: str | Path = TWO_SITE_60, target: str = "8.0 U3", time_scale: float = 0.002,
               workdir: str | Path | None = None) -> list[Row]:
    """Every hop of the route to `target` rehearsed in turn on one lab (`invoke rehearse`: each hop planned, run,
    finalized, the next planned from the inventory finalize wrote): each hop's window, measured from its own
    journal, beside its theoretical minimum (lab durations)."""
    from lab.rehearse import Rehearsal

    durations = lab_durations(time_scale)
    with _tmpdir(workdir, "vcwave-bench-hops-") as tmp:
        reh = Rehearsal(str(inventory), target, Path(tmp), time_scale, say=lambda _t: None)
        reh.run()
    kinds = [h["kind"] for h in reh.hops[0]["plan"].route.get("hops", [])] or ["hop"]
    rows: list[Row] = []
    for i, (hop, kind) in enumerate(zip(reh.hops, kinds), 1):
        plan = hop["plan"]
        name = f"hop {i} ({kind}, -> {plan.target})"
        minimum = theoretical_minimum(plan, durations)
        rows += [row(f"{name}: window, journal", hop["window_s"], "s"),
                 row(f"{name}: theoretical minimum (lab durations x {time_scale})", minimum, "s"),
                 row(f"{name}: vcwave / minimum", hop["window_s"] / minimum if minimum else 0.0, "x")]
    return rows


# ------------------------------------------------------------------------------------------------ main
BENCHES = ("plan", "lab", "facts", "overhead", "window", "hops")


def run_bench(name: str, *, time_scale: float | None = None) -> list[Row]:
    if name == "plan":
        return bench_plan()
    if name == "lab":
        return bench_lab()
    if name == "facts":
        return bench_facts()
    if name == "overhead":
        return bench_overhead()
    if name == "window":
        ts = 0.002 if time_scale is None else time_scale
        return bench_window(TWO_SITE, ts) + bench_window(LARGE, ts)
    if name == "hops":
        return bench_hops(time_scale=0.002 if time_scale is None else time_scale)
    raise ValueError(f"unknown benchmark {name!r}; one of {', '.join(BENCHES)}, all")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("bench", choices=[*BENCHES, "all"])
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--time-scale", type=float, default=None, help="window: lab time scale (default 0.002)")
    ap.add_argument("--log", default=os.devnull, help="where the engine's log lines go (default: discarded)")
    args = ap.parse_args(argv)
    from orchestrator import log
    log.configure(stream=open(args.log, "a"))  # the engine logs as in production (cost included), not on screen
    rows: list[Row] = []
    for name in (BENCHES if args.bench == "all" else (args.bench,)):
        got = run_bench(name, time_scale=args.time_scale)
        rows += got
        if not args.json:
            print(render(got), flush=True)
            print(flush=True)
    if args.json:
        print(as_json(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

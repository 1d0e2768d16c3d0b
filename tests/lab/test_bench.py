"""Smoke tests of lab/bench.py on tiny inputs: structure and the invariants that are NOT timing (round trips
equal at every size, rows present, lab processes gone). No timed assertions: the benchmarks print figures.

Running a benchmark (plan, facts, overhead, window) is part of the full sweep (`pytest --full`, marker `full`):
the default run keeps the pure parts, the lab's clean exit and the CLI's table/JSON output.

Benchmarks that need vcsim take the `vcsim_binary` fixture (tests/lab/conftest.py): a missing vcsim FAILS
in CI (CI=true) and is skipped elsewhere.
"""
from __future__ import annotations

import json
import math

import pytest

from lab import bench
from lab import manage
from lab.warm_relay import alive

KEYS = {"name", "value", "unit", "target", "ok"}


def check_rows(rows: list[dict]) -> None:
    assert rows, "a benchmark returned no rows"
    for r in rows:
        assert KEYS <= set(r), r
        assert isinstance(r["name"], str) and r["name"]
        assert isinstance(r["value"], (int, float)) and math.isfinite(r["value"]), r
        assert r["ok"] in (True, False, None)
        if r["target"]:
            assert r["ok"] is not None, f"a row with a target says whether it is met: {r}"
    json.loads(bench.as_json(rows))
    table = bench.render(rows)
    for r in rows:
        assert r["name"] in table


def by_name(rows: list[dict], fragment: str) -> list[dict]:
    return [r for r in rows if fragment in r["name"]]


# ------------------------------------------------------------------------------------------- pure parts
def test_render_and_json_of_rows():
    rows = [bench.row("a figure", 1.23456, "ms"), bench.row("a goal", 2, "x", "<= 3", True),
            bench.row("a miss", 0.5, "s", ">= 3", False)]
    table = bench.render(rows)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["benchmark", "value"]
    assert len(lines) == 2 + len(rows)
    assert "NO" in lines[-1] and "yes" in lines[-2]
    assert json.loads(bench.as_json(rows))[1]["ok"] is True


@pytest.mark.full
def test_bench_plan_small():
    rows = bench.bench_plan(domains=20, runs=3)
    check_rows(rows)
    assert by_name(rows, "load+plan large.yml")
    assert by_name(rows, "20 generated domains")
    assert by_name(rows, "per generated domain")


@pytest.mark.full  # the benchmarks' own tooling: the full sweep (TIERS.md)
def test_generated_domains_vary_and_plan():
    import random
    from orchestrator.core.inventory import loads_inventory
    rng = random.Random(7)
    invs = [loads_inventory(bench.generated_inventory(rng, i)) for i in range(40)]
    assert {len(i.sites) for i in invs} == {1, 2, 3, 4}
    per_site = {sum(1 for p in i.pscs if p.site == s) for i in invs for s in i.sites}
    assert per_site == {1, 2, 3, 4}


def _plan(inventory, playbook: str, target: str = "6.7 U3"):
    from orchestrator.commands.plan import make_plan
    return make_plan(str(inventory), target, bench._bundled(playbook))


def test_window_model_and_minimum_of_two_site():
    """Two-site, 6.7 U1 -> U3: two PSC installs, 'during' backups, then both PSC groups side by side."""
    d = bench.lab_durations(1.0)
    default = _plan(bench.TWO_SITE, "default")
    assert bench.theoretical_minimum(default, d) == pytest.approx(3 * d["install"] + d["backup"])
    assert bench.theoretical_minimum(default, d, in_domain_backup=False) == pytest.approx(3 * d["install"])
    m = bench.window_model(default, d)
    assert m["psc_installs"] == pytest.approx(2 * d["install"])
    assert m["vcenter_batches"] == pytest.approx(d["install"])
    assert m["total"] == pytest.approx(bench.theoretical_minimum(default, d))  # the plan is the minimum
    assert m["backups_inside"] == pytest.approx(d["backup"])  # all nodes' 'during' backups, together
    assert m["staging_inside"] == 0
    serial = bench.window_model(_plan(bench.TWO_SITE, "serial"), d)
    # the first PSC's backup and stage come before its install opens the window; every later node's inside
    assert serial["backups_inside"] == pytest.approx(3 * d["backup"])
    assert serial["staging_inside"] == pytest.approx(3 * d["stage"])
    assert serial["total"] > m["total"]


def test_phase_job_seconds_runs_lanes_of_a_batch_together():
    d = bench.lab_durations(1.0)
    default = _plan(bench.TWO_SITE, "default")
    assert bench.phase_job_seconds(default, "pre", {"backup"}, d) == pytest.approx(d["backup"])
    assert bench.phase_job_seconds(default, "psc", None, d) == pytest.approx(2 * d["install"])


# ------------------------------------------------------------------------------------------- with vcsim
@pytest.mark.full
def test_bench_facts_round_trips_do_not_grow_with_vms(vcsim_binary):
    rows = bench.bench_facts((10, 50))
    check_rows(rows)
    trips = by_name(rows, "round trips")
    assert len(trips) == 2
    assert trips[0]["value"] == trips[1]["value"] > 0
    assert all(r["ok"] is True for r in trips)
    assert trips[0]["vms_seen"] >= 10 and trips[1]["vms_seen"] >= 50
    assert trips[1]["vms_seen"] > trips[0]["vms_seen"]
    assert len(by_name(rows, "seconds at")) == 2


@pytest.mark.full  # the benchmarks' own tooling: the full sweep (TIERS.md)
def test_bench_lab_leaves_no_process(vcsim_binary, tmp_path):
    rows = bench.bench_lab(bench.TWO_SITE, sample_s=0.2, workdir=tmp_path)
    check_rows(rows)
    gone = by_name(rows, "alive after down")
    assert gone and gone[0]["value"] == 0 and gone[0]["ok"] is True
    info = manage.read_lab(tmp_path / "lab")
    pids = bench.lab_pids(info)
    assert len(pids) == 1 + 2 + 1  # the daemon, two vCenters' vcsim, the management vCenter's
    assert not [p for p in pids if alive(p)]
    assert by_name(rows, "peak RSS")[0]["value"] > 0


@pytest.mark.full
def test_bench_overhead_two_site(vcsim_binary, tmp_path):
    rows = bench.bench_overhead(bench.TWO_SITE, appends=50, workdir=tmp_path)
    check_rows(rows)
    for label in ("production retry waits", "retry waits = poll interval"):
        mine = by_name(rows, f"[{label}]")
        for cmd in ("precheck", "backup pre", "stage", "upgrade psc", "upgrade vcenter", "verify", "backup post"):
            assert by_name(mine, f": {cmd} ("), (label, cmd)
        assert by_name(mine, "whole sequence")
    assert by_name(rows, "journal append")
    for p in bench.lab_pids(manage.read_lab(tmp_path / "prod" / "lab")):
        assert not alive(p)


def single_site_67(tmp_path):
    """examples/single-site.yml moved to 6.7 U1 (one PSC, two vCenters), so 6.7 U3 is a patch by the update
    API. (The example itself, 6.5 U2 -> 6.7 U1 by the installer, fails the installer precheck in the lab: its
    `deploy` blocks name no `target` cluster/host.)"""
    text = bench.SINGLE_SITE.read_text().replace('"6.5 U2"', '"6.7 U1"').replace("8307201", "10244745")
    p = tmp_path / "single-site-67.yml"
    p.write_text(text)
    return p


@pytest.mark.full
def test_bench_window_single_site(vcsim_binary, tmp_path):
    """A single-site domain, default vs serial playbook, on a fast lab: the window comes from the journal."""
    inv = single_site_67(tmp_path)
    rows = bench.bench_window(inv, time_scale=1e-4, target="6.7 U3", workdir=tmp_path / "w")
    check_rows(rows)
    for frag in ("theoretical minimum", "vcwave (default playbook)", "serial playbook, journal",
                 "vcwave / minimum", "serial / vcwave"):
        assert by_name(rows, frag), frag
    assert by_name(rows, "vcwave (default playbook)")[0]["upgraded"] == "3/3"
    assert by_name(rows, "serial playbook, journal")[0]["upgraded"] == "3/3"
    d = bench.lab_durations(1e-4)
    # one PSC, then its two vCenters together after their in-domain backups (verify has no lab job)
    assert by_name(rows, "theoretical minimum")[0]["value"] == pytest.approx(2 * d["install"] + d["backup"])
    assert by_name(rows, "installs only")[0]["value"] == pytest.approx(2 * d["install"])
    for pb in ("default", "serial"):
        for p in bench.lab_pids(manage.read_lab(tmp_path / "w" / pb / pb / "lab")):
            assert not alive(p)


@pytest.mark.full  # the benchmarks' own tooling: the full sweep (TIERS.md)
def test_main_prints_a_table_and_json(monkeypatch, capsys, tmp_path):
    from orchestrator import log
    small = bench.bench_plan
    monkeypatch.setattr(bench, "bench_plan", lambda: small(domains=3, runs=2))
    try:
        assert bench.main(["plan", "--log", str(tmp_path / "log")]) == 0
        out = capsys.readouterr().out
        assert "benchmark" in out and "generated domains" in out
        assert bench.main(["plan", "--json", "--log", str(tmp_path / "log")]) == 0
        rows = json.loads(capsys.readouterr().out)
        check_rows(rows)
    finally:
        log.configure()
    with pytest.raises(SystemExit):
        bench.main(["nope"])

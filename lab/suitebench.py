"""The test suite's own benchmark: the README's test command run N times in a row, its wall and CPU printed.

Issue 18 wants the default tier under 60 s of wall on two cores, ten runs in a row green, and says speed is
checked by benchmarks that print figures, never by timed assertions. `invoke bench.suite --runs 10` is that
check: per run the wall time, the CPU of pytest and every process it waited for (labs, vcsims, commands),
the tests passed and failed; then the median and the worst.

`--write-order` also rewrites tests/slow_first.txt from the last run's measured times: tests/conftest.py
hands the slowest tests out first (longest-processing-time-first), so that a long lab test does not start
last on an otherwise idle worker. The file only orders; a stale or missing file costs time, never coverage.

Also a pytest plugin (`-p lab.suitebench`): on the controller it sums each test's setup, call and teardown
durations (xdist forwards the workers' reports) and writes them as JSON where SUITE_TIMES_OUT says.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ORDER_FILE = ROOT / "tests" / "slow_first.txt"
TIMES_ENV = "SUITE_TIMES_OUT"
ORDER_MIN_SECONDS = 0.5          # faster tests keep collection order: their order hardly moves the wall
SUMMARY = re.compile(r"(\d+) (passed|failed|errors?)")

_times: dict[str, float] = {}


# ------------------------------------------------------------------------------------------ pytest plugin
def pytest_runtest_logreport(report) -> None:
    nodeid = report.nodeid.split("@", 1)[0]  # xdist's loadgroup appends "@<group>" to a grouped test's id
    _times[nodeid] = _times.get(nodeid, 0.0) + report.duration


def pytest_sessionfinish(session) -> None:
    out = os.environ.get(TIMES_ENV)
    if out and not hasattr(session.config, "workerinput"):
        Path(out).write_text(json.dumps(_times))


def slowest_first(items: list[Any], seconds: dict[str, float]) -> list[Any]:
    """The work units (a test, or a module fixture's group) with the most measured seconds first; the rest
    in collection order. Two cores, many workers that mostly wait: a 16 s lab test handed out last would run
    alone at the end (longest-processing-time-first scheduling). Order only: every test still runs."""
    units: dict[str, list[Any]] = {}
    for item in items:
        marker = item.get_closest_marker("xdist_group")
        units.setdefault(marker.args[0] if marker else item.nodeid, []).append(item)
    weight = {key: sum(seconds.get(i.nodeid, 0.0) for i in unit) for key, unit in units.items()}
    ranked = sorted(units, key=lambda key: -weight[key])  # stable: unmeasured units keep collection order
    return [item for key in ranked for item in units[key]]


# ------------------------------------------------------------------------------------------------ bench
def run_once(pytest_args: list[str], times_out: Path) -> dict:
    """One run of `python3 -m pytest -q` (the README's command) as a child: its wall and summary counts."""
    env = dict(os.environ, **{TIMES_ENV: str(times_out)})
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "lab.suitebench", *pytest_args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = proc.communicate()
    wall = time.monotonic() - start
    counts = {kind.rstrip("s"): int(n) for n, kind in SUMMARY.findall(output.splitlines()[-1] if output else "")}
    return {"wall_s": round(wall, 1), "returncode": proc.returncode, "passed": counts.get("passed", 0),
            "failed": counts.get("failed", 0) + counts.get("error", 0),
            "tail": [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))], "output": output}


def children_cpu() -> float:
    """CPU of every child this process has waited for so far (pytest and what it waited for)."""
    import resource
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def write_order(times: dict[str, float], path: Path = ORDER_FILE) -> int:
    """tests/slow_first.txt: the tests at or above ORDER_MIN_SECONDS, slowest first, with their seconds."""
    slow = sorted(((s, n) for n, s in times.items() if s >= ORDER_MIN_SECONDS), reverse=True)
    path.write_text("# seconds  test — written by `invoke bench.suite --write-order`; tests/conftest.py hands "
                    "these out first\n" + "".join(f"{s:7.2f}  {n}\n" for s, n in slow))
    return len(slow)


def read_order(path: Path = ORDER_FILE) -> dict[str, float]:
    """nodeid -> measured seconds from tests/slow_first.txt ({} when it is missing)."""
    if not path.exists():
        return {}
    order: dict[str, float] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            seconds, nodeid = line.split(None, 1)
            order[nodeid.strip()] = float(seconds)
    return order


def bench_suite(runs: int = 1, pytest_args: list[str] | None = None, order: bool = False) -> list[dict]:
    """Run the suite `runs` times in a row; rows per run, then the median and worst wall."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="vcwave-suitebench-") as tmp:
        times_out = Path(tmp) / "times.json"
        for i in range(runs):
            before = children_cpu()
            result = run_once(list(pytest_args or []), times_out)
            rows.append({"run": i + 1, **result, "cpu_s": round(children_cpu() - before, 1)})
            r = rows[-1]
            if r["returncode"] != 0:  # the whole output of a red run is kept: a flake must be findable
                kept = Path(tempfile.gettempdir()) / f"vcwave-suitebench-run-{int(time.time())}-{i + 1}.log"
                kept.write_text(r["output"])
                r["tail"].append(f"whole output: {kept}")
            print(f"run {i + 1}/{runs}: {r['wall_s']} s wall, {r['cpu_s']} s CPU, {r['passed']} passed, "
                  f"{r['failed']} failed" + ("" if r["returncode"] == 0 else "\n  " + "\n  ".join(r["tail"])),
                  flush=True)
        if order and times_out.exists():
            written = write_order(json.loads(times_out.read_text()))
            print(f"{ORDER_FILE.relative_to(ROOT)}: {written} tests of >= {ORDER_MIN_SECONDS} s, slowest first")
    walls = [r["wall_s"] for r in rows]
    print(f"{runs} run(s): median {statistics.median(walls):.1f} s wall, worst {max(walls):.1f} s; "
          f"{sum(r['returncode'] == 0 for r in rows)}/{runs} green")
    return rows

"""Shared fixtures. The lab's vcsim is a real component: with CI=true a missing vcsim FAILS the run (the
brief's rule); only on a developer machine without Go/govmomi does a lab test skip, saying what to install."""
from __future__ import annotations

import gc
import os
import shlex
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from lab.suitebench import read_order, slowest_first

# Python's bytecode cache on for this run and every process it starts, whatever the environment says: with
# PYTHONDONTWRITEBYTECODE=1 (set on some CI images) each xdist worker, lab daemon and `invoke` subprocess
# compiled vcwave and pytest re-wrote every test module's asserts from source, every time — collection alone
# took 7.7 s of CPU per process instead of 2.6 s. The caches are ignored by git (.gitignore: __pycache__/).
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
# pytest and its plugins, loaded by now, live as long as the process: out of the collector's sight, as is
# everything collection builds (pytest_collection_finish); the full collections during collection halve.
gc.freeze()

# The run's temporary folders (tmp_path: every lab's state, every journal, every workdir) in memory when the
# machine has a tmpfs at /dev/shm with room: the journal and the lab commit with fsync at every event and state
# change, and on a disk each is a journal commit the kernel does on the same two cores (system CPU in interleaved
# runs: 22.2 / 22.3 s on the disk, 17.7 / 19.1 s in memory). Nothing the
# suite checks depends on the disk: a SIGKILLed process's writes are in the page cache either way. Where
# /dev/shm is missing, read-only or small (a container's 64 MB), the system's temporary folder as before;
# `--basetemp` or PYTEST_DEBUG_TEMPROOT (pytest's own setting) wins.
SHM, SHM_NEEDED = Path("/dev/shm"), 512 << 20


def _memory_temproot() -> str | None:
    try:
        st = os.statvfs(SHM)
    except OSError:
        return None
    return str(SHM) if os.access(SHM, os.W_OK) and st.f_bavail * st.f_frsize >= SHM_NEEDED else None


if "PYTEST_DEBUG_TEMPROOT" not in os.environ and (_root := _memory_temproot()):
    os.environ["PYTEST_DEBUG_TEMPROOT"] = _root


def require_vcsim() -> Path:
    """The vcsim binary (built once), or fail in CI / skip elsewhere with the reason."""
    try:
        from lab import vcsim
        return vcsim.ensure_vcsim_binary()
    except Exception as exc:  # ImportError or VcsimUnavailable: reported the same way
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"vcsim unavailable in CI: {exc}")
        pytest.skip(f"vcsim unavailable: {exc}")


@pytest.fixture(scope="session")
def vcsim_binary() -> Path:
    return require_vcsim()


@pytest.fixture(autouse=True)
def structlog_reset():
    """Every test leaves logging as it found it. A command run in-process configures structlog with the
    sys.stderr of that moment, pytest's capture file for that test, closed afterwards: a later test on the
    same worker that logs (e.g. the lock's stale_broken warning) then failed with "I/O operation on closed
    file", depending on the order the tests ran in."""
    yield
    import structlog

    import orchestrator.log as olog
    olog.finish()  # a command's console and event file, if a test left them open
    structlog.reset_defaults()
    olog._configured = False


# -- tiers ---------------------------------------------------------------------------------------------------
FULL_SWEEP = {"on": False}  # set from --full before collection; read by examples()


# Properties are not timed: Hypothesis's per-example deadline (200 ms) is a timed assertion, and with six
# workers on two cores one example of tests/core/test_live.py once took 265 ms (a ten-run failed twice on it).
# A property that hangs still fails, by its name, through pytest-timeout.
settings.register_profile("vcwave", deadline=None)
settings.load_profile("vcwave")


def examples(n: int) -> int:
    """Hypothesis examples per property: n in the full sweep, a third by default. Every property still runs on
    every default run (each rule checked), on fewer random domains; the sweep searches the space harder."""
    return n if FULL_SWEEP["on"] else max(10, n // 3)


# What every worker imports to collect the suite, beyond the commands the warm server already holds: pytest and
# its built-in plugins, Hypothesis, execnet, mock, the lab modules the tests use. Plugins' own modules are left to
# the worker (pytest must see them first to rewrite their asserts); Hypothesis' package is not a plugin module
# but is in a plugin's distribution, so pytest warns it could not rewrite it (pyproject.toml: filterwarnings).
# vcrpy (the cassette tests, most workers) brings requests and botocore: ~0.2 s each time. Hypothesis reads the
# constants of every local module (vcwave's, the lab's) when a worker collects its first property test, ~0.3 s
# of CPU each time: read once in the server, the workers add only what is new to them (the same set in the end).
LOCAL_CONSTANTS = "hypothesis.internal.conjecture.providers:_get_local_constants"
WORKER_IMPORTS = ("pytest", "_pytest.python", "_pytest.fixtures", "_pytest.runner", "_pytest.debugging",
                  "_pytest.junitxml", "_pytest.skipping", "_pytest.unittest", "_pytest.warnings", "pdb",
                  "unittest.mock", "execnet", "hypothesis", "hypothesis.strategies", "lab.badinputs", "lab.bench",
                  "lab.record", "lab.rehearse", "lab.manage", "lab.suitebench", "orchestrator.commands.finalize",
                  "vcr", LOCAL_CONSTANTS)


def pytest_configure(config: pytest.Config) -> None:
    FULL_SWEEP["on"] = bool(config.getoption("--full"))
    if getattr(config.option, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER"):
        # The controller, before its workers start: one warm CLI server for all of them (each forks commands;
        # its imports are paid once, not once per worker). Started now, ready while the workers collect.
        from lab.harness import forked
        from lab.warmcli import WarmCli
        server = WarmCli.share_with_children(preload=WORKER_IMPORTS)
        if forked():  # the workers themselves forked from it too (VCWAVE_HARNESS_FORK=0: fresh interpreters)
            config.option.tx = [warm_worker(spec, server.sock) for spec in config.option.tx]


def warm_worker(spec: str, sock: str) -> str:
    """xdist's plain `popen` worker as a fork of the warm server (lab/warm_relay.py runs execnet's `python -u
    -c BOOTSTRAP` there, or in a fresh interpreter if the server is gone); ~0.9 s of CPU of imports saved per
    worker. Any other spec (`--tx ssh=...`, a chosen python) is left as given."""
    if spec != "popen":
        return spec
    from lab.warmcli import PYTHON, relay_argv
    return "popen//python=" + shlex.join(relay_argv(sock, PYTHON))


# The default run (`python3 -m pytest -q`, what CI runs) covers every behaviour once; `--full` adds the sweep
# (every crash point, every bad input, the benchmarks). Full-only tests are deselected, not skipped: a skip
# would read as "something is missing", and nothing is.
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true", default=False,
                     help="the full sweep: also the tests marked `full` (every crash point, the benchmarks) "
                          "and 3x the Hypothesis examples")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups it adds
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--full"):
        keep, drop = [], []
        for item in items:
            (drop if item.get_closest_marker("full") else keep).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
    for item in items:
        group = module_fixture_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    items[:] = slowest_first(items, read_order())  # `--random-order` (pytest-random-order) shuffles after this



@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything collection built (~140,000 objects: imported modules, 1,800 test items, their marks and
    parameters) lives until the process ends, so it is moved out of the garbage collector's sight: each later
    full collection — automatic ones while tests run, and the five pytest forces at exit to surface unraisable
    exceptions — walked all of it again on every xdist worker (0.35 s of CPU per worker at exit alone).
    Objects created by the tests themselves are collected as before."""
    gc.freeze()


def module_fixture_group(item: pytest.Item) -> str | None:
    """Tests that share a module fixture which builds something on disk (a lab, a prepared domain, a whole
    run observed once: it asks for tmp_path_factory) go to one xdist worker, so it is built once, as without
    xdist. Cheap module fixtures ("vcsim is there", a parsed inventory) do not group: those tests are handed
    out one by one, so a module's slow lab tests run side by side."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    shared = sorted(name for name, defs in info.name2fixturedefs.items()
                    if name in info.argnames and defs and defs[-1].scope == "module"
                    and "tmp_path_factory" in defs[-1].argnames)
    return f"{item.module.__name__}::{shared[0]}" if shared else None

"""Shared fixtures. The lab's vcsim is a real component: with CI=true a missing vcsim FAILS the run (the
brief's rule); only on a developer machine without Go/govmomi does a lab test skip, saying what to install."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


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


# -- tiers ---------------------------------------------------------------------------------------------------
# The default run (`python3 -m pytest -q`, what CI runs) covers every behaviour once; `--full` adds the sweep
# (every crash point, every bad input, the benchmarks). Full-only tests are deselected, not skipped: a skip
# would read as "something is missing", and nothing is.
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true", default=False,
                     help="the full sweep: also the tests marked `full` (every crash point, the benchmarks)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--full"):
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("full") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep

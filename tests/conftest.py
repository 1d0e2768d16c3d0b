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

"""`pip install` of vcwave into a fresh virtualenv (no system site-packages), then, from a folder outside the
checkout, `vcwave --help`, `vcwave plan --help`, `vcwave upgrade --help` and a plan from an inventory given
by absolute path. Proves the console script, the package data (bundled playbooks, release data) and that
nothing reaches back into the checkout.

vcwave's wheel is built by its build backend (setuptools' PEP 517 hook, with this environment's setuptools and
wheel: the test extra's), as `pip wheel --no-build-isolation` builds it, then installed by its path into the
venv, its dependencies from pip's cache or the package index. Not in an isolated build environment: pip would
install setuptools into a fresh one first, half the fixture's CPU, for the same wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# building the wheelhouse and the venv takes ~8 s on a quiet 2-CPU machine, over 30 s when it is shared
pytestmark = pytest.mark.timeout(300)


def _sh(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600):
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"  # a copy, so that building leaves no build/ or egg-info in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".vcwave", "build", "*.egg-info", "__pycache__",
                                                              ".pytest_cache", "bin"))
    wheels = tmp / "wheels"
    wheels.mkdir()
    # vcwave's wheel from its build backend's PEP 517 hook, in a fresh interpreter in the copy: what `pip wheel
    # --no-build-isolation` runs, without pip's own start-up and resolver around it (~1.4 s of CPU)
    r = _sh([sys.executable, "-c",
             "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))",
             str(wheels)], src)
    assert r.returncode == 0, f"building vcwave's wheel failed:\n{r.stderr[-3000:]}"
    wheel = wheels / r.stdout.strip().splitlines()[-1]
    env_dir = tmp / "venv"
    # No pip inside the venv: ensurepip costs ~10 s on a busy machine; this interpreter's pip installs into
    # the venv instead (`pip --python`, pip >= 22.3): the wheel by its path (never a `vcwave` of the index), its
    # dependencies as `pip install .` resolves them (pip's cache or the package index).
    # --no-compile: pip byte-compiles every installed module (pyVmomi, pygments, rich: ~1.7 s of CPU) while the
    # commands below import a fraction of them, compiled on first import (~0.3 s).
    venv.EnvBuilder(with_pip=False, system_site_packages=False, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # without PYTHONPATH: a checkout on it (a developer's worktree) reads to pip as vcwave already installed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = _sh([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--disable-pip-version-check",
             "--no-compile", str(wheel)], tmp, env)
    assert r.returncode == 0, ("installing the wheel and its dependencies failed (needs pip's cache or the "
                               f"index):\n{r.stderr[-3000:]}")
    return env_dir


def _clean_env(home: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": os.environ.get("LANG", "C.UTF-8")}


@pytest.mark.parametrize("argv", [["--help"], ["plan", "--help"], ["upgrade", "--help"]])
def test_help_from_anywhere(installed, tmp_path, argv):
    r = _sh([str(installed / "bin" / "vcwave"), *argv], tmp_path, _clean_env(tmp_path), 60)
    assert r.returncode == 0, r.stderr
    assert "Usage: vcwave" in r.stdout


def test_plan_from_anywhere(installed, tmp_path):
    site = tmp_path / "inventories" / "site.yml"
    site.parent.mkdir()
    shutil.copy(ROOT / "examples" / "two-site.yml", site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    r = _sh([str(installed / "bin" / "vcwave"), "plan", "--inventory", str(site), "--target", "6.7 U3"], work,
            _clean_env(tmp_path), 60)
    assert r.returncode == 0, r.stderr
    assert "playbook default.yml" in r.stdout and "expected mixed-version window" in r.stdout
    assert (work / ".vcwave" / "plan.json").is_file()
    # the installed package, not the checkout, answered
    r = _sh([str(installed / "bin" / "python"), "-c", "import orchestrator; print(orchestrator.__file__)"], work,
            _clean_env(tmp_path), 60)
    assert str(installed) in r.stdout and str(ROOT) not in r.stdout


def test_parse_error_exits_2_when_installed(installed, tmp_path):
    r = _sh([str(installed / "bin" / "vcwave"), "plan", "--target", "6.7 U3"], tmp_path, _clean_env(tmp_path), 60)
    assert r.returncode == 2 and "'plan' needs --inventory" in r.stderr

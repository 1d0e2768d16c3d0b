"""Fixtures for the client tests: the lab's REST twin (in process), vcsim processes, tiny retry waits.

vcsim comes from `lab.vcsim` (ensure_vcsim_binary / VcsimSpec / VcsimProcess). In CI (CI=true) a missing
vcsim is a FAILURE, never a skip.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import require_vcsim

from orchestrator.clients import retry

ROOT = Path(__file__).resolve().parents[2]
TWO_SITE = ROOT / "examples" / "two-site.yml"
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True)
def tiny_retries() -> Iterator[None]:
    old = retry.set_default_policy(attempts=5, initial_wait=0.001, max_wait=0.01, deadline=20.0)
    yield
    retry.set_default_policy(old)


def _unavailable(reason: str) -> None:
    require_vcsim()  # fails in CI, skips elsewhere, with the builder's own reason
    pytest.skip(f"vcsim unavailable: {reason}")


# -- vcsim --------------------------------------------------------------------------------------------------
@dataclass
class Vcsim:
    url: str
    port: int
    pid: int
    user: str
    password: str
    _stop: Any = None
    proc: Any = None  # the lab.vcsim.VcsimProcess (restart: a new version on the same port)

    def stop(self) -> None:
        if self._stop:
            self._stop()
            self._stop = None


@pytest.fixture(scope="session")
def vcsim_factory() -> Iterator[Any]:
    """start(vms=4, appliance_vms=(), psc_host="psc-a.example:443") -> Vcsim; all stopped at session end."""
    started: list[Vcsim] = []
    try:
        from lab import vcsim as labvcsim
        binary = Path(labvcsim.ensure_vcsim_binary())
    except Exception as exc:  # noqa: BLE001 - ImportError, VcsimUnavailable, a build failure
        _unavailable(f"{type(exc).__name__}: {exc}")

    def start(*, vms: int = 4, appliance_vms: tuple[str, ...] = (), psc_host: str = "psc-a.example:443",
              version: str = "6.7.0", build: str = "10244745", user: str = "administrator@vsphere.local",
              password: str = "Vc-Sim-Pa55!word") -> Vcsim:
        spec = labvcsim.VcsimSpec(name=f"t{len(started)}", version=version, build=int(build), api_version="6.7.1",
                                  full_name=f"VMware vCenter Server {version} build-{build}",
                                  instance_uuid="11111111-2222-3333-4444-555555555555", psc_host=psc_host,
                                  user=user, password=password, vms=vms, appliance_vms=tuple(appliance_vms))
        proc = labvcsim.VcsimProcess(spec, binary).start()
        v = Vcsim(proc.url, int(proc.port), int(proc.pid), user, password, proc.stop, proc)
        started.append(v)
        return v

    yield start
    for v in started:
        v.stop()


@pytest.fixture(scope="session")
def vcsim(vcsim_factory) -> Vcsim:
    return vcsim_factory(vms=4, appliance_vms=("psc-a", "vc-a"))


# -- the REST twin ------------------------------------------------------------------------------------------
@dataclass
class RestLab:
    lab: Any
    dir: Path
    passwords: dict[str, str] = field(default_factory=dict)

    def url(self, node: str) -> str:
        return self.lab.servers[node].url

    @property
    def sso_user(self) -> str:
        return self.lab.state.data["sso_user"]

    def client(self, node: str, **kw: Any):
        from orchestrator.clients.appliance import ApplianceClient
        kw.setdefault("verify", str(self.lab.tls.ca))  # the twin serves https signed by the lab CA
        return ApplianceClient(self.url(node), self.sso_user, self.passwords["sso"], node=node, **kw)

    def faults(self, *faults: dict, seed: int = 0) -> None:
        self.lab.state.faults.load({"seed": seed, "faults": list(faults)})

    def expire(self, node: str) -> None:
        self.lab.servers[node].expire_sessions()


def _start_rest_lab(inv: Path, d: Path) -> RestLab:
    from lab.daemon import Lab
    lab = Lab(inv, d, time_scale=1e-4, use_vcsim=False).start()
    pw = {name: (d / "secrets" / name).read_text().strip() for name in ("sso", "root", "backup")
          if (d / "secrets" / name).exists()}
    return RestLab(lab, d, pw)


@pytest.fixture(scope="module")
def rest_lab() -> Iterator[RestLab]:
    d = Path(tempfile.mkdtemp(prefix="vcwave-clients-lab-"))
    rl = _start_rest_lab(TWO_SITE, d)
    yield rl
    rl.lab.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fresh_lab(tmp_path) -> Iterator[RestLab]:
    rl = _start_rest_lab(TWO_SITE, tmp_path / "lab")
    yield rl
    rl.lab.stop()


@pytest.fixture
def lab60(tmp_path) -> Iterator[RestLab]:
    rl = _start_rest_lab(ROOT / "examples" / "two-site-6.0.yml", tmp_path / "lab60")
    yield rl
    rl.lab.stop()

"""Fixtures for the lab: the vcsim binary, labs started in tmp dirs (always stopped), a plain REST client.

REST-twin tests use labs without vcsim (`use_vcsim=False`): the twin does not need vim25 and they stay fast
and independent of the Go toolchain. Daemon tests use full labs and need the vcsim binary: when it cannot
be built the test FAILS in CI (CI=true) and is skipped elsewhere, with the reason.
"""
from __future__ import annotations

import base64
import http.client
import json
import ssl
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lab.daemon import Lab
from orchestrator.clients.keepalive import dropped

ROOT = Path(__file__).resolve().parents[2]
TWO_SITE = ROOT / "examples" / "two-site.yml"
TINY = 1e-4


def inventory(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / f"{name}.yml"
    p.write_text(textwrap.dedent(text))
    return p


def domain_yaml(version: str, vc_version: str | None = None, *, sites: int = 2, psc_per_site: int = 1,
                vc_per_site: int = 1, extra: str = "") -> str:
    """A small external-PSC domain: sites s1..sN, PSCs pN-i, vCenters vN-i (vCenter i -> PSC of its site)."""
    vc_version = vc_version or version
    lines = [
        "domain: vsphere.local",
        "credentials:",
        "  sso: {user: administrator@vsphere.local, password_env: LAB_SSO}",
        "  root: {user: root, password_env: LAB_ROOT}",
        "  backup: {user: backup, password_env: LAB_BACKUP}",
        "sites: [" + ", ".join(f"s{i}" for i in range(1, sites + 1)) + "]",
        "management:",
        "  - {name: mgmt, host: 127.0.0.1, port: 9, scheme: http, credentials: sso}",
        "nodes:",
    ]
    for s in range(1, sites + 1):
        for i in range(1, psc_per_site + 1):
            n = f"p{s}-{i}"
            lines.append(f"  - {{name: {n}, role: psc, site: s{s}, host: {n}.example, version: '{version}', "
                         f"vm: {{vcenter: mgmt, name: {n}}}}}")
        for i in range(1, vc_per_site + 1):
            n = f"v{s}-{i}"
            lines.append(f"  - {{name: {n}, role: vcenter, site: s{s}, host: {n}.example, version: '{vc_version}', "
                         f"psc: p{s}-1, vm: {{vcenter: mgmt, name: {n}}}}}")
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
def make_lab(tmp_path):
    """Factory: make_lab(inventory=TWO_SITE, vcsim=False, **Lab kwargs) -> started Lab; all stopped at teardown."""
    labs: list[Lab] = []

    def _make(inv: Path | str = TWO_SITE, *, vcsim: bool = False, lab_dir: Path | None = None,
              time_scale: float = TINY, **kw: Any) -> Lab:
        d = lab_dir or tmp_path / f"lab{len(labs)}"
        lab = Lab(inv, d, time_scale=time_scale, use_vcsim=vcsim, **kw)
        labs.append(lab)
        return lab.start()

    yield _make
    for lab in labs:
        lab.stop()


@pytest.fixture
def lab(make_lab):
    """The two-site example (6.7 U1), REST twin only."""
    return make_lab()


class Rest:
    """Plain http.client calls against one node (no product client code), over one kept connection.

    Why kept: a TLS handshake costs ~3.5 ms of CPU (client and twin, OpenSSL 3.0) against ~0.7 ms for a request
    on an open connection, and these tests make ~850 calls. A connection the twin closed meanwhile (a reboot,
    a stop) is noticed before the next request (its socket reads as closed: the product's check,
    clients/keepalive.dropped) and replaced; a connection a request failed on is dropped, so the failure (a
    reset fault) is the caller's and the next call starts afresh."""

    def __init__(self, url: str, lab: Lab | None = None) -> None:
        u = urlsplit(url)
        self.host, self.port, self.scheme = u.hostname, u.port, u.scheme
        self.sid: str | None = None
        self.lab = lab
        self._tls: ssl.SSLContext | None = None
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is not None and (self._conn.sock is None or not dropped(self._conn.sock)):
            return self._conn
        self.close()
        if self.scheme == "https":  # the twins serve https signed by the lab CA: verified, like vcwave does
            if self._tls is None:  # one context per client (loading the CA each call cost ~1 ms of CPU)
                self._tls = self.lab.tls.client_context()
            self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=10, context=self._tls)
        else:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def call(self, method: str, path: str, body: Any = None, auth: tuple[str, str] | None = None,
             sid: str | None = None, headers: dict | None = None) -> tuple[int, Any]:
        conn = self._connection()
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if auth:
            h["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        s = sid if sid is not None else self.sid
        if s:
            h["vmware-api-session-id"] = s
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            raw = r.read()
        except BaseException:
            self.close()
            raise
        ctype = r.getheader("Content-Type") or ""
        return r.status, (json.loads(raw) if raw and "json" in ctype else raw.decode())

    def login(self, user: str | None = None, password: str | None = None) -> str:
        user = user or self.lab.state.data["sso_user"]
        password = password or self.lab.state.data["sso_password"]
        st, body = self.call("POST", "/rest/com/vmware/cis/session", auth=(user, password))
        assert st == 200, body
        self.sid = body["value"]
        return self.sid

    def get(self, path: str) -> Any:
        st, body = self.call("GET", path)
        assert st == 200, (path, st, body)
        return body["value"]

    def post(self, path: str, body: Any = None) -> Any:
        st, out = self.call("POST", path, body)
        assert st == 200, (path, st, out)
        return out["value"] if isinstance(out, dict) else out


class Control:
    def __init__(self, url: str) -> None:
        self.rest = Rest(url)

    def get(self, path: str) -> tuple[int, Any]:
        return self.rest.call("GET", path)

    def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        return self.rest.call("POST", path, body if body is not None else {})


@pytest.fixture
def rest_of():
    def _rest(lab: Lab, node: str, login: bool = True) -> Rest:
        r = Rest(lab.servers[node].url, lab)
        if login:
            r.login()
        return r
    return _rest


@pytest.fixture
def control_of():
    return lambda lab: Control(lab.control.url)


@pytest.fixture
def labkit():
    """Helpers for the lab tests (tests/ has no packages, so they come as a fixture, not an import)."""
    import types
    return types.SimpleNamespace(Rest=Rest, Control=Control, domain_yaml=domain_yaml, inventory=inventory,
                                 TWO_SITE=TWO_SITE)

"""TLS: verification on by default; a CA bundle or a pinned SHA-256 thumbprint; insecure only when asked, logged."""
from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from orchestrator.clients import tls
from orchestrator.clients.appliance import ApplianceClient
from orchestrator.clients.retry import TlsError
from orchestrator.clients.vsphere import VSphereClient

from ._servers import Script, ScriptServer, der_of, self_signed


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https(cert):
    with ScriptServer(Script(), tls_files=cert) as srv:
        yield srv


def _client(srv, **kw):
    return ApplianceClient(srv.url, "administrator@vsphere.local", srv.script.password, node="t", **kw)


def test_self_signed_refused_by_default(https):
    with pytest.raises(TlsError, match="verification failed"):
        _client(https).version()
    assert https.script.calls == []  # nothing, not even the login, was sent


def test_ca_bundle_accepted(https, cert):
    assert _client(https, verify=str(cert[0])).version().build == "10244745"


def test_pinned_thumbprint_accepted(https, cert):
    pin = tls.sha256_thumbprint(der_of(cert[0]))
    assert tls.peer_thumbprint("127.0.0.1", https.port) == pin
    with capture_logs() as logs:
        assert _client(https, thumbprint=pin).version().version == "6.7.0.20000"
    assert not [e for e in logs if e["event"] == "tls.verification_disabled"]
    assert _client(https, thumbprint=pin.replace(":", "").lower()).health().ok


def test_wrong_thumbprint_refused_before_any_request(https):
    with pytest.raises(TlsError, match="does not match the pinned"):
        _client(https, thumbprint="AB" * 32).version()
    assert https.script.calls == []


def test_insecure_only_when_explicit_and_logged(https):
    with capture_logs() as logs:
        c = _client(https, verify=False)
        assert c.version().build == "10244745"
    ev = [e for e in logs if e["event"] == "tls.verification_disabled"]
    assert len(ev) == 1 and ev[0]["log_level"] == "warning" and ev[0]["node"] == "t"


def test_plain_http_refused_for_non_loopback():
    with pytest.raises(TlsError, match="plain http refused"):
        ApplianceClient("http://vc-a.corp.example", "u", "password1")
    with pytest.raises(TlsError, match="plain http refused"):
        VSphereClient("vc-a.corp.example", 80, "u", "password1", scheme="http")
    ApplianceClient("http://127.0.0.1:1", "u", "password1")  # the lab: fine


def test_bad_thumbprint_format():
    with pytest.raises(TlsError, match="SHA-256"):
        tls.normalize_thumbprint("12:34")


def test_vsphere_self_signed_refused_by_default(https):
    c = VSphereClient("127.0.0.1", https.port, "u", "password1", node="t")
    with pytest.raises(TlsError):
        c.connect()


def test_vsphere_insecure_logged(https):
    c = VSphereClient("127.0.0.1", https.port, "u", "password1", node="t", verify=False)
    with capture_logs() as logs:
        with pytest.raises(Exception) as ei:  # the TLS passes; the server is not a VIM server
            c.connect()
    assert not isinstance(ei.value, TlsError)
    assert [e for e in logs if e["event"] == "tls.verification_disabled"][0]["client"] == "vsphere"


def test_vsphere_pinned_thumbprint_passes_tls(https, cert):
    pin = tls.sha256_thumbprint(der_of(cert[0]))
    c = VSphereClient("127.0.0.1", https.port, "u", "password1", node="t", thumbprint=pin)
    with pytest.raises(Exception) as ei:
        c.connect()
    assert not isinstance(ei.value, TlsError), ei.value
    assert https.script.calls, "the pin matched: pyVmomi's requests reached the server"


def test_vsphere_wrong_pin_sends_no_byte_of_the_login(https):
    """pyVmomi's own `thumbprint` is only checked after normal verification fails; vcwave's context checks the
    pin inside the handshake, so neither `vimServiceVersions.xml` nor the `Login` with the password is sent."""
    c = VSphereClient("127.0.0.1", https.port, "u", https.script.password, node="t", thumbprint="AB" * 32)
    with pytest.raises(TlsError, match="does not match the pinned"):
        c.connect()
    assert https.script.calls == []


def test_pinned_context_refuses_before_http_client_sends(https):
    """The one mechanism both clients use: a plain http.client request through the pinned context."""
    import http.client
    conn = http.client.HTTPSConnection("127.0.0.1", https.port, context=tls.pinned_context("CD" * 32, node="t"))
    with pytest.raises(TlsError, match="does not match the pinned"):
        conn.request("POST", "/rest/com/vmware/cis/session", headers={"Authorization": "Basic eDp5"})
    assert https.script.calls == []

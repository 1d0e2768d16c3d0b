"""Every VSphereClient call live against vcsim; round trips of the fingerprint are constant in the VM count."""
from __future__ import annotations

import http.client

import pytest
from structlog.testing import capture_logs

from orchestrator.clients import retry
from orchestrator.clients.retry import NotFound, Unauthorized
from orchestrator.clients.vsphere import About, InventoryFingerprint, PscPointer, VSphereClient
from orchestrator.core.inventory import load_inventory
from orchestrator.facts.compare import compare_declared

from .conftest import ROOT


def connect(v, **kw) -> VSphereClient:
    return VSphereClient("127.0.0.1", v.port, v.user, v.password, scheme="http", node="vc-a", **kw).connect()


def test_about_and_sso_psc(vcsim):
    c = connect(vcsim)
    a = c.about()
    assert isinstance(a, About) and a.version == "6.7.0" and a.build == "10244745" and a.full_name
    p = c.sso_psc()
    assert isinstance(p, PscPointer) and p.host == "psc-a.example" and "sso-adminserver" in p.admin_uri
    assert "/sts/" in p.sts_uri
    c.disconnect()


def test_a_connect_and_the_calls_after_it_share_one_connection(vcsim, monkeypatch):
    """The version document's connection carries the login and the calls after it (pyVmomi's pool): one
    connection, not one for the document and another for the SOAP calls."""
    opened = []
    real = http.client.socket.create_connection

    def counted(*args, **kw):
        opened.append(args[0])
        return real(*args, **kw)

    monkeypatch.setattr(http.client.socket, "create_connection", counted)
    c = connect(vcsim)
    assert c.about().build and c.sso_psc() is not None and c.round_trips >= 1
    assert opened == [("127.0.0.1", vcsim.port)]
    c.disconnect()


def test_a_kept_client_reports_the_vcenter_as_it_answers_after_a_restart(vcsim_factory):
    """A client is kept across a command's looks and steps: after the vCenter restarted as another version
    and instance (an upgrade, a revert), `about` says what answers now, not what the login read before."""
    from dataclasses import replace
    v = vcsim_factory()
    c = connect(v)
    assert c.about().version == "6.7.0"
    v.proc.restart(replace(v.proc.spec, version="7.0.0", build=15952498,
                           instance_uuid="99999999-2222-3333-4444-555555555555"))
    a = c.about()
    assert (a.version, a.build, a.instance_uuid) == ("7.0.0", "15952498", "99999999-2222-3333-4444-555555555555")
    c.disconnect()


def test_disconnect_is_one_logout(vcsim):
    """The session ends with one call (pyVim's Disconnect read the whole service content first)."""
    c = connect(vcsim)
    stub, before = c._si._stub, c.round_trips
    cookie = stub.cookie
    c.disconnect()
    assert c.round_trips - before == 1
    other = connect(vcsim)  # the old session id is no longer valid on the server
    other._si._stub.cookie = cookie
    with pytest.raises(Exception, match="NotAuthenticated|not authenticated|session"):
        other._si.RetrieveContent().sessionManager.currentSession.key
    other.disconnect()


def test_bad_password_unauthorized(vcsim):
    with pytest.raises(Unauthorized):
        VSphereClient("127.0.0.1", vcsim.port, vcsim.user, "Wrong-pw-1!", scheme="http").connect()


def test_fingerprint(vcsim):
    c = connect(vcsim)
    fp = c.fingerprint()
    assert isinstance(fp, InventoryFingerprint)
    assert fp.count("hosts") == len(fp.hosts) >= 1 and fp.count("vms") == len(fp.vms) >= 4
    assert all(m.startswith("vm-") for m in fp.vms) and fp.datastores
    assert ("psc-a" in dict(fp.names).values()) and c.fingerprint() == fp


def test_fingerprint_round_trips_constant(vcsim_factory):
    trips = {}
    for n in (10, 1000):
        v = vcsim_factory(vms=n)
        c = connect(v)
        before = c.round_trips
        fp = c.fingerprint()
        trips[n] = c.round_trips - before
        assert fp.count("vms") >= n
        c.disconnect()
        v.stop()
    print(f"fingerprint round trips: 10 VMs -> {trips[10]}, 1000 VMs -> {trips[1000]}")
    assert trips[10] == trips[1000] <= 4


def test_snapshots_power(vcsim):
    c = connect(vcsim)
    vm = c.vm_by_name("vc-a")
    assert c.vm_power_states(["vc-a", "psc-a"]) == {"vc-a": "poweredOn", "psc-a": "poweredOn"}
    moref = c.create_snapshot(vm, "vcwave-pre", "before the domain upgrade")
    assert moref.startswith("snapshot-")
    assert [s.name for s in c.snapshots(vm)] == ["vcwave-pre"]
    c.power_off(vm)
    c.power_off("vc-a")  # idempotent
    assert c.vm_power_states(["vc-a"]) == {"vc-a": "poweredOff"}
    c.revert_snapshot(vm, "vcwave-pre")
    c.power_on("vc-a")
    assert c.vm_power_states(["vc-a"]) == {"vc-a": "poweredOn"}
    with pytest.raises(NotFound):
        c.revert_snapshot(vm, "nope")
    c.remove_snapshot(vm, "vcwave-pre")
    assert c.snapshots(vm) == ()
    with pytest.raises(NotFound):
        c.vm_by_name("no-such-vm")


def test_wait_task_uses_waitforupdatesex(vcsim):
    c = connect(vcsim)
    vm = c.vm_by_name("psc-a")
    before = c.round_trips
    c.create_snapshot(vm, "t", "")
    # CreateSnapshot + CreatePropertyCollector + CreateFilter + WaitForUpdatesEx (1-2) + Destroy
    assert c.round_trips - before <= 7
    c.remove_snapshot(vm, "t")


def test_session_expired_relogin(vcsim):
    retry.RETRIES.reset()
    c = connect(vcsim)
    c.content.sessionManager.Logout()
    with capture_logs() as logs:
        assert c.sso_psc().host == "psc-a.example"
    assert retry.RETRIES.relogins == 1
    assert any(e["event"] == "client.relogin" for e in logs)


def test_compare_declared_live(vcsim):
    inv = load_inventory(ROOT / "examples" / "two-site.yml")
    c = connect(vcsim)
    hosts = {"psc-a": "psc-a.example", "psc-b": "psc-b.example"}
    node = inv.node("vc-a")
    assert compare_declared(node, c.about(), c.sso_psc(), hosts) == []
    mism = compare_declared(inv.node("vc-b"), c.about(), c.sso_psc(), hosts)
    assert [(m.field, m.actual) for m in mism] == [("psc", "psc-a.example")]
    assert "psc-b" in mism[0].declared

"""vcwave-vcsim (lab/vcsim/main.go) through lab/vcsim.py and lab/mgmt.py, against real processes."""

from __future__ import annotations

import ssl
import time
import urllib.request
import uuid

import pytest
from pyVmomi import vim, vmodl

from lab import mgmt
from lab.tlsca import ensure_lab_tls
from lab.vcsim import VcsimProcess, VcsimSpec, VcsimUnavailable, ensure_vcsim_binary
from lab.warm_relay import alive
from orchestrator.clients.retry import TlsError
from orchestrator.clients.vsphere import VSphereClient
from orchestrator.core.thumbprint import sha256_thumbprint

USER = "administrator@vsphere.local"
PASSWORD = "Lab-Secret-1!"
UUID_A = "6c1f7c36-0a45-4f5b-9a5e-0d4c2a7b1e01"


def make_spec(**overrides) -> VcsimSpec:
    base = dict(
        name="vc-a", version="6.7.0", build=14367737, api_version="6.7.3",
        full_name="VMware vCenter Server 6.7.0 build-14367737", instance_uuid=UUID_A,
        psc_host="psc-a.corp.example", user=USER, password=PASSWORD,
    )
    base.update(overrides)
    return VcsimSpec(**base)


@pytest.fixture
def start(vcsim_binary, tmp_path):
    procs: list[VcsimProcess] = []

    def _start(spec: VcsimSpec, port: int = 0) -> VcsimProcess:
        p = VcsimProcess(spec, vcsim_binary, log_path=tmp_path / f"{spec.name}-{len(procs)}.log", port=port)
        procs.append(p)
        return p.start()

    yield _start
    for p in procs:
        p.stop()


def inventory_ids(si) -> dict[str, str]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.VirtualMachine, vim.HostSystem, vim.Datastore], True
    )
    try:
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(
                obj=view, skip=True,
                selectSet=[vmodl.query.PropertyCollector.TraversalSpec(
                    name="v", path="view", skip=False, type=vim.view.ContainerView)],
            )],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=t, pathSet=["name"])
                     for t in (vim.VirtualMachine, vim.HostSystem, vim.Datastore)],
        )
        return {f"{oc.obj._wsdlName}:{oc.propSet[0].val}": oc.obj._moId
                for oc in content.propertyCollector.RetrieveContents([spec])}
    finally:
        view.Destroy()


def test_about_and_sso_settings(start):
    p = start(make_spec())
    assert p.url == f"http://127.0.0.1:{p.port}/sdk"
    si = mgmt.connect(p.url, USER, PASSWORD)
    about = si.content.about
    assert (about.version, about.build, about.apiVersion) == ("6.7.0", "14367737", "6.7.3")
    assert about.instanceUuid == UUID_A
    assert about.fullName == "VMware vCenter Server 6.7.0 build-14367737"
    settings = {o.key: o.value for o in si.content.setting.setting}
    assert settings["config.vpxd.sso.admin.uri"] == "https://psc-a.corp.example/sso-adminserver/sdk/vsphere.local"
    assert settings["config.vpxd.sso.sts.uri"] == "https://psc-a.corp.example/sts/STSService/vsphere.local"
    assert settings["config.vpxd.sso.groupcheck.uri"] == "https://psc-a.corp.example/sso-adminserver/sdk/vsphere.local"
    mgmt.disconnect(si)


def test_password_not_in_argv_and_wrong_password_fails(start):
    p = start(make_spec())
    with open(f"/proc/{p.pid}/cmdline", "rb") as f:
        assert PASSWORD.encode() not in f.read()
    with pytest.raises(vim.fault.InvalidLogin):
        mgmt.connect(p.url, USER, "wrong")
    with pytest.raises(vim.fault.InvalidLogin):
        mgmt.connect(p.url, "someone@else", PASSWORD)
    mgmt.disconnect(mgmt.connect(p.url, USER, PASSWORD))


def test_morefs_stable_across_starts_and_shifted_by_salt(start):
    flags = dict(vms=10, appliance_vms=("psc-a", "vc-a"))
    ids = []
    for spec in (make_spec(**flags), make_spec(**flags), make_spec(moref_salt=1, **flags)):
        p = start(spec)
        si = mgmt.connect(p.url, USER, PASSWORD)
        ids.append(inventory_ids(si))
        mgmt.disconnect(si)
        p.stop()
    first, again, rebuilt = ids
    assert len(first) == 4 + 1 + 12  # hosts, datastore, 10 VMs + 2 appliances
    assert first == again
    assert first.keys() == rebuilt.keys()
    for key in first:
        assert first[key] != rebuilt[key], key


def test_restart_keeps_port_and_uuid_changes_version(start):
    p = start(make_spec())
    port, old_pid = p.port, p.pid
    si = mgmt.connect(p.url, USER, PASSWORD)
    before = inventory_ids(si)
    p.restart(make_spec(version="7.0.3", build=21477706, api_version="7.0.3.0",
                        full_name="VMware vCenter Server 7.0.3 build-21477706"))
    assert p.port == port and p.pid != old_pid
    assert not alive(old_pid)
    si = mgmt.connect(p.url, USER, PASSWORD)
    about = si.content.about
    assert (about.version, about.build, about.instanceUuid) == ("7.0.3", "21477706", UUID_A)
    assert inventory_ids(si) == before
    mgmt.disconnect(si)


@pytest.mark.full  # a scale check; default: the smaller vcsim tests (TIERS.md)
def test_thousand_vms(start):
    p = start(make_spec(name="big", vms=1000))
    si = mgmt.connect(p.url, USER, PASSWORD)
    states = mgmt.vm_power_states(si)
    assert len(states) >= 1000
    assert set(states.values()) == {"poweredOn"}
    mgmt.disconnect(si)


def test_mgmt_operations_and_snapshots(start):
    p = start(make_spec(name="mgmt", instance_uuid=str(uuid.uuid4()), psc_host=None,
                        appliance_vms=("psc-a", "vc-a", "vc-b")))
    si = mgmt.connect(p.url, USER, PASSWORD)
    states = mgmt.vm_power_states(si)
    assert {states[n] for n in ("psc-a", "vc-a", "vc-b")} == {"poweredOn"}
    assert mgmt.find_vm(si, "nope") is None

    vm = mgmt.find_vm(si, "psc-a")
    assert isinstance(vm, vim.VirtualMachine) and vm.name == "psc-a"
    snap = mgmt.wait_task(si, vm.CreateSnapshot_Task(name="pre-upgrade", description="", memory=False, quiesce=False))
    assert vm.snapshot.currentSnapshot == snap
    mgmt.wait_task(si, snap.RevertToSnapshot_Task())
    mgmt.wait_task(si, snap.RemoveSnapshot_Task(removeChildren=False))
    assert vm.snapshot is None or not vm.snapshot.rootSnapshotList

    mgmt.power_off(si, "vc-a")
    mgmt.power_off(si, "vc-a")  # idempotent
    assert mgmt.vm_power_states(si)["vc-a"] == "poweredOff"
    mgmt.power_on(si, "vc-a")
    assert mgmt.vm_power_states(si)["vc-a"] == "poweredOn"
    with pytest.raises(LookupError):
        mgmt.power_on(si, "nope")

    new = mgmt.create_vm(si, "vc-a-new", like="vc-a")
    like = mgmt.find_vm(si, "vc-a")
    assert new.parent == like.parent and new.resourcePool == like.resourcePool
    assert mgmt.vm_power_states(si)["vc-a-new"] == "poweredOn"
    with pytest.raises(FileExistsError):
        mgmt.create_vm(si, "vc-a-new", like="vc-a")
    plain = mgmt.create_vm(si, "scratch", power_on=False)
    assert plain.runtime.powerState == "poweredOff"
    assert mgmt.destroy_vm(si, "vc-a-new") is True
    assert mgmt.destroy_vm(si, "vc-a-new") is False
    assert "vc-a-new" not in mgmt.vm_power_states(si)

    with pytest.raises(mgmt.TaskFailed):  # powering on a running VM is an error task in vcsim
        mgmt.wait_task(si, mgmt.find_vm(si, "vc-b").PowerOnVM_Task())
    mgmt.disconnect(si)


def test_stop_is_idempotent_and_process_is_gone(start):
    p = start(make_spec())
    pid, url = p.pid, p.url
    p.stop()
    p.stop()
    assert not alive(pid)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/vimServiceVersions.xml", timeout=2)


def test_binary_is_cached(vcsim_binary):
    t0 = time.monotonic()
    assert ensure_vcsim_binary() == vcsim_binary
    assert time.monotonic() - t0 < 1.0


def test_missing_govmomi_names_the_packages(monkeypatch, tmp_path):
    import lab.vcsim as vcsim_mod

    monkeypatch.setattr(vcsim_mod, "DEFAULT_GOPATHS", (tmp_path / "nowhere",))
    monkeypatch.delenv("VCWAVE_GOVMOMI_GOPATH", raising=False)
    monkeypatch.delenv("GOPATH", raising=False)
    monkeypatch.setattr(vcsim_mod, "_find_go", lambda: "/usr/bin/go")
    with pytest.raises(VcsimUnavailable, match="apt-get install golang-go golang-github-vmware-govmomi-dev"):
        ensure_vcsim_binary(tmp_path / "cache")


def test_https_with_the_lab_ca_verified_and_a_wrong_pin_refused_before_login(start, tmp_path):
    """vcsim serves https with the lab CA's certificate: vcwave's vSphere client verifies it with the CA
    bundle (as the lab inventory says) or with the right pin; a wrong pin stops before `Login`."""
    tls = ensure_lab_tls(tmp_path / "tls")
    p = start(make_spec(tls=tls))
    assert p.url == f"https://127.0.0.1:{p.port}/sdk"
    c = VSphereClient("127.0.0.1", p.port, USER, PASSWORD, node="vc-a", verify=str(tls.ca)).connect()
    assert c.about().build == "14367737"
    c.disconnect()
    with pytest.raises(TlsError, match="verification failed"):  # the system store does not know the lab CA
        VSphereClient("127.0.0.1", p.port, USER, PASSWORD, node="vc-a").connect()
    pin = sha256_thumbprint(ssl.PEM_cert_to_DER_cert(tls.cert.read_text()))
    VSphereClient("127.0.0.1", p.port, USER, PASSWORD, node="vc-a", thumbprint=pin).connect().disconnect()
    with pytest.raises(TlsError, match="does not match the pinned"):  # (no Login: tests/clients/test_tls.py)
        VSphereClient("127.0.0.1", p.port, USER, PASSWORD, node="vc-a", thumbprint="EF" * 32).connect()

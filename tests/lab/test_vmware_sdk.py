"""VMware's own Python SDK (PyPI `vmware-vcenter` + `vmware-vapi-runtime`) drives the appliance twin: it logs
in and calls every appliance endpoint vcwave uses (version, health, update, backup job), and its bindings
check every answer against VMware's types — a missing required field (`name`, `knowledge_base`) or a wrong
path (`health/softwarepackages`) fails here, where vcwave's own client, written by us, could not tell.

The SDK speaks the vAPI REST format of the `/rest` endpoint: `{"value": ...}` answers, the session header,
paths relative to `/rest` (its session service is pointed at `/rest/com/vmware/cis`, the documented
session path). The 9.x bindings no longer ship `appliance.vmon` (vcwave's `GET /rest/appliance/vmon/service`,
still documented for 8.0: developer.broadcom.com/xapis/vsphere-automation-api/v8.0u1/appliance/vmon). They
bind the same vMon services as `com.vmware.vcenter.services_client.Service` (`GET /rest/vcenter/services`,
"added in vSphere API 6.7", the same `Info`: name_key, description_key, startup_type, health, state); the
twin serves both paths from one handler, so the SDK's type check of that `Info` covers vcwave's vmon call.
(`com.vmware.appliance_client.Services`, `/appliance/services`, is another list: the appliance's OS services,
not vMon's, with a different `Info`.)
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from orchestrator.clients.appliance import ApplianceClient

# Every test here runs as one xdist group: the SDK below is imported by the one worker that runs them.
pytestmark = pytest.mark.xdist_group("vmware_sdk")

# vcwave's health items, as the SDK's classes name them (the SDK builds the documented paths from these).
HEALTH = {"system": "System", "load": "Load", "mem": "Mem", "storage": "Storage", "swap": "Swap",
          "database-storage": "Databasestorage", "software-packages": "Softwarepackages"}


@pytest.fixture(scope="module")
def sdk() -> SimpleNamespace:
    """VMware's SDK, imported when these tests run rather than when the suite is collected: its bindings,
    requests and pyOpenSSL cost ~0.3 s of CPU per import, and every xdist worker collects every module."""
    import requests
    from com.vmware.appliance import health_client, update_client
    from com.vmware.appliance.recovery.backup_client import Job
    from com.vmware.appliance.system_client import Version
    from com.vmware.appliance_client import Update
    from com.vmware.cis_client import Session
    from com.vmware.vcenter.services_client import Service as VcenterService
    from com.vmware.vapi.std.errors_client import NotFound, Unauthenticated
    from vmware.vapi.lib.connect import get_requests_connector
    from vmware.vapi.security.session import create_session_security_context
    from vmware.vapi.security.user_password import create_user_password_security_context
    from vmware.vapi.stdlib.client.factories import StubConfigurationFactory
    return SimpleNamespace(
        requests=requests, health_client=health_client, update_client=update_client, Job=Job, Version=Version,
        Update=Update, Session=Session, VcenterService=VcenterService, NotFound=NotFound,
        Unauthenticated=Unauthenticated, get_requests_connector=get_requests_connector,
        create_session_security_context=create_session_security_context,
        create_user_password_security_context=create_user_password_security_context,
        StubConfigurationFactory=StubConfigurationFactory)


def _config(sdk: SimpleNamespace, url: str, security_context, ca_bundle: str) -> object:
    session = sdk.requests.Session()
    session.verify = ca_bundle  # the twin serves https signed by the lab CA
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment replaces `verify`
    cfg = sdk.StubConfigurationFactory.new_std_configuration(
        sdk.get_requests_connector(session=session, msg_protocol="rest", url=url))
    cfg.connector.set_security_context(security_context)
    return cfg


def _login(sdk: SimpleNamespace, lab, node: str, password: str | None = None):
    """The SDK's own login (basic auth -> session id), then a stub configuration carrying the session."""
    base = lab.servers[node].url + "/rest"
    creds = sdk.create_user_password_security_context(lab.state.data["sso_user"],
                                                      password or lab.state.data["sso_password"])
    ca = str(lab.tls.ca)
    sid = sdk.Session(_config(sdk, base + "/com/vmware/cis", creds, ca)).create()
    return _config(sdk, base, sdk.create_session_security_context(sid), ca), sid


def test_sdk_logs_in_and_reads_version_and_every_health_item(sdk, lab):
    cfg, sid = _login(sdk, lab, "vc-a")
    assert len(sid) >= 16
    v = sdk.Version(cfg).get()
    assert v.version == "6.7.0.20000" and v.build and v.type.startswith("vCenter Server")
    assert {item: getattr(sdk.health_client, cls)(cfg).get() for item, cls in HEALTH.items()} == \
        {item: "green" for item in HEALTH}
    client = ApplianceClient(lab.servers["vc-a"].url, lab.state.data["sso_user"], lab.state.data["sso_password"],
                             node="vc-a", verify=str(lab.tls.ca))
    assert tuple(name for name, _ in client.health().items) == tuple(k for k in HEALTH if k != "system")


def test_sdk_login_refused_with_a_wrong_password(sdk, lab):
    with pytest.raises(sdk.Unauthenticated):
        _login(sdk, lab, "vc-a", password="Wrong-Pa55word!")


def test_sdk_update_pending_precheck_stage_and_staged(sdk, lab):
    cfg, _ = _login(sdk, lab, "psc-b")
    assert sdk.Update(cfg).get().state == sdk.Update.State.UP_TO_DATE
    pending = sdk.update_client.Pending(cfg).list(sdk.update_client.Pending.SourceType.LOCAL_AND_ONLINE)
    assert pending and all(p.name and p.version for p in pending)
    target = pending[0].version
    info = sdk.update_client.Pending(cfg).get(target)
    assert info.name == pending[0].name and info.knowledge_base.startswith("https://") and not info.staged
    pre = sdk.update_client.Pending(cfg).precheck(target)
    assert pre.issues.errors == [] and [q.data_item for q in pre.questions] == ["vmdir.password"]
    with pytest.raises(sdk.NotFound):
        sdk.update_client.Staged(cfg).get()
    sdk.update_client.Pending(cfg).stage(target)
    deadline = time.monotonic() + 30
    while sdk.Update(cfg).get().state == sdk.Update.State.STAGE_IN_PROGRESS and time.monotonic() < deadline:
        time.sleep(0.02)
    staged = sdk.update_client.Staged(cfg).get()
    assert staged.version == target and staged.staging_complete and staged.name == info.name


def test_sdk_backup_job_create_get_list(sdk, lab):
    cfg, _ = _login(sdk, lab, "vc-a")
    request = sdk.Job.BackupRequest(parts=["common"], location_type=sdk.Job.LocationType.SFTP,
                                    location="sftp://backup.example/vcwave/vc-a", location_user="vcwave-backup",
                                    location_password="Sdk-Bk-Pa55!", comment="vmware sdk")
    job = sdk.Job(cfg).create(request)
    assert job.id in sdk.Job(cfg).list()
    deadline = time.monotonic() + 30
    running = sdk.Job.BackupRestoreProcessState.INPROGRESS
    while sdk.Job(cfg).get(job.id).state == running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sdk.Job(cfg).get(job.id).state == sdk.Job.BackupRestoreProcessState.SUCCEEDED


def test_sdk_lists_the_vmon_services_as_vcwave_reads_them(sdk, lab):
    """vcenter.services (9.x SDK) against the twin: every Info is VMware's type, and vcwave's own vmon call
    reads the same services in the same states (one handler serves both paths)."""
    cfg, _ = _login(sdk, lab, "vc-a")
    listed = sdk.VcenterService(cfg).list_details()
    states = (sdk.VcenterService.State.STARTED, sdk.VcenterService.State.STOPPED)
    assert "vpxd" in listed and all(i.state in states for i in listed.values())
    assert sdk.VcenterService(cfg).get("vpxd").state == sdk.VcenterService.State.STARTED
    client = ApplianceClient(lab.servers["vc-a"].url, lab.state.data["sso_user"], lab.state.data["sso_password"],
                             node="vc-a", verify=str(lab.tls.ca))
    assert {s.name: s.state for s in client.services()} == {k: str(i.state) for k, i in listed.items()}
    with pytest.raises(sdk.NotFound):
        sdk.VcenterService(cfg).get("no-such-service")

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

import pytest
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

from orchestrator.clients.appliance import ApplianceClient

# vcwave's health items, as the SDK's classes name them (the SDK builds the documented paths from these).
HEALTH = {"system": "System", "load": "Load", "mem": "Mem", "storage": "Storage", "swap": "Swap",
          "database-storage": "Databasestorage", "software-packages": "Softwarepackages"}


def _config(url: str, security_context, ca_bundle: str) -> object:
    session = requests.Session()
    session.verify = ca_bundle  # the twin serves https signed by the lab CA
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment replaces `verify`
    cfg = StubConfigurationFactory.new_std_configuration(
        get_requests_connector(session=session, msg_protocol="rest", url=url))
    cfg.connector.set_security_context(security_context)
    return cfg


def _login(lab, node: str, password: str | None = None):
    """The SDK's own login (basic auth -> session id), then a stub configuration carrying the session."""
    base = lab.servers[node].url + "/rest"
    creds = create_user_password_security_context(lab.state.data["sso_user"],
                                                  password or lab.state.data["sso_password"])
    ca = str(lab.tls.ca)
    sid = Session(_config(base + "/com/vmware/cis", creds, ca)).create()
    return _config(base, create_session_security_context(sid), ca), sid


def test_sdk_logs_in_and_reads_version_and_every_health_item(lab):
    cfg, sid = _login(lab, "vc-a")
    assert len(sid) >= 16
    v = Version(cfg).get()
    assert v.version == "6.7.0.20000" and v.build and v.type.startswith("vCenter Server")
    assert {item: getattr(health_client, cls)(cfg).get() for item, cls in HEALTH.items()} == \
        {item: "green" for item in HEALTH}
    client = ApplianceClient(lab.servers["vc-a"].url, lab.state.data["sso_user"], lab.state.data["sso_password"],
                             node="vc-a", verify=str(lab.tls.ca))
    assert tuple(name for name, _ in client.health().items) == tuple(k for k in HEALTH if k != "system")


def test_sdk_login_refused_with_a_wrong_password(lab):
    with pytest.raises(Unauthenticated):
        _login(lab, "vc-a", password="Wrong-Pa55word!")


def test_sdk_update_pending_precheck_stage_and_staged(lab):
    cfg, _ = _login(lab, "psc-b")
    assert Update(cfg).get().state == Update.State.UP_TO_DATE
    pending = update_client.Pending(cfg).list(update_client.Pending.SourceType.LOCAL_AND_ONLINE)
    assert pending and all(p.name and p.version for p in pending)
    target = pending[0].version
    info = update_client.Pending(cfg).get(target)
    assert info.name == pending[0].name and info.knowledge_base.startswith("https://") and not info.staged
    pre = update_client.Pending(cfg).precheck(target)
    assert pre.issues.errors == [] and [q.data_item for q in pre.questions] == ["vmdir.password"]
    with pytest.raises(NotFound):
        update_client.Staged(cfg).get()
    update_client.Pending(cfg).stage(target)
    deadline = time.monotonic() + 30
    while Update(cfg).get().state == Update.State.STAGE_IN_PROGRESS and time.monotonic() < deadline:
        time.sleep(0.02)
    staged = update_client.Staged(cfg).get()
    assert staged.version == target and staged.staging_complete and staged.name == info.name


def test_sdk_backup_job_create_get_list(lab):
    cfg, _ = _login(lab, "vc-a")
    request = Job.BackupRequest(parts=["common"], location_type=Job.LocationType.SFTP,
                                location="sftp://backup.example/vcwave/vc-a", location_user="vcwave-backup",
                                location_password="Sdk-Bk-Pa55!", comment="vmware sdk")
    job = Job(cfg).create(request)
    assert job.id in Job(cfg).list()
    deadline = time.monotonic() + 30
    while Job(cfg).get(job.id).state == Job.BackupRestoreProcessState.INPROGRESS and time.monotonic() < deadline:
        time.sleep(0.02)
    assert Job(cfg).get(job.id).state == Job.BackupRestoreProcessState.SUCCEEDED


def test_sdk_lists_the_vmon_services_as_vcwave_reads_them(lab):
    """vcenter.services (9.x SDK) against the twin: every Info is VMware's type, and vcwave's own vmon call
    reads the same services in the same states (one handler serves both paths)."""
    cfg, _ = _login(lab, "vc-a")
    sdk = VcenterService(cfg).list_details()
    assert "vpxd" in sdk and all(i.state in (VcenterService.State.STARTED, VcenterService.State.STOPPED)
                                 for i in sdk.values())
    assert VcenterService(cfg).get("vpxd").state == VcenterService.State.STARTED
    client = ApplianceClient(lab.servers["vc-a"].url, lab.state.data["sso_user"], lab.state.data["sso_password"],
                             node="vc-a", verify=str(lab.tls.ca))
    assert {s.name: s.state for s in client.services()} == {k: str(i.state) for k, i in sdk.items()}
    with pytest.raises(NotFound):
        VcenterService(cfg).get("no-such-service")

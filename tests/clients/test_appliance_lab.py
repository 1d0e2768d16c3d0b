"""Every ApplianceClient call live against the lab's REST twin, and the lab's fault injection."""
from __future__ import annotations

import textwrap

import pytest
from structlog.testing import capture_logs

from orchestrator.clients import retry
from orchestrator.clients.appliance import (ApplianceVersion, BackupJob, Health, PrecheckResult, UpdateState,
                                            wait_job)
from orchestrator.clients.retry import (BadRequest, DeadlineExceeded, NotFound, ServiceUnavailable,
                                        Unauthorized, Unsupported)

from .conftest import _start_rest_lab

SFTP = dict(location_type="SFTP", location="sftp://backup.example/vcwave/psc-a", location_user="backup")


def test_session_version_health_services(rest_lab):
    c = rest_lab.client("psc-a")
    v = c.version()
    assert isinstance(v, ApplianceVersion) and v.build == "10244745" and v.version.startswith("6.7.0")
    assert c.has_session
    h = c.health()
    assert isinstance(h, Health) and h.ok and h.get("mem") == "green"
    names = [s.name for s in c.services()]
    assert names == sorted(names) and names
    c.logout()
    assert not c.has_session
    assert c.version() == v  # a new session is made on demand


def test_login_refused(rest_lab):
    from orchestrator.clients.appliance import ApplianceClient
    c = ApplianceClient(rest_lab.url("psc-a"), rest_lab.sso_user, "Wrong-password1!", node="psc-a",
                        verify=str(rest_lab.lab.tls.ca))
    with pytest.raises(Unauthorized):
        c.version()


def test_backup_job_lifecycle(rest_lab):
    c = rest_lab.client("psc-a")
    jid = c.backup_start(parts=["common"], location_password=rest_lab.passwords["backup"],
                         backup_password="Backup-Pa55!", comment="vcwave", **SFTP)
    assert jid in c.backup_jobs()
    seen = []
    with capture_logs() as logs:
        job = c.wait_job(lambda: c.backup_job(jid), deadline=30, on_progress=seen.append, what="backup",
                         initial=0.005, cap=0.02)
    assert isinstance(job, BackupJob) and job.succeeded and job.progress == 100 and job.end_time
    assert seen[-1] == job
    prog = [e for e in logs if e["event"] == "job.progress"]
    assert prog and prog[-1]["percent"] == 100 and prog[-1]["node"] == "psc-a" and "elapsed" in prog[-1]


def test_backup_refused_is_bad_request_with_vapi_type(rest_lab):
    c = rest_lab.client("psc-b")
    with pytest.raises(BadRequest) as ei:
        c.backup_start(location_type="NFS", location="nfs://x/y")  # NFS only from 6.7 U2
    assert ei.value.error_type.startswith("com.vmware.vapi.std.errors.") and ei.value.messages


def test_backup_job_not_found(rest_lab):
    with pytest.raises(NotFound):
        rest_lab.client("psc-a").backup_job("20000101-000000-1")


def test_update_precheck_stage_install(fresh_lab):
    c = fresh_lab.client("psc-a")
    st = c.update_state()
    assert isinstance(st, UpdateState) and st.state == "UP_TO_DATE" and st.done
    pending = c.update_pending("LOCAL_AND_ONLINE")
    assert pending and pending[0].version.startswith("6.7.0.")
    target = pending[0].version
    pre = c.update_precheck(target)
    assert isinstance(pre, PrecheckResult) and pre.ok and "vmdir.password" in pre.questions
    assert c.update_staged() is None
    c.update_stage(target)
    st = c.wait_job(c.update_state, deadline=30, what="stage", initial=0.005, cap=0.02)
    assert st.state == "UPDATES_PENDING" and not st.failed
    staged = c.update_staged()
    assert staged and staged.version == target and staged.staging_complete
    assert c.update_validate(target, {"vmdir.password": fresh_lab.passwords["sso"]}) == ()
    c.update_install(target, {"vmdir.password": fresh_lab.passwords["sso"]})
    # the appliance reboots: 503s and a lost session are absorbed by the retries and the wait
    st = c.wait_job(c.update_state, deadline=60, what="install", initial=0.005, cap=0.05)
    assert st.state == "UP_TO_DATE" and not st.failed
    assert c.version().version == target


def test_update_install_wrong_password_refused(fresh_lab):
    c = fresh_lab.client("psc-a")
    target = c.update_pending("LOCAL")[0].version
    with pytest.raises(BadRequest, match="stage it first|vmdir.password"):
        c.update_install(target, {"vmdir.password": "Wrong-pw-1!"})


def test_precheck_refused_by_fault(fresh_lab):
    fresh_lab.faults({"type": "fail_step", "node": "psc-a", "step": "precheck", "message": "disk full"})
    c = fresh_lab.client("psc-a")
    pre = c.update_precheck(c.update_pending("LOCAL")[0].version)
    assert not pre.ok and any("disk full" in e for e in pre.errors)


def test_restore_calls(fresh_lab):
    c = fresh_lab.client("vc-a", )
    assert c.restore_job().state == "NONE"
    with pytest.raises(BadRequest):  # never on a running node
        c.restore_validate(location_type="SFTP", location="sftp://backup.example/x", location_user="u",
                           location_password="Loc-pw-123")
    # the installer's restore workflow: a fresh appliance in restore mode, then validate + start
    jid = fresh_lab.client("vc-a").backup_start(location_type="SFTP", location="sftp://backup.example/vc-a")
    fresh_lab.client("vc-a").wait_job(lambda: c.backup_job(jid), deadline=30, initial=0.005)
    fresh_lab.lab.restore_mode("vc-a", None, None)
    from orchestrator.clients.appliance import ApplianceClient
    rc = ApplianceClient(fresh_lab.url("vc-a"), "root", fresh_lab.passwords["root"], node="vc-a",
                         verify=str(fresh_lab.lab.tls.ca))
    piece = dict(location_type="SFTP", location=f"sftp://backup.example/vc-a/{jid}", location_user="u",
                 sso_admin_user_name=fresh_lab.sso_user, sso_admin_user_password=fresh_lab.passwords["sso"])
    val = rc.restore_validate(**piece)
    assert val.status in ("OK", "WARNING", "FAIL")
    if val.ok:
        job = rc.restore_start(**piece)
        assert job.state in ("INPROGRESS", "SUCCEEDED")
        done = rc.wait_job(rc.restore_job, deadline=60, initial=0.005, cap=0.05)
        assert done.state in ("SUCCEEDED", "FAILED")


# -- fault injection ------------------------------------------------------------------------------------
def test_503_burst_retried_and_counted(fresh_lab):
    retry.RETRIES.reset()
    c = fresh_lab.client("psc-b")
    c.login()
    fresh_lab.faults({"type": "http_503", "node": "psc-b", "count": 3})
    assert c.version().build
    assert retry.RETRIES.by_what().get("system.version") == 3


def test_503_longer_than_attempts_raises(fresh_lab):
    c = fresh_lab.client("psc-b")
    c.login()
    fresh_lab.faults({"type": "http_503", "node": "psc-b", "count": 50})
    with pytest.raises(ServiceUnavailable):
        c.version()


def test_reset_retried(fresh_lab):
    c = fresh_lab.client("vc-b")
    c.login()
    fresh_lab.faults({"type": "reset", "node": "vc-b", "count": 2})
    assert c.health().system == "green"


def test_session_expiry_relogin_once(fresh_lab):
    retry.RETRIES.reset()
    c = fresh_lab.client("vc-a")
    c.version()
    fresh_lab.expire("vc-a")
    assert c.version().build
    assert retry.RETRIES.relogins == 1
    fresh_lab.faults({"type": "expire_sessions", "node": "vc-a", "after_calls": 0})
    assert c.health().ok


def test_node_down_is_transient_then_fails(fresh_lab):
    c = fresh_lab.client("vc-b")
    c.login()
    fresh_lab.lab.fail("vc-b", "test")
    with pytest.raises(retry.ConnectionFailed):
        c.version()


def test_wait_job_deadline():
    class J:
        state, progress, done = "INPROGRESS", 10, False
    t = [0.0]
    with pytest.raises(DeadlineExceeded):
        wait_job(lambda: J(), deadline=5, sleep=lambda s: t.__setitem__(0, t[0] + s), clock=lambda: t[0],
                 initial=1, cap=2)


def test_60_node_has_no_rest_api(lab60):
    with pytest.raises(NotFound, match="no appliance REST API on this node"):
        lab60.client("psc-a").version()


def test_65_node_has_no_update_api(tmp_path):
    inv = tmp_path / "i65.yml"
    inv.write_text(textwrap.dedent("""\
        domain: vsphere.local
        credentials:
          sso: {user: administrator@vsphere.local, password_env: X_SSO}
          root: {user: root, password_env: X_ROOT}
        sites: [s1]
        nodes:
          - {name: p1, role: psc, site: s1, host: p1.example, version: '6.5 U1'}
          - {name: v1, role: vcenter, site: s1, host: v1.example, version: '6.5 U1', psc: p1}
        """))
    rl = _start_rest_lab(inv, tmp_path / "lab65")
    try:
        c = rl.client("p1")
        assert c.version().version.startswith("6.5")
        with pytest.raises(Unsupported, match="update API"):
            c.update_state()
        with pytest.raises(Unsupported):
            c.update_pending()
    finally:
        rl.lab.stop()


def test_a_call_during_which_the_install_reboot_begins_gets_no_answer(fresh_lab, monkeypatch):
    """The twin checks that the node answers, then runs the call, which moves the node's clock on. A poll of
    the update state that lands as the install's reboot begins must get no answer (the appliance is going
    down), not "UP_TO_DATE" from a node that then refuses every connection (a flake under load: the next
    call after the poll that said done met "connection refused")."""
    from orchestrator.clients.retry import ConnectionFailed, RetryPolicy
    from lab.state import _reboot_at
    st = fresh_lab.lab.state
    c = fresh_lab.client("psc-a")
    target = c.update_pending("LOCAL")[0].version
    c.update_stage(target)
    c.wait_job(c.update_state, deadline=30, what="stage", initial=0.005, cap=0.02)
    clock = {"now": st.now()}
    monkeypatch.setattr(st, "now", lambda: clock["now"])  # the lab's clock stands still: the test moves it
    c.update_install(target, {"vmdir.password": fresh_lab.passwords["sso"]})
    task = st.nodes["psc-a"]["update"]["task"]
    assert c.update_state().state == "INSTALL_IN_PROGRESS"
    monkeypatch.setattr(st, "settle", lambda name: None)  # the twin's check saw the node up...
    clock["now"] = task["start"] + task["duration"] * _reboot_at(task) + 1e-6  # ...the reboot begins in the call
    once = fresh_lab.client("psc-a", retry_policy=RetryPolicy(attempts=1))
    once._sid = c._sid
    with pytest.raises(ConnectionFailed):
        once.update_state()
    assert st.reachability("psc-a") == "refused" and st.nodes["psc-a"]["version"] != "6.7 U1"

"""The appliance REST twin: endpoints, the product rules it enforces, faults, persistence, restore."""
from __future__ import annotations

import http.client
import json
import ssl
import time

import pytest

from lab.faults import Faults, FaultSpecError
from lab.state import backup_password_problem


PIECE = {"parts": ["seat"], "location_type": "SFTP", "location": "sftp://backup.example/vcwave/x"}


def wait_for(fn, timeout=10.0, every=0.02):
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {fn}")
        time.sleep(every)


def backup_done(r, bid):
    return wait_for(lambda: (j := r.get(f"/rest/appliance/recovery/backup/job/{bid}"))["state"] != "INPROGRESS"
                    and j)


def restore_done(r, user="root"):
    """Poll the restore job until it ends; the restored appliance reboots, so log in again on 401."""
    def check():
        st, b = r.call("GET", "/rest/appliance/recovery/restore/job")
        if st == 401:
            r.login(user, r.lab.state.data["root_password"])
            return None
        return st == 200 and b["value"]["state"] != "INPROGRESS" and b["value"]
    return wait_for(check)


def update_settled(r):
    """Poll GET /update until no stage/install runs; log in again after the install's reboot."""
    def check():
        try:
            st, b = r.call("GET", "/rest/appliance/update")
        except OSError:  # rebooting: refused, or reset as the listener closes
            return None
        if st == 401:
            relogin_when_up(r)
            return None
        if st == 200 and b["value"]["state"] not in ("STAGE_IN_PROGRESS", "INSTALL_IN_PROGRESS"):
            return b["value"]
        return None
    return wait_for(check)


def relogin_when_up(r):
    def ok():
        try:
            st, b = r.call("POST", "/rest/com/vmware/cis/session",
                           auth=(r.lab.state.data["sso_user"], r.lab.state.data["sso_password"]))
        except OSError:
            return None
        if st == 200:
            r.sid = b["value"]
            return True
        return None
    wait_for(ok)


# -- session -----------------------------------------------------------------------------------------
def test_session_login_logout_and_error_shape(lab, rest_of):
    r = rest_of(lab, "vc-a", login=False)
    st, body = r.call("GET", "/rest/appliance/system/version")
    assert st == 401
    assert body["type"] == "com.vmware.vapi.std.errors.unauthenticated"
    m = body["value"]["messages"][0]
    assert set(m) == {"id", "default_message", "args"} and m["args"] == []
    st, body = r.call("POST", "/rest/com/vmware/cis/session", auth=("administrator@vsphere.local", "nope"))
    assert st == 401 and body["type"].endswith("unauthenticated")
    st, body = r.call("POST", "/rest/com/vmware/cis/session")
    assert st == 401
    sid = r.login()
    assert isinstance(sid, str) and len(sid) >= 16
    assert r.get("/rest/appliance/system/version")["build"] == "10244745"
    r.login("root", lab.state.data["root_password"])
    assert r.get("/rest/appliance/health/system") == "green"
    st, _ = r.call("DELETE", "/rest/com/vmware/cis/session")
    assert st == 200
    st, body = r.call("GET", "/rest/appliance/system/version")
    assert st == 401
    st, _ = r.call("GET", "/rest/appliance/system/version", sid="not-a-session")
    assert st == 401


def test_session_idle_timeout(make_lab, rest_of):
    lab = make_lab(session_timeout=0.3)
    r = rest_of(lab, "psc-a")
    assert r.get("/rest/appliance/health/system") == "green"
    time.sleep(0.45)
    st, body = r.call("GET", "/rest/appliance/health/system")
    assert st == 401 and body["type"] == "com.vmware.vapi.std.errors.unauthenticated"


# -- system, health, services, 404 -----------------------------------------------------------------------
def test_version_health_services(lab, rest_of):
    vc = rest_of(lab, "vc-a").get("/rest/appliance/system/version")
    assert vc["version"] == "6.7.0.20000" and vc["build"] == "10244745"
    assert vc["type"] == "vCenter Server with an external Platform Services Controller"
    assert vc["summary"] == "" and vc["releasedate"] == "" and vc["install_time"].endswith("Z")
    psc = rest_of(lab, "psc-a")
    assert psc.get("/rest/appliance/system/version")["type"] == "Platform Services Controller"
    for item in ("system", "load", "mem", "storage", "swap", "database-storage", "software-packages"):
        assert psc.get(f"/rest/appliance/health/{item}") in ("green", "yellow", "orange", "red", "gray")
    st, body = psc.call("GET", "/rest/appliance/health/bogus")
    assert st == 404 and body["type"] == "com.vmware.vapi.std.errors.not_found"
    services = rest_of(lab, "vc-a").get("/rest/appliance/vmon/service")
    by = {s["key"]: s["value"] for s in services}
    assert by["vpxd"]["state"] == "STARTED" and by["vpxd"]["health"] == "HEALTHY"
    assert "vmdird" in {s["key"] for s in psc.get("/rest/appliance/vmon/service")}
    assert rest_of(lab, "vc-a").get("/rest/appliance/vmon/service/vpxd")["startup_type"] == "AUTOMATIC"


def test_unknown_paths_are_404(lab, rest_of):
    r = rest_of(lab, "vc-a")
    for method, path in (("GET", "/rest/appliance/nope"), ("GET", "/rest/vcenter/whatever"), ("POST", "/api/x"),
                         ("GET", "/rest/appliance/recovery/backup/job/20990101-000000-1")):
        st, body = r.call(method, path)
        assert st == 404, path
        assert body["type"] == "com.vmware.vapi.std.errors.not_found"


def test_65_has_no_update_api_and_60_has_no_rest(labkit, make_lab, rest_of, tmp_path):
    lab65 = make_lab(labkit.inventory(tmp_path, "d65", labkit.domain_yaml("6.5 U1")))
    r = rest_of(lab65, "v1-1")
    assert r.get("/rest/appliance/system/version")["version"] == "6.5.0.10000"
    for path in ("/rest/appliance/update", "/rest/appliance/update/pending?source_type=LOCAL",
                 "/rest/appliance/update/staged"):
        assert r.call("GET", path)[0] == 404
    assert r.call("POST", "/rest/appliance/update/pending/6.5.0.20000?action=precheck")[0] == 404
    assert r.call("POST", "/rest/appliance/recovery/backup/job", {"piece": PIECE})[0] == 200  # 6.5 file backup
    lab60 = make_lab(labkit.inventory(tmp_path, "d60", labkit.domain_yaml("6.0 U3")))
    r60 = rest_of(lab60, "v1-1", login=False)
    for method, path in (("POST", "/rest/com/vmware/cis/session"), ("GET", "/rest/appliance/system/version"),
                         ("GET", "/rest/appliance/health/system")):
        assert r60.call(method, path, auth=("root", lab60.state.data["root_password"]))[0] == 404


# -- backup --------------------------------------------------------------------------------------------
def test_backup_validation(labkit, make_lab, rest_of, tmp_path):
    lab = make_lab()
    r = rest_of(lab, "vc-a")
    bad = [
        {"piece": {**PIECE, "location_type": "NFS"}},  # NFS only from 6.7 U2; node is 6.7 U1
        {"piece": {**PIECE, "location_type": "DROPBOX"}},
        {"piece": {**PIECE, "parts": ["everything"]}},
        {"piece": {**PIECE, "location": ""}},
        {"piece": {**PIECE, "backup_password": "short1!"}},
        {"piece": {**PIECE, "backup_password": "alllowercase1!"}},
        {"piece": {**PIECE, "backup_password": "NoSpecial123"}},
        {},
    ]
    for body in bad:
        st, out = r.call("POST", "/rest/appliance/recovery/backup/job", body)
        assert st == 400, body
        assert out["type"] == "com.vmware.vapi.std.errors.invalid_argument"
    ok = r.post("/rest/appliance/recovery/backup/job", {"piece": {**PIECE, "backup_password": "Good-Pass1"}})
    assert ok["state"] in ("INPROGRESS", "SUCCEEDED")
    lab_u3 = make_lab(labkit.inventory(tmp_path, "u3", labkit.domain_yaml("6.7 U3")))
    r3 = rest_of(lab_u3, "v1-1")
    assert r3.post("/rest/appliance/recovery/backup/job", {"piece": {**PIECE, "location_type": "NFS"}})
    assert backup_password_problem("Aa1!aaaa") == "" and backup_password_problem("Aa1! aaaa")


def test_backup_job_lifecycle_in_use_and_cancel(make_lab, rest_of):
    lab = make_lab(time_scale=0.002)  # backup = 1.2 s
    r = rest_of(lab, "vc-a")
    job = r.post("/rest/appliance/recovery/backup/job", {"piece": PIECE})
    assert job["state"] == "INPROGRESS" and job["progress"] < 100
    import re
    assert re.fullmatch(r"\d{8}-\d{6}-10244745", job["id"])
    st, out = r.call("POST", "/rest/appliance/recovery/backup/job", {"piece": PIECE})
    assert st == 400 and out["type"] == "com.vmware.vapi.std.errors.feature_in_use"
    assert out["value"]["messages"][0]["default_message"] == "A backup or restore is already in progress"
    assert r.get("/rest/appliance/recovery/backup/job") == [job["id"]]
    done = backup_done(r, job["id"])
    assert done["state"] == "SUCCEEDED" and done["progress"] == 100 and "end_time" in done
    rec = lab.state.data["backups"][f"vc-a/{done['id']}"]
    assert rec["version"] == "6.7 U1" and rec["build"] == 10244745
    assert rec["domain_versions"] == {"psc-a": "6.7 U1 build 10244745", "psc-b": "6.7 U1 build 10244745"}
    assert rec["instance_uuid"] == lab.state.nodes["vc-a"]["instance_uuid"]
    job2 = r.post("/rest/appliance/recovery/backup/job", {"piece": PIECE})
    assert r.post(f"/rest/appliance/recovery/backup/job/{job2['id']}/cancel")["status"] == "OK"
    j = r.get(f"/rest/appliance/recovery/backup/job/{job2['id']}")
    assert j["state"] == "FAILED" and "canceled" in j["messages"][-1]["default_message"]
    assert sorted(r.get("/rest/appliance/recovery/backup/job")) == sorted([job["id"], job2["id"]])


# -- update --------------------------------------------------------------------------------------------
def test_update_pending_list_get_staged(lab, rest_of, control_of):
    r = rest_of(lab, "psc-a")
    info = r.get("/rest/appliance/update")
    assert info["state"] == "UP_TO_DATE" and info["version"] == "6.7.0.20000"
    assert r.call("GET", "/rest/appliance/update/pending")[0] == 400  # source_type is required
    pending = r.get("/rest/appliance/update/pending?source_type=LOCAL_AND_ONLINE")
    assert [p["version"] for p in pending] == ["6.7.0.30000", "6.7.0.40000"]
    assert set(pending[0]) >= {"version", "description", "priority", "severity", "update_type", "release_date",
                               "reboot_required", "size"}
    assert r.get("/rest/appliance/update")["latest_query_time"]
    one = r.get("/rest/appliance/update/pending/6.7.0.40000")
    assert one["staged"] is False and one["services_will_be_stopped"]
    assert r.call("GET", "/rest/appliance/update/pending/6.5.0.10000")[0] == 404
    assert r.call("GET", "/rest/appliance/update/staged")[0] == 404
    # the lab repository is configurable
    assert control_of(lab).post("/lab/repository", {"versions": ["6.7 U2"]})[0] == 200
    assert [p["version"] for p in r.get("/rest/appliance/update/pending?source_type=LOCAL")] == ["6.7.0.30000"]
    control_of(lab).post("/lab/repository", {"versions": None})


def test_psc_update_stage_install_reboot(make_lab, rest_of):
    # stage 0.3 s, install 2.4 s; its reboot and services start 5x longer (4.5 s, not 0.9 s): the poll below must
    # see each of its states, and six workers on two cores once left it without a turn for the whole 0.9 s
    lab = make_lab(time_scale=0.001, faults=[{"type": "slow", "node": "psc-a", "factor": 5, "jobs": ["reboot"]}])
    r = rest_of(lab, "psc-a")
    before = r.get("/rest/appliance/system/version")
    st, out = r.call("POST", "/rest/appliance/update/pending/6.7.0.30000?action=install",
                     {"user_data": {"vmdir.password": lab.state.data["sso_password"]}})
    assert st == 400 and "not staged" in out["value"]["messages"][0]["default_message"]
    pre = r.post("/rest/appliance/update/pending/6.7.0.30000?action=precheck")
    assert pre["issues"]["errors"] == [] and pre["questions"][0]["data_item"] == "vmdir.password"
    val = r.post("/rest/appliance/update/pending/6.7.0.30000?action=validate",
                 {"user_data": [{"key": "vmdir.password", "value": "wrong"}]})
    assert val["errors"]
    st, _ = r.call("POST", "/rest/appliance/update/pending/6.7.0.30000?action=stage")
    assert st == 200
    assert r.get("/rest/appliance/update")["state"] == "STAGE_IN_PROGRESS"
    settled = update_settled(r)
    assert settled["state"] == "UPDATES_PENDING" and settled["version"] == "6.7.0.30000"
    assert r.get("/rest/appliance/update/staged")["staging_complete"] is True
    st, out = r.call("POST", "/rest/appliance/update/pending/6.7.0.30000?action=install",
                     {"user_data": {"vmdir.password": "wrong"}})
    assert st == 400 and out["type"] == "com.vmware.vapi.std.errors.invalid_argument"
    st, _ = r.call("POST", "/rest/appliance/update/pending/6.7.0.30000?action=install",
                   {"user_data": {"vmdir.password": lab.state.data["sso_password"]}})
    assert st == 200
    seen: list = []
    while True:
        try:
            st, body = r.call("GET", "/rest/appliance/update")
        except (OSError, http.client.HTTPException):
            st = "refused"  # the OS reboots: nothing listens
        if not seen or seen[-1] != st:
            seen.append(st)
        if st == 401:
            break
        if st == 200:
            assert body["value"]["state"] == "INSTALL_IN_PROGRESS", body  # never "done" before the reboot
            assert body["value"]["task"]["status"] == "RUNNING"
        time.sleep(0.02)
    assert seen == [200, "refused", 503, 401], seen  # installing, rebooting, services starting, sessions gone
    counts = lab.state.ledger_view()["counts"]["psc-a"]
    assert {k: counts.get(k) for k in ("install_started", "reboot_started", "install_completed")} == {
        "install_started": 1, "reboot_started": 1, "install_completed": 1}
    r.login()
    info = r.get("/rest/appliance/update")
    assert info["state"] == "UP_TO_DATE" and info["version"] == "6.7.0.30000"
    after = r.get("/rest/appliance/system/version")
    assert after["version"] == "6.7.0.30000" and after["build"] == "13010631"
    assert after["install_time"] == before["install_time"] and after["summary"]


def test_vcenter_update_rules(make_lab, rest_of):
    lab = make_lab(time_scale=0.0002)
    pw = {"user_data": {"vmdir.password": lab.state.data["sso_password"]}}
    vc = rest_of(lab, "vc-a")
    # target newer than its PSC: precheck reports it, install is refused
    pre = vc.post("/rest/appliance/update/pending/6.7.0.30000?action=precheck")
    assert "update the PSC first" in pre["issues"]["errors"][0]["message"]["default_message"]
    st, out = vc.call("POST", "/rest/appliance/update/pending/6.7.0.30000?action=stage-and-install", pw)
    assert st == 400 and "psc-a" in out["value"]["messages"][0]["default_message"]
    # its own PSC upgraded, but another PSC of the domain is older: still refused
    p = rest_of(lab, "psc-a")
    p.post("/rest/appliance/update/pending/6.7.0.30000?action=stage-and-install", pw)
    assert update_settled(p)["version"] == "6.7.0.30000"
    st, out = vc.call("POST", "/rest/appliance/update/pending/6.7.0.30000?action=stage-and-install", pw)
    assert st == 400 and "psc-b" in out["value"]["messages"][0]["default_message"]
    pb = rest_of(lab, "psc-b")
    pb.post("/rest/appliance/update/pending/6.7.0.30000?action=stage-and-install", pw)
    update_settled(pb)
    assert vc.post("/rest/appliance/update/pending/6.7.0.30000?action=precheck")["issues"]["errors"] == []
    vc.post("/rest/appliance/update/pending/6.7.0.30000?action=stage-and-install", pw)
    assert update_settled(vc)["state"] == "UP_TO_DATE"
    assert vc.get("/rest/appliance/system/version")["build"] == "13010631"


def test_install_rechecks_rules_at_the_end(make_lab, rest_of):
    """A PSC rolled back while a vCenter install runs: the install fails (INSTALL_FAILED)."""
    lab = make_lab(time_scale=0.0002)
    for n in ("psc-a", "psc-b"):
        lab.state.nodes[n].update(version="6.7 U2", build=13010631)
    vc = rest_of(lab, "vc-a")
    vc.post("/rest/appliance/update/pending/6.7.0.30000?action=stage-and-install",
            {"user_data": {"vmdir.password": lab.state.data["sso_password"]}})
    lab.state.nodes["psc-b"].update(version="6.7 U1", build=10244745)
    info = update_settled(vc)
    assert info["state"] == "INSTALL_FAILED" and "psc-b" in info["task"]["error"]
    assert vc.get("/rest/appliance/system/version")["build"] == "10244745"


# -- restore -------------------------------------------------------------------------------------------
def _backup(r, location):
    job = r.post("/rest/appliance/recovery/backup/job", {"piece": {**PIECE, "location": location}})
    assert backup_done(r, job["id"])["state"] == "SUCCEEDED"
    return job["id"]


def _restore_piece(lab, location):
    return {"piece": {"location_type": "SFTP", "location": location, "sso_admin_user_name":
                      lab.state.data["sso_user"], "sso_admin_user_password": lab.state.data["sso_password"]}}


def test_restore_semantics(lab, rest_of, control_of):
    ctl = control_of(lab)
    r = rest_of(lab, "vc-a")
    before = dict(lab.state.nodes["vc-a"])
    ctl.post("/lab/node/vc-a/data", {"marker": "at-backup"})
    _backup(r, "sftp://b/vc-a")
    ctl.post("/lab/node/vc-a/data", {"marker": "later"})
    # not in restore mode: refused, naming why
    st, out = r.call("POST", "/rest/appliance/recovery/restore/job", _restore_piece(lab, "sftp://b/vc-a"))
    assert st == 400 and "restore mode" in out["value"]["messages"][0]["default_message"]
    assert r.get("/rest/appliance/recovery/restore/job")["state"] == "NONE"
    st, out = ctl.post("/lab/node/vc-a/restore-mode")
    assert st == 200 and out["restore_mode"]
    assert lab.state.nodes["vc-a"]["instance_uuid"] != before["instance_uuid"]
    fresh = rest_of(lab, "vc-a", login=False)
    st, _ = fresh.call("POST", "/rest/com/vmware/cis/session", auth=(lab.state.data["sso_user"],
                                                                      lab.state.data["sso_password"]))
    assert st == 401  # a freshly deployed appliance has no SSO yet: root only
    fresh.login("root", lab.state.data["root_password"])
    assert fresh.call("POST", "/rest/appliance/recovery/restore/validate",
                      {"piece": {"location_type": "SFTP", "location": "sftp://b/none"}})[0] == 404
    v = fresh.post("/rest/appliance/recovery/restore/validate",
                   {"piece": {"location_type": "SFTP", "location": "sftp://b/vc-a"}})
    assert v["status"] == "OK" and v["applicable"] is True and v["version"] == "6.7.0.20000"
    job = fresh.post("/rest/appliance/recovery/restore/job", _restore_piece(lab, "sftp://b/vc-a"))
    assert job["state"] in ("INPROGRESS", "SUCCEEDED")
    done = restore_done(fresh)
    assert done["state"] == "SUCCEEDED", done
    n = lab.state.nodes["vc-a"]
    assert n["instance_uuid"] == before["instance_uuid"] and n["data"]["marker"] == "at-backup"
    assert not n["restore_mode"] and n["health"] == "green"


def test_restore_wrong_build_and_cancel(make_lab, rest_of, control_of):
    lab = make_lab(time_scale=0.002)
    ctl = control_of(lab)
    _backup(rest_of(lab, "psc-a"), "sftp://b/psc-a")
    ctl.post("/lab/node/psc-a/restore-mode", {"version": "6.7 U2"})
    r = rest_of(lab, "psc-a", login=False)
    r.login("root", lab.state.data["root_password"])
    v = r.post("/rest/appliance/recovery/restore/validate", {"piece": {"location_type": "SFTP",
                                                                      "location": "sftp://b/psc-a"}})
    assert v["status"] == "FAIL" and not v["applicable"]
    assert r.call("POST", "/rest/appliance/recovery/restore/job", _restore_piece(lab, "sftp://b/psc-a"))[0] == 400
    ctl.post("/lab/node/psc-a/restore-mode", {"version": "6.7 U1"})
    r.login("root", lab.state.data["root_password"])
    r.post("/rest/appliance/recovery/restore/job", _restore_piece(lab, "sftp://b/psc-a"))
    st, out = r.call("POST", "/rest/appliance/recovery/backup/job", {"piece": PIECE})
    assert st == 400 and out["type"].endswith("feature_in_use")
    assert r.post("/rest/appliance/recovery/restore/job/cancel")["status"] == "OK"
    assert r.get("/rest/appliance/recovery/restore/job")["state"] == "FAILED"


def test_vcenter_restore_after_psc_upgrade_fails_to_come_up(make_lab, rest_of, control_of):
    lab = make_lab(time_scale=0.0002)
    ctl = control_of(lab)
    _backup(rest_of(lab, "vc-a"), "sftp://b/vc-a")
    for p in ("psc-a", "psc-b"):
        r = rest_of(lab, p)
        r.post("/rest/appliance/update/pending/6.7.0.30000?action=stage-and-install",
               {"user_data": {"vmdir.password": lab.state.data["sso_password"]}})
        update_settled(r)
    ctl.post("/lab/node/vc-a/restore-mode")
    r = rest_of(lab, "vc-a", login=False)
    r.login("root", lab.state.data["root_password"])
    v = r.post("/rest/appliance/recovery/restore/validate", {"piece": {"location_type": "SFTP",
                                                                      "location": "sftp://b/vc-a"}})
    assert v["status"] == "WARNING"
    r.post("/rest/appliance/recovery/restore/job", _restore_piece(lab, "sftp://b/vc-a"))
    done = restore_done(r)
    assert done["state"] == "FAILED"
    assert "different SSO domain version" in done["messages"][-1]["default_message"]
    r.login("root", lab.state.data["root_password"])
    assert r.get("/rest/appliance/health/system") == "red"
    vp = {s["key"]: s["value"]["state"] for s in r.get("/rest/appliance/vmon/service")}
    assert vp["vpxd"] == "STOPPED"


# -- control: repoint, fail, revive --------------------------------------------------------------------
def test_repoint_rules(labkit, make_lab, control_of, tmp_path):
    lab = make_lab(labkit.inventory(tmp_path, "two-per-site", labkit.domain_yaml("6.7 U1", psc_per_site=2)))
    ctl = control_of(lab)
    st, out = ctl.post("/lab/repoint", {"vcenter": "v1-1", "psc": "p2-1"})
    assert st == 400 and "same SSO site" in out["error"]
    lab.state.nodes["p1-2"].update(version="6.7 U2", build=13010631)
    st, out = ctl.post("/lab/repoint", {"vcenter": "v1-1", "psc": "p1-2"})
    assert st == 400 and "versions must match" in out["error"]
    lab.state.nodes["p1-2"].update(version="6.7 U1", build=10244745)
    st, out = ctl.post("/lab/repoint", {"vcenter": "v1-1", "psc": "p1-2"})
    assert st == 200 and lab.state.nodes["v1-1"]["psc"] == "p1-2"
    assert ctl.post("/lab/repoint", {"vcenter": "v1-1"})[0] == 400
    assert ctl.post("/lab/repoint", {"vcenter": "v1-1", "psc": "nope"})[0] == 404


def test_fail_and_revive_node(lab, rest_of, control_of):
    ctl = control_of(lab)
    r = rest_of(lab, "psc-b")
    assert ctl.post("/lab/node/psc-b/fail")[0] == 200
    with pytest.raises(ConnectionRefusedError):
        r.call("GET", "/rest/appliance/health/system")
    st, state = ctl.get("/lab/state")
    assert state["nodes"]["psc-b"]["down"] and not state["nodes"]["psc-b"]["listening"]
    assert "sso_password" not in state
    assert ctl.post("/lab/node/psc-b/revive")[0] == 200
    assert r.call("GET", "/rest/appliance/health/system")[0] == 401  # rebooted: old session is gone
    r.login()
    assert r.get("/rest/appliance/health/system") == "green"
    assert ctl.post("/lab/node/ghost/fail")[0] == 404
    assert ctl.get("/lab/nothing")[0] == 404


# -- faults --------------------------------------------------------------------------------------------
def test_fault_fail_steps(make_lab, rest_of, control_of, tmp_path):
    faults = tmp_path / "faults.yml"
    faults.write_text("seed: 1\nfaults:\n"
                      "  - {type: fail_step, node: psc-a, step: precheck, message: 'disk too small'}\n"
                      "  - {type: fail_step, node: psc-a, step: backup}\n"
                      "  - {type: fail_step, node: psc-b, step: stage}\n"
                      "  - {type: fail_step, node: psc-b, step: install, message: 'rpm transaction failed'}\n"
                      "  - {type: fail_step, node: psc-a, step: restore}\n")
    lab = make_lab(faults=faults, time_scale=0.0002)
    pw = {"user_data": {"vmdir.password": lab.state.data["sso_password"]}}
    a, b = rest_of(lab, "psc-a"), rest_of(lab, "psc-b")
    pre = a.post("/rest/appliance/update/pending/6.7.0.30000?action=precheck")
    assert pre["issues"]["errors"][0]["message"]["default_message"] == "disk too small"
    assert a.post("/rest/appliance/update/pending/6.7.0.30000?action=precheck")["issues"]["errors"] == []
    job = a.post("/rest/appliance/recovery/backup/job", {"piece": PIECE})
    assert backup_done(a, job["id"])["state"] == "FAILED"
    job = a.post("/rest/appliance/recovery/backup/job", {"piece": {**PIECE, "location": "sftp://b/psc-a"}})
    assert backup_done(a, job["id"])["state"] == "SUCCEEDED"
    b.post("/rest/appliance/update/pending/6.7.0.30000?action=stage")
    info = update_settled(b)
    assert info["state"] == "UP_TO_DATE" and info["task"]["status"] == "FAILED"
    b.post("/rest/appliance/update/pending/6.7.0.30000?action=stage")
    assert update_settled(b)["state"] == "UPDATES_PENDING"
    b.post("/rest/appliance/update/pending/6.7.0.30000?action=install", pw)
    info = update_settled(b)
    assert info["state"] == "INSTALL_FAILED" and info["task"]["error"] == "rpm transaction failed"
    assert b.get("/rest/appliance/system/version")["build"] == "10244745"
    control_of(lab).post("/lab/node/psc-a/restore-mode")
    a.login("root", lab.state.data["root_password"])
    a.post("/rest/appliance/recovery/restore/job", _restore_piece(lab, "sftp://b/psc-a"))
    done = restore_done(a)
    assert done["state"] == "FAILED"


def test_fault_503_and_reset_counts(labkit, lab, rest_of, control_of):
    r = rest_of(lab, "vc-a")
    ctl = control_of(lab)
    assert ctl.post("/lab/faults", {"faults": [{"type": "http_503", "node": "vc-a", "count": 2},
                                               {"type": "reset", "node": "psc-a", "count": 1}]})[0] == 200
    codes = [r.call("GET", "/rest/appliance/health/system")[0] for _ in range(3)]
    assert codes == [503, 503, 200]
    p = rest_of(lab, "vc-b")  # other nodes unaffected
    assert p.call("GET", "/rest/appliance/health/system")[0] == 200
    pa = rest_of(lab, "psc-b")
    assert pa.call("GET", "/rest/appliance/health/system")[0] == 200
    psc_a = labkit.Rest(lab.servers["psc-a"].url, lab)
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        psc_a.call("POST", "/rest/com/vmware/cis/session", auth=("root", lab.state.data["root_password"]))
    psc_a.login("root", lab.state.data["root_password"])
    st, body = ctl.post("/lab/faults", {"faults": [{"type": "http_503", "count": -1}]})
    assert st == 400
    st, body = ctl.post("/lab/faults", {"faults": [{"type": "bogus"}]})
    assert st == 400 and "type must be one of" in body["error"]


def test_fault_probability_is_seeded(lab, rest_of, control_of):
    r = rest_of(lab, "vc-b")
    ctl = control_of(lab)
    spec = {"seed": 7, "faults": [{"type": "http_503", "node": "*", "probability": 0.5}]}
    runs = []
    for _ in range(2):
        ctl.post("/lab/faults", spec)
        runs.append([r.call("GET", "/rest/appliance/health/mem")[0] for _ in range(20)])
    assert runs[0] == runs[1] and 503 in runs[0] and 200 in runs[0]
    ctl.post("/lab/faults", {})


def test_fault_session_expiry(lab, rest_of, control_of):
    r = rest_of(lab, "vc-a")
    ctl = control_of(lab)
    ctl.post("/lab/faults", {"faults": [{"type": "expire_sessions", "node": "vc-a", "after_calls": 0}]})
    assert r.call("GET", "/rest/appliance/health/system")[0] == 401
    r.login()
    ctl.post("/lab/faults", {"faults": [{"type": "expire_sessions", "node": "vc-a", "after_calls": 2}]})
    assert [r.call("GET", "/rest/appliance/health/system")[0] for _ in range(3)] == [200, 200, 401]
    r.login()
    assert ctl.post("/lab/node/vc-a/expire-sessions")[0] == 200
    assert r.call("GET", "/rest/appliance/health/system")[0] == 401


def test_fault_slow_jobs(make_lab, rest_of):
    lab = make_lab(time_scale=0.0002, faults={"faults": [{"type": "slow", "node": "psc-b", "factor": 20}]})
    fast, slow = rest_of(lab, "psc-a"), rest_of(lab, "psc-b")
    j1 = fast.post("/rest/appliance/recovery/backup/job", {"piece": PIECE})
    j2 = slow.post("/rest/appliance/recovery/backup/job", {"piece": PIECE})
    assert backup_done(fast, j1["id"])["state"] == "SUCCEEDED"
    assert slow.get(f"/rest/appliance/recovery/backup/job/{j2['id']}")["state"] == "INPROGRESS"
    assert lab.state.nodes["psc-b"]["backup_jobs"][j2["id"]]["duration"] == pytest.approx(600 * 0.0002 * 20)
    assert backup_done(slow, j2["id"])["state"] == "SUCCEEDED"


def test_fault_slow_reboot_only(make_lab, rest_of):
    """`jobs: [reboot]` lengthens only the reboot that ends an install: the install's packages go at the lab's
    pace, then the node stays rebooting 20x longer (a kill can aim inside it without waiting out the install)."""
    lab = make_lab(time_scale=0.0002, faults=[{"type": "slow", "node": "psc-a", "factor": 20, "jobs": ["reboot"]}])
    r = rest_of(lab, "psc-a")
    st, _ = r.call("POST", "/rest/appliance/update/pending/6.7.0.30000?action=stage-and-install",
                   {"user_data": {"vmdir.password": lab.state.data["sso_password"]}})
    assert st == 200
    task = lab.state.nodes["psc-a"]["update"]["task"]
    assert task["duration"] == pytest.approx((300 + 2400) * 0.0002)  # stage + install, neither slowed
    booting = wait_for(lambda: lab.state.nodes["psc-a"].get("booting"))
    reboot = task["duration"] * (1 - _reboot_share(task)) * 20
    assert booting["until"] - booting["start"] == pytest.approx(reboot)
    assert lab.state.faults.reboot_factor("psc-b") == 1.0 and lab.state.faults.slow_factor("psc-a", "install") == 1.0


def _reboot_share(task: dict) -> float:
    from lab.state import _reboot_at
    return _reboot_at(task)


def test_fault_down_mid_install(make_lab, rest_of, control_of):
    lab = make_lab(time_scale=0.0002, faults=[{"type": "down_mid_install", "node": "psc-a"}])
    r = rest_of(lab, "psc-a")
    r.post("/rest/appliance/update/pending/6.7.0.30000?action=stage-and-install",
           {"user_data": {"vmdir.password": lab.state.data["sso_password"]}})

    def refused():
        try:
            r.call("GET", "/rest/appliance/health/system")
        except (ConnectionRefusedError, ConnectionResetError, ssl.SSLEOFError):  # refused, or closed as it went
            return lab.state.nodes["psc-a"]["down"]
        return False
    wait_for(refused)
    assert lab.state.nodes["psc-a"]["down"]
    assert control_of(lab).post("/lab/node/psc-a/revive")[0] == 200
    r.login()
    info = r.get("/rest/appliance/update")
    assert info["state"] == "INSTALL_FAILED" and info["task"]["status"] == "FAILED"
    assert r.get("/rest/appliance/system/version")["build"] == "10244745"


def test_faults_spec_parsing():
    f = Faults([{"type": "fail_step", "node": "x", "step": "install", "times": 2}])
    assert f.step_failure("y", "install") is None
    assert f.step_failure("x", "install") and f.step_failure("x", "install")
    assert f.step_failure("x", "install") is None
    for bad in ([{"type": "fail_step", "step": "dance"}], [{"type": "slow", "factor": 0}], "nope",
                [{"type": "reset"}], [{"type": "http_503", "probability": 2}]):
        with pytest.raises(FaultSpecError):
            Faults(bad)


# -- persistence ---------------------------------------------------------------------------------------
def test_state_persists_across_stop_start(make_lab, rest_of, tmp_path):
    d = tmp_path / "persist"
    lab = make_lab(lab_dir=d, time_scale=0.0002)
    pw = {"user_data": {"vmdir.password": lab.state.data["sso_password"]}}
    r = rest_of(lab, "psc-a")
    r.post("/rest/appliance/update/pending/6.7.0.30000?action=stage-and-install", pw)
    update_settled(r)
    bid = _backup(r, "sftp://b/psc-a")
    slow = rest_of(lab, "psc-b")
    lab.state.time_scale = 0.003  # next backup takes 1.8 s: still running at restart
    running = slow.post("/rest/appliance/recovery/backup/job", {"piece": PIECE})["id"]
    ports = {n: s.port for n, s in lab.servers.items()}
    uuid_a = lab.state.nodes["psc-a"]["instance_uuid"]
    assert json.loads((d / "state.json").read_text())["nodes"]["psc-a"]["build"] == 13010631
    lab.stop()
    lab2 = make_lab(lab_dir=d, time_scale=0.003)
    assert {n: s.port for n, s in lab2.servers.items()} == ports
    r2 = rest_of(lab2, "psc-a")
    v = r2.get("/rest/appliance/system/version")
    assert v["build"] == "13010631" and lab2.state.nodes["psc-a"]["instance_uuid"] == uuid_a
    assert bid in r2.get("/rest/appliance/recovery/backup/job")
    s2 = rest_of(lab2, "psc-b")
    assert backup_done(s2, running)["state"] == "SUCCEEDED"
    inv = (d / "lab-inventory.yml").read_text()
    assert "13010631" in inv and "password_file" in inv

"""The lab daemon with vcsim: files it writes, vim25 twins that follow the REST twin, the installer stand-in,
persistence, the foreground process and SIGTERM, and the large-domain start budget."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from lab import mgmt
from lab.warm_relay import alive
from orchestrator.core.inventory import load_inventory

ROOT = Path(__file__).resolve().parents[2]


def answering(lab, node, timeout=30.0):
    """Wait until the node's appliance has booted (lab/boot.py) and, for a vCenter, its vcsim runs again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.state.reachability(node) == "up" and (lab.state.nodes[node]["role"] != "vcenter"
                                                      or node in lab.vcsims):
            return
        time.sleep(0.02)
    raise AssertionError(f"{node} does not answer after {timeout}s ({lab.state.reachability(node)})")


def vim25(lab, node):
    answering(lab, node)
    u = urlsplit(lab.vcsims[node].url)
    return SmartConnect(protocol=u.scheme, host=u.hostname, port=u.port, user=lab.state.data["sso_user"],
                        pwd=lab.state.data["sso_password"], sslContext=lab.tls.client_context())


def about_and_morefs(lab, node):
    si = vim25(lab, node)
    try:
        a = si.content.about
        view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
        morefs = sorted(vm._moId for vm in view.view)
        sso = si.content.setting.QueryOptions("config.vpxd.sso.admin.uri")[0].value
        return {"version": a.version, "build": a.build, "api": a.apiVersion, "uuid": a.instanceUuid,
                "morefs": morefs, "sso": sso}
    finally:
        Disconnect(si)


def mgmt_states(lab, name="mgmt"):
    si = mgmt.connect(lab.vcsims[name].url, lab.state.data["sso_user"], lab.state.data["sso_password"],
                      lab.tls.client_context())
    try:
        return mgmt.vm_power_states(si)
    finally:
        mgmt.disconnect(si)


def test_lab_files_vim25_and_inventory(vcsim_binary, make_lab, labkit):
    lab = make_lab(labkit.TWO_SITE, vcsim=True)
    d = lab.dir
    info = json.loads((d / "lab.json").read_text())
    assert info["pid"] == os.getpid() and info["control_url"].startswith("http://127.0.0.1:")
    for name in ("psc-a", "psc-b", "vc-a", "vc-b"):  # every twin serves https, signed by the lab's own CA
        assert info["nodes"][name]["rest_url"].startswith("https://127.0.0.1:")
    assert info["nodes"]["vc-a"]["vcsim_pid"] and info["nodes"]["psc-a"]["vcsim_pid"] is None
    assert info["management"]["mgmt-vc"]["sdk_url"].startswith("https://127.0.0.1:")
    assert info["nodes"]["vc-a"]["sdk_url"].startswith("https://127.0.0.1:")
    assert info["ca_bundle"] == str((d / "tls" / "ca.pem").resolve())
    assert stat.S_IMODE((d / "tls").stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "tls" / "server.key").stat().st_mode) == 0o600
    for f in (d / "secrets").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "secrets").stat().st_mode) == 0o700
    inv = load_inventory(d / "lab-inventory.yml")
    vca = inv.node("vc-a")
    assert vca.host == "127.0.0.1" and vca.scheme == "https" and vca.port == lab.servers["vc-a"].port
    assert dict(inv.tls) == {"ca_bundle": info["ca_bundle"]}
    assert vca.sdk_port == lab.vcsims["vc-a"].port
    assert Path(inv.credential("sso").password_file).read_text().strip() == lab.state.data["sso_password"]
    assert inv.management_vc("mgmt-vc").port == lab.vcsims["mgmt-vc"].port
    a = about_and_morefs(lab, "vc-a")
    assert (a["version"], a["build"], a["api"]) == ("6.7.0", "10244745", "6.7.1")
    assert a["uuid"] == lab.state.nodes["vc-a"]["instance_uuid"] == vca.instance_uuid
    assert f"127.0.0.1:{lab.servers['psc-a'].port}" in a["sso"]
    states = mgmt_states(lab, "mgmt-vc")
    assert all(states[n] == "poweredOn" for n in ("psc-a", "psc-b", "vc-a", "vc-b"))
    assert (d / "daemon.log").read_text()


def test_installer_upgrade_rollback_rebuild_and_persistence(vcsim_binary, make_lab, labkit, tmp_path,
                                                            control_of):
    inv = labkit.inventory(tmp_path, "d65", labkit.domain_yaml("6.5 U1"))
    d = tmp_path / "lab65"
    lab = make_lab(inv, vcsim=True, lab_dir=d)
    ctl = control_of(lab)
    before = about_and_morefs(lab, "v1-1")
    up = lambda src, ver, **kw: ctl.post("/lab/installer/upgrade", {"source": src, "target_version": ver, **kw})
    st, out = up("v1-1", "6.7 U1")
    assert st == 400 and "p1-1" in out["error"]                          # vCenter before its PSC
    st, out = up("p1-1", "7.0")
    assert st == 400 and "no external Platform Services Controller" in out["error"]
    st, out = up("p1-1", "6.5")
    assert st == 400 and "not newer" in out["error"]
    st, out = up("p1-1", "6.7 U1", new_vm_name="p1-1-67")
    assert st == 200 and out["version"] == "6.7 U1" and out["build"] == 10244745
    assert out["source_vm"] == {"name": "p1-1", "power": "poweredOff"}
    st, out = up("v1-1", "6.7 U1")
    assert st == 400 and "p2-1" in out["error"]                          # another PSC still older
    assert up("p2-1", "6.7 U1")[0] == 200
    st, out = up("v1-1", "6.7 U1", new_vm_name="v1-1-67")
    assert st == 200, out
    after = about_and_morefs(lab, "v1-1")
    assert (after["version"], after["build"], after["api"]) == ("6.7.0", "10244745", "6.7.1")
    assert after["uuid"] == before["uuid"] and after["morefs"] == before["morefs"]
    states = mgmt_states(lab)
    assert states["v1-1"] == "poweredOff" and states["v1-1-67"] == "poweredOn" and states["p1-1"] == "poweredOff"
    r = labkit.Rest(lab.servers["v1-1"].url, lab)
    r.login()
    assert r.get("/rest/appliance/system/version")["version"] == "6.7.0.20000"
    # rollback: new VM off, source on, old version, same uuid
    st, out = ctl.post("/lab/installer/rollback", {"source": "v1-1"})
    assert st == 200 and out["version"] == "6.5 U1"
    assert about_and_morefs(lab, "v1-1")["build"] == "5973321"
    states = mgmt_states(lab)
    assert states["v1-1"] == "poweredOn" and states["v1-1-67"] == "poweredOff"
    assert ctl.post("/lab/installer/rollback", {"source": "v1-1"})[0] == 400
    # rebuild: new uuid and new morefs
    st, out = up("v2-1", "6.7 U1", rebuild=True)
    assert st == 200 and out["instance_uuid"] != before["uuid"]
    rebuilt = about_and_morefs(lab, "v2-1")
    assert rebuilt["uuid"] == out["instance_uuid"]
    assert rebuilt["morefs"] != about_and_morefs(lab, "v1-1")["morefs"]
    # persistence: stop, start again on the same dir
    lab.stop()
    lab2 = make_lab(inv, vcsim=True, lab_dir=d)
    again = about_and_morefs(lab2, "v2-1")
    assert again["uuid"] == rebuilt["uuid"] and again["morefs"] == rebuilt["morefs"]
    assert again["build"] == "10244745"
    states = mgmt_states(lab2)
    assert states["p1-1"] == "poweredOff" and states["p1-1-67"] == "poweredOn"


def test_update_install_and_repoint_restart_vcsim(vcsim_binary, make_lab, labkit, control_of):
    lab = make_lab(labkit.TWO_SITE, vcsim=True, time_scale=0.0002)
    pw = {"user_data": {"vmdir.password": lab.state.data["sso_password"]}}
    uuid = lab.state.nodes["vc-a"]["instance_uuid"]
    for n in ("psc-a", "psc-b", "vc-a"):
        r = labkit.Rest(lab.servers[n].url, lab)
        r.login()
        r.post("/rest/appliance/update/pending/6.7.0.30000?action=stage-and-install", pw)

        def done():
            if lab.state.nodes[n]["build"] != 13010631:
                return False
            try:
                return n != "vc-a" or about_and_morefs(lab, "vc-a")["build"] == "13010631"
            except (OSError, vim.fault.HostConnectFault):  # vcsim restarting (pyVmomi may wrap the refusal)
                return False
        end = time.monotonic() + 20
        while not done():
            assert time.monotonic() < end, n
            time.sleep(0.05)
    a = about_and_morefs(lab, "vc-a")
    assert a["uuid"] == uuid and a["api"] == "6.7.2"


def test_60_vcenter_has_vim25_but_no_rest_and_fail_revive(vcsim_binary, make_lab, labkit, tmp_path, control_of):
    lab = make_lab(labkit.inventory(tmp_path, "d60", labkit.domain_yaml("6.0 U3", sites=1)), vcsim=True)
    a = about_and_morefs(lab, "v1-1")
    assert (a["version"], a["build"], a["api"]) == ("6.0.0", "5112527", "6.0")
    r = labkit.Rest(lab.servers["v1-1"].url, lab)
    assert r.call("POST", "/rest/com/vmware/cis/session", auth=("root", lab.state.data["root_password"]))[0] == 404
    ctl = control_of(lab)
    pid = lab.vcsims["v1-1"].pid
    assert ctl.post("/lab/node/v1-1/fail")[0] == 200
    assert "v1-1" not in lab.vcsims
    with pytest.raises(OSError):
        os.kill(pid, 0)
    assert ctl.post("/lab/node/v1-1/revive")[0] == 200
    assert about_and_morefs(lab, "v1-1")["uuid"] == a["uuid"]


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_daemon_process_large_domain_start_and_sigterm(vcsim_binary, labkit, tmp_path):
    """10 PSCs + 15 vCenters (5 sites x 2 PSCs x 3 vCenters): up < 15 s, < 2 GiB RSS; SIGTERM stops all."""
    inv = labkit.inventory(tmp_path, "large", labkit.domain_yaml("6.5 U1", sites=5, psc_per_site=2, vc_per_site=3))
    d = tmp_path / "large"
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "lab.daemon", "--inventory", str(inv), "--dir", str(d),
                             "--time-scale", "0.0001"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        elapsed = time.monotonic() - t0
        assert line, proc.stderr.read()
        ready = json.loads(line)
        info = json.loads((d / "lab.json").read_text())
        pids = [e["vcsim_pid"] for e in list(info["nodes"].values()) + list(info["management"].values())
                if e.get("vcsim_pid")]
        assert len(pids) == 16
        rss = _rss_kb(proc.pid) + sum(_rss_kb(p) for p in pids)
        print(f"large domain: ready in {elapsed:.2f}s (daemon says {ready['startup_seconds']}s), "
              f"RSS {rss / 1024:.0f} MiB")
        assert elapsed < 15 and rss < 2 * 1024 * 1024
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        end = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < end:
            time.sleep(0.05)
        assert not any(alive(p) for p in pids)
        assert json.loads((d / "lab.json").read_text())["running"] is False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        info = json.loads((d / "lab.json").read_text()) if (d / "lab.json").exists() else {}
        for e in list(info.get("nodes", {}).values()) + list(info.get("management", {}).values()):
            if e.get("vcsim_pid") and alive(e["vcsim_pid"]):
                os.kill(e["vcsim_pid"], signal.SIGKILL)


def test_deleted_and_corrupted_nodes_in_the_management_vcenter_and_vim25(vcsim_binary, make_lab, labkit,
                                                                          control_of):
    """delete: the appliance VM is gone from the management vCenter and vim25 with it, until restore-mode
    deploys a new VM; corrupt: vpxd stopped, so its vim25 endpoint stops while REST still answers (red)."""
    lab = make_lab(labkit.TWO_SITE, vcsim=True)
    ctl = control_of(lab)
    assert ctl.post("/lab/node/vc-b/delete", {"reason": "VM deleted by mistake"})[0] == 200
    deadline = time.monotonic() + 30
    while "vc-b" in mgmt_states(lab, "mgmt-vc") or "vc-b" in lab.vcsims:
        assert time.monotonic() < deadline, "vc-b's VM or vcsim still there"
        time.sleep(0.05)
    assert ctl.post("/lab/node/vc-b/revive")[0] == 400
    assert ctl.post("/lab/node/vc-b/restore-mode")[0] == 200
    assert mgmt_states(lab, "mgmt-vc")["vc-b"] == "poweredOn"
    assert ctl.post("/lab/node/vc-a/corrupt")[0] == 200
    while "vc-a" in lab.vcsims:
        assert time.monotonic() < deadline, "vc-a's vcsim still runs with vpxd stopped"
        time.sleep(0.05)
    r = labkit.Rest(lab.servers["vc-a"].url, lab)
    r.login()
    assert r.get("/rest/appliance/health/system") == "red"

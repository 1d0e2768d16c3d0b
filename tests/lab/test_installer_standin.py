"""The installer runner (orchestrator/clients/installer.py) and the lab's vcsa-deploy stand-in.

Part 1: the runner against a fake installer script (a test double of the subprocess): the 0600 secrets file,
its removal whatever happens, streamed and scrubbed lines, exit codes -> typed errors, the command line.
Part 2: the stand-in against a REST-only lab (lab.daemon.Lab, no vcsim): each refusal with its exit code,
--verify-template-only/--precheck-only change nothing, an upgrade moves the node's identity.
Part 3: a full lab with vcsim: same instance UUID and morefs after the upgrade, VMs on the management vcsim.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.core.test_installer_template import PSC_ONLY

from lab.installer_standin import ENV_LAB_DIR, ENV_VERSION, standin_path
from lab.installer_standin import main as standin_main
from lab.warm_relay import ENV_WARM_SOCKET
from lab.warmcli import WarmCli
from orchestrator.clients.installer import (InstallerFailed, InstallerNotConfigured, InstallerPrecheckRefused,
                                            InstallerRunner, InstallerTemplateRefused, InstallerUnreachable,
                                            resolve_installer)
from orchestrator.core.installer_template import TemplateError, build_upgrade_template, fill_secrets
from orchestrator.core.inventory import load_inventory, loads_inventory
from orchestrator.core.versions import catalogue, parse_version

DEPLOY = ("{datacenter: DC0, datastore: LocalDS_0, network: VM Network, deployment_size: small, target: DC0_C0, "
          "temporary_network: {ip: 10.0.0.50, prefix: 24, gateway: 10.0.0.1, dns_servers: [10.0.0.2]}}")


def V(s: str):
    return catalogue().resolve(parse_version(s))


# ----------------------------------------------------------------------------------------------------------
# Part 1: the runner with a fake installer
# ----------------------------------------------------------------------------------------------------------
SECRETS = {"sso": "Sso-Secret#1x", "root": 'Root"Secret#2x', "mgmt": "Mgmt-Secret#3x"}
RUNNER_INV = PSC_ONLY.replace("@P@", "@V@")  # one PSC: the template test's own inventory

FAKE = r'''
import json, os, sys, time
report = os.environ["FAKE_REPORT"]
path = sys.argv[-1]
st = os.stat(path)
t = json.load(open(path))
with open(report, "w") as f:
    json.dump({"argv": sys.argv[1:], "mode": st.st_mode & 0o777, "dir_mode": os.stat(os.path.dirname(path)).st_mode & 0o777,
               "pid": os.getpid(), "path": path}, f)
vcsa = t.get("source_vc", t.get("source.vc"))
src = vcsa.get("vc_vcsa", vcsa.get("vc.vcsa"))
print("Stage 1: 10% complete", flush=True)
print("connecting to %s as %s with %s" % (src["hostname"], src["username"], src["password"]), flush=True)
print(json.dumps(t), flush=True)
print("Stage 2: 100% complete", flush=True)
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
'''


@pytest.fixture
def fake(tmp_path):
    p = tmp_path / "vcsa-deploy"
    p.write_text(f"#!{sys.executable}\n" + FAKE)
    p.chmod(0o755)
    return p


def runner_template(version: str = "6.0 U3", target: str = "6.5 U1") -> dict:
    inv = loads_inventory(RUNNER_INV.replace("@V@", version))
    return build_upgrade_template(inv, inv.node("p1"), V(target))


def make_runner(fake: Path, tmp_path: Path, code: int = 0, sleep: float = 0, **kw) -> tuple[InstallerRunner, Path]:
    report = tmp_path / "report.json"
    env = dict(os.environ, FAKE_REPORT=str(report), FAKE_EXIT=str(code), FAKE_SLEEP=str(sleep))
    runner = InstallerRunner(fake, env=env, private_root=tmp_path / "private", log_root=tmp_path / "logs", **kw)
    return runner, report


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for s in SECRETS.values():
            assert s not in text
            assert json.dumps(s)[1:-1] not in text


def test_secrets_file_is_0600_while_running_and_gone_after(fake, tmp_path):
    runner, report = make_runner(fake, tmp_path)
    lines: list[str] = []
    res = runner.upgrade(runner_template(), SECRETS, on_line=lines.append)
    r = json.loads(report.read_text())
    assert r["mode"] == 0o600 and r["dir_mode"] == 0o700
    assert not Path(r["path"]).exists() and not Path(r["path"]).parent.exists()
    assert res.exit_code == 0 and res.log_dir.is_dir()
    assert (tmp_path / "logs").stat().st_mode & 0o777 == 0o700  # a new user found installer-logs/ 0755
    assert (tmp_path / "private").stat().st_mode & 0o777 == 0o700
    assert lines[0] == "Stage 1: 10% complete" and lines[-1] == "Stage 2: 100% complete"
    assert any("connecting to p1.corp.example as administrator@vsphere.local" in x for x in lines)
    assert_no_secret(*lines, *res.lines_tail)


def test_command_line_per_installer_release(fake, tmp_path):
    runner, report = make_runner(fake, tmp_path, ssl_verify=False)
    runner.verify_template(runner_template(), SECRETS)
    argv = json.loads(report.read_text())["argv"]
    assert argv[:3] == ["upgrade", "--accept-eula", "--acknowledge-ceip"]
    assert "--verify-only" in argv and "--no-esx-ssl-verify" in argv  # the 6.5 installer's spelling
    assert argv[argv.index("--log-dir") + 1].startswith(str(tmp_path / "logs"))
    runner.precheck(runner_template("6.5 U1", "6.7 U1"), SECRETS)
    argv = json.loads(report.read_text())["argv"]
    assert "--precheck-only" in argv and "--no-ssl-certificate-verification" in argv
    runner, report = make_runner(fake, tmp_path)
    runner.verify_template(runner_template("6.5 U1", "6.7 U1"), SECRETS)
    argv = json.loads(report.read_text())["argv"]
    assert "--verify-template-only" in argv and not any("ssl" in a for a in argv)


@pytest.mark.parametrize("code,error,permanent", [
    (2, InstallerTemplateRefused, True), (3, InstallerPrecheckRefused, True),
    (4, InstallerUnreachable, False), (1, InstallerFailed, False), (70, InstallerFailed, False)])
def test_exit_codes_map_to_typed_errors_and_the_file_is_removed(fake, tmp_path, code, error, permanent):
    runner, report = make_runner(fake, tmp_path, code=code)
    lines: list[str] = []
    with pytest.raises(error) as e:
        runner.upgrade(runner_template(), SECRETS, on_line=lines.append)
    assert e.value.permanent is permanent and e.value.result.exit_code == code
    assert not Path(json.loads(report.read_text())["path"]).exists()
    assert_no_secret(str(e.value), *lines, *e.value.result.lines_tail)


def test_file_removed_and_installer_stopped_when_the_runner_raises(fake, tmp_path):
    runner, report = make_runner(fake, tmp_path, sleep=60)

    def boom(line: str) -> None:
        raise RuntimeError("engine crashed")

    with pytest.raises(RuntimeError, match="engine crashed"):
        runner.upgrade(runner_template(), SECRETS, on_line=boom)
    r = json.loads(report.read_text())
    assert not Path(r["path"]).exists() and not Path(r["path"]).parent.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(r["pid"], 0)


def test_timeout_stops_the_installer_and_removes_the_file(fake, tmp_path):
    runner, report = make_runner(fake, tmp_path, sleep=60, timeout=1.0)
    with pytest.raises(InstallerFailed):
        runner.upgrade(runner_template(), SECRETS)
    assert not Path(json.loads(report.read_text())["path"]).exists()


def test_incomplete_template_or_missing_secret_never_runs_the_installer(fake, tmp_path):
    runner, report = make_runner(fake, tmp_path)
    t = runner_template()
    del t["new.vcsa"]["vc"]["datastore"]
    with pytest.raises(TemplateError, match="new.vcsa.vc.datastore"):
        runner.upgrade(t, SECRETS)
    with pytest.raises(TemplateError, match="root"):
        runner.upgrade(runner_template(), {"sso": SECRETS["sso"], "mgmt": SECRETS["mgmt"]})
    assert not report.exists()


def test_installer_path_comes_from_flag_or_env(fake, tmp_path):
    with pytest.raises(InstallerNotConfigured) as e:
        resolve_installer(None, {})
    assert "--installer" in str(e.value) and "VCWAVE_INSTALLER" in str(e.value)
    with pytest.raises(InstallerNotConfigured, match="VCWAVE_INSTALLER points at"):
        resolve_installer(None, {"VCWAVE_INSTALLER": str(tmp_path / "nope")})
    assert resolve_installer(None, {"VCWAVE_INSTALLER": str(fake)}) == fake
    assert resolve_installer(str(fake), {"VCWAVE_INSTALLER": "/nope"}) == fake
    with pytest.raises(InstallerNotConfigured, match="cannot run the installer"):
        InstallerRunner(tmp_path / "missing", private_root=tmp_path / "private").upgrade(runner_template(), SECRETS)


# ----------------------------------------------------------------------------------------------------------
# Part 2: the stand-in against a REST-only lab
# ----------------------------------------------------------------------------------------------------------
LAB_INV = f"""
domain: vsphere.local
credentials:
  sso:  {{user: administrator@vsphere.local, password_env: LAB_SSO}}
  root: {{user: root, password_env: LAB_ROOT}}
sites: [s1, s2, s3]
management:
  - {{name: mgmt, host: 127.0.0.1, port: 9, scheme: http, credentials: sso}}
nodes:
  - {{name: p1, role: psc, site: s1, host: p1.example, version: "6.0 U3", vm: {{vcenter: mgmt, name: p1}}, deploy: {DEPLOY}}}
  - {{name: v1, role: vcenter, site: s1, host: v1.example, version: "6.0 U3", psc: p1, vm: {{vcenter: mgmt, name: v1}},
      deploy: {DEPLOY}}}
  - {{name: p2, role: psc, site: s2, host: p2.example, version: "6.5 U2", vm: {{vcenter: mgmt, name: p2}}, deploy: {DEPLOY}}}
  - {{name: p3, role: psc, site: s3, host: p3.example, version: "5.5 U3", vm: {{vcenter: mgmt, name: p3}}, deploy: {DEPLOY}}}
"""


@contextlib.contextmanager
def _environ(values: dict[str, str | None]) -> Iterator[None]:
    """`values` in os.environ for the block (None: unset), then the environment as it was."""
    saved = {k: os.environ.get(k) for k in values}
    def put(items: dict[str, str | None]) -> None:
        for k, v in items.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    put(values)
    try:
        yield
    finally:
        put(saved)


class Twin:
    """A started lab plus helpers to build templates from its lab-inventory and run the stand-in."""

    def __init__(self, lab, tmp_path: Path, control) -> None:
        self.lab = lab
        self.tmp = tmp_path
        self.inv = load_inventory(lab.dir / "lab-inventory.yml")
        self.secrets = {n: (lab.dir / "secrets" / n).read_text().strip() for n in ("sso", "root")}
        # the wrapper, run as the product runs it (InstallerRunner), forks the stand-in from the warm server
        self.env = dict(os.environ, VCWAVE_LAB_DIR=str(lab.dir), **{ENV_WARM_SOCKET: WarmCli.shared().sock})
        self.control = control

    def template(self, node: str, target: str) -> dict:
        return build_upgrade_template(self.inv, self.inv.node(node), V(target))

    def installer(self, target: str) -> Path:
        return standin_path(target, self.tmp / "bin")

    def runner(self, target: str) -> InstallerRunner:
        return InstallerRunner(self.installer(target), env=self.env, private_root=self.tmp / "private",
                               log_root=self.tmp / "logs")

    def run(self, target: str, template: dict, *flags: str, secrets: dict | None = None,
            eula: bool = True) -> tuple[int, str]:
        """The stand-in's own command line, on a filled template file (bypasses the product's checks): its
        `main`, in this process, with the environment its `vcsa-deploy-<target>` wrapper gives it (a fresh
        interpreter per case cost ~0.15 s of CPU; the wrapper as the product runs it, exit codes and all:
        the runner's tests here, `test_python_m_entry_point` and the engine's lab tests)."""
        f = self.tmp / f"t{len(list(self.tmp.glob('t*.json')))}.json"
        f.write_text(json.dumps(fill_secrets(template, secrets or self.secrets)))
        argv = ["upgrade"] + (["--accept-eula"] if eula else []) + [
            "--acknowledge-ceip", *flags, "--log-dir", str(self.tmp / "logs"), str(f)]
        env = {ENV_LAB_DIR: self.env.get(ENV_LAB_DIR), ENV_VERSION: V(target).release}
        out = io.StringIO()
        with _environ(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = standin_main(argv)
        return code, out.getvalue()

    def node(self, name: str) -> dict:
        st, body = self.control.get("/lab/state")
        assert st == 200
        return body["nodes"][name]

    def port_of(self, name: str) -> int:
        return self.inv.node(name).port


@pytest.fixture
def twin(make_lab, control_of, tmp_path):
    inv = tmp_path / "lab-src.yml"
    inv.write_text(textwrap.dedent(LAB_INV))
    lab = make_lab(inv)
    return Twin(lab, tmp_path, control_of(lab))


def test_verify_and_precheck_change_nothing(twin):
    before = twin.node("p1")
    t = twin.template("p1", "6.5 U1")
    code, out = twin.run("6.5 U1", t, "--verify-template-only")
    assert code == 0, out
    assert "nothing was changed" in out
    code, out = twin.run("6.5 U1", t, "--precheck-only")
    assert code == 0, out
    after = twin.node("p1")
    assert (after["version"], after["instance_uuid"], after["vm"]) == (before["version"], before["instance_uuid"],
                                                                        before["vm"])
    assert "p1-65" not in twin.lab.state.data["vms"]["mgmt"]


def test_verify_only_needs_no_lab(twin, tmp_path):
    twin.env["VCWAVE_LAB_DIR"] = str(tmp_path / "no-lab-here")
    code, out = twin.run("6.5 U1", twin.template("p1", "6.5 U1"), "--verify-only")
    assert code == 0, out
    code, out = twin.run("6.5 U1", twin.template("p1", "6.5 U1"), "--precheck-only")
    assert code == 4 and "lab.json" in out


def test_upgrade_moves_the_identity_and_powers_the_source_off(twin):
    before = twin.node("p1")
    lines: list[str] = []
    res = twin.runner("6.5 U1").upgrade(twin.template("p1", "6.5 U1"), twin.secrets, on_line=lines.append)
    assert res.exit_code == 0
    assert any(x.startswith("Stage 1:") and "%" in x for x in lines)
    assert any(x.startswith("Stage 2:") and "100%" in x for x in lines)
    after = twin.node("p1")
    assert (after["version"], after["build"]) == ("6.5 U1", 5973321)
    assert after["instance_uuid"] == before["instance_uuid"] and after["moref_salt"] == before["moref_salt"]
    assert after["vm"] == {"vcenter": "mgmt", "name": "p1-65"}
    assert twin.lab.state.data["vms"]["mgmt"]["p1"] == "poweredOff"
    assert twin.lab.state.data["vms"]["mgmt"]["p1-65"] == "poweredOn"
    logs = list(res.log_dir.rglob("*.log"))
    assert logs and "completed successfully" in logs[0].read_text()
    for text in lines + [x.read_text() for x in logs]:
        assert not any(s in text for s in twin.secrets.values())


def test_refused_path_not_supported(twin):
    t = twin.template("p1", "6.7 U1")          # a valid 6.7 template ...
    t["source_vc"]["vc_vcsa"]["port"] = twin.port_of("p3")   # ... aimed at the 5.5 U3 PSC
    code, out = twin.run("6.7 U1", t, "--precheck-only")
    assert code == 3, out
    assert "not supported" in out and "5.5 U3" in out


def test_refused_back_in_time(twin):
    code, out = twin.run("6.5", twin.template("p1", "6.5"), "--precheck-only")   # 6.0 U3 -> 6.5 GA
    assert code == 3 and "back in time" in out, out
    code, out = twin.run("6.7", twin.template("p2", "6.7"))                      # 6.5 U2 -> 6.7 GA, full run
    assert code == 3 and "back in time" in out, out
    assert twin.node("p2")["version"] == "6.5 U2"
    code, out = twin.run("6.7 U1", twin.template("p2", "6.7 U1"), "--precheck-only")
    assert code == 0, out


def test_refused_not_newer_than_the_source(twin):
    t = twin.template("p1", "6.5 U1")
    assert twin.runner("6.5 U1").upgrade(t, twin.secrets).exit_code == 0
    code, out = twin.run("6.5 U1", t, "--precheck-only")   # the same template again: p1 is at 6.5 U1 now
    assert code == 3 and "nothing to upgrade" in out, out


@pytest.mark.parametrize("path", [("new.vcsa", "vc", "datastore"), ("source.vc", "vc.vcsa", "root.password"),
                                  ("new.vcsa", "temporary.network", "gateway"), ("ceip", "settings", "ceip.enabled")])
def test_refused_missing_field(twin, path):
    t = twin.template("p1", "6.5 U1")
    cur = t
    for k in path[:-1]:
        cur = cur[k]
    del cur[path[-1]]
    code, out = twin.run("6.5 U1", t, "--verify-template-only")
    assert code == 2, out
    assert ".".join(path) in out


def test_refused_wrong_field_values(twin):
    t = twin.template("p1", "6.5 U1")
    t["new.vcsa"]["appliance"]["deployment.option"] = "management-small"   # a PSC is 'infrastructure'
    t["new.vcsa"]["user-options"] = {"vcdb.migrateSet": "core"}
    code, out = twin.run("6.5 U1", t, "--precheck-only")
    assert code == 2 and "infrastructure" in out, out
    t = twin.template("p1", "6.5 U1")
    t["new.vcsa"]["temporary.network"]["ip"] = "10.0.0.999"
    code, out = twin.run("6.5 U1", t, "--verify-template-only")
    assert code == 2 and "temporary.network.ip" in out, out
    code, out = twin.run("6.7 U1", twin.template("p1", "6.5 U1"), "--verify-template-only")  # 2.3.0 to 6.7
    assert code == 2 and "__version" in out, out
    t = twin.template("p1", "6.5 U1")
    t["ceip"]["settings"]["ceip.enabled"] = True
    f = twin.tmp / "ceip.json"
    f.write_text(json.dumps(fill_secrets(t, twin.secrets)))
    p = subprocess.run([str(twin.installer("6.5 U1")), "upgrade", "--accept-eula", "--verify-only", str(f)],
                       env=twin.env, capture_output=True, text=True)
    assert p.returncode == 2 and "--acknowledge-ceip" in p.stdout
    code, out = twin.run("6.5 U1", twin.template("p1", "6.5 U1"), eula=False)
    assert code == 2 and "--accept-eula" in out


def test_refused_unreachable_source(twin):
    st, _ = twin.control.post("/lab/node/p1/fail", {"reason": "powered off by the test"})
    assert st == 200
    code, out = twin.run("6.5 U1", twin.template("p1", "6.5 U1"), "--precheck-only")
    assert code == 4 and "Unable to connect to the source appliance" in out, out
    with pytest.raises(InstallerUnreachable) as e:
        twin.runner("6.5 U1").upgrade(twin.template("p1", "6.5 U1"), twin.secrets)
    assert not e.value.permanent
    assert twin.node("p1")["version"] == "6.0 U3"


def test_refused_vcenter_newer_than_its_psc(twin):
    with pytest.raises(InstallerPrecheckRefused) as e:
        twin.runner("6.5 U1").upgrade(twin.template("v1", "6.5 U1"), twin.secrets)
    assert e.value.permanent and "Platform Services Controller p1" in str(e.value)
    assert twin.node("v1")["version"] == "6.0 U3"
    twin.runner("6.5 U1").upgrade(twin.template("p1", "6.5 U1"), twin.secrets)   # its PSC first ...
    with pytest.raises(InstallerPrecheckRefused, match="p3"):                    # ... and every PSC of the domain
        twin.runner("6.5 U1").upgrade(twin.template("v1", "6.5 U1"), twin.secrets)
    twin.runner("6.5 U1").upgrade(twin.template("p3", "6.5 U1"), twin.secrets)
    twin.runner("6.5 U1").upgrade(twin.template("v1", "6.5 U1"), twin.secrets)   # ... then the vCenter
    assert twin.node("v1")["version"] == "6.5 U1"


def test_refused_wrong_credentials_without_echoing_them(twin):
    wrong = dict(twin.secrets, sso="Wrong-Pass#99")
    code, out = twin.run("6.5 U1", twin.template("p1", "6.5 U1"), "--precheck-only", secrets=wrong)
    assert code == 3 and "invalid credentials" in out, out
    assert "Wrong-Pass#99" not in out


def test_python_m_entry_point(twin):
    p = subprocess.run([sys.executable, "-m", "lab.installer_standin", "--help"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2])
    assert p.returncode == 0 and "upgrade" in p.stdout
    wrapper = standin_path(None, twin.tmp / "bin2")
    assert os.access(wrapper, os.X_OK) and stat.S_IMODE(wrapper.stat().st_mode) == 0o755
    code = subprocess.run([str(wrapper), "upgrade", "--help"], capture_output=True, text=True).returncode
    assert code == 0


def _warm_children(cwd: Path) -> set[int]:
    """The processes the warm server (lab/warmcli.py) forked in `cwd` that still run (the server may be shared
    with other tests, running at the same time: a forked command works in its caller's directory)."""
    server = WarmCli.shared().pid
    kids = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == server \
                        and os.readlink(f"/proc/{entry}/cwd") == str(cwd):
                    kids.add(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return kids


def _wrapper_run(twin, target: str, template_file: Path, *flags: str, warm: bool) -> subprocess.Popen:
    """The wrapper as the product starts it (its own session), with or without the warm server."""
    env = dict(twin.env)
    env.pop(ENV_WARM_SOCKET, None)
    if warm:
        env[ENV_WARM_SOCKET] = WarmCli.shared().sock
    return subprocess.Popen([str(twin.installer(target)), "upgrade", "--accept-eula", "--acknowledge-ceip", *flags,
                             str(template_file)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, cwd=twin.tmp)


def test_the_warm_wrapper_is_the_installer_its_exit_code_output_and_lifetime(twin):
    """lab/warm_relay.py: with a warm server the wrapper's process gives the same exit code and output as a
    fresh stand-in; the product stopping it (SIGTERM to its group) stops the stand-in, which ends the relay
    the same way (-SIGTERM); a relay killed outright (SIGKILL) takes its stand-in with it."""
    bad = twin.template("p1", "6.5 U1")
    bad["new.vcsa"]["temporary.network"]["ip"] = "10.0.0.999"
    f = twin.tmp / "bad.json"
    f.write_text(json.dumps(fill_secrets(bad, twin.secrets)))
    runs = []
    for warm in (False, True):
        p = _wrapper_run(twin, "6.5 U1", f, "--verify-template-only", warm=warm)
        out, _ = p.communicate(timeout=60)
        runs.append((p.returncode, out))
    assert runs[0] == runs[1] and runs[1][0] == 2 and "temporary.network.ip" in runs[1][1], runs
    good = twin.tmp / "good.json"
    good.write_text(json.dumps(fill_secrets(twin.template("p1", "6.5 U1"), twin.secrets)))
    twin.env["VCWAVE_STANDIN_TIME_SCALE"] = "1.0"  # stage 1 lasts 20 minutes: the run is still going when stopped
    for sig in (signal.SIGTERM, signal.SIGKILL):
        before = _warm_children(twin.tmp)
        p = _wrapper_run(twin, "6.5 U1", good, warm=True)
        assert p.stdout.readline().startswith("=")  # the stand-in has started (its banner)
        forked = _warm_children(twin.tmp) - before
        assert len(forked) == 1, forked
        os.killpg(p.pid, sig)
        assert p.wait(timeout=30) == -sig
        deadline = time.monotonic() + 10
        while forked & _warm_children(twin.tmp) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not forked & _warm_children(twin.tmp), f"the stand-in outlived its relay ({sig!r})"
        p.stdout.close()
    assert twin.node("p1")["version"] == "6.0 U3"


# ----------------------------------------------------------------------------------------------------------
# Part 3: a full lab (vcsim): same instance UUID and morefs after the upgrade, VMs on the management vcsim
# ----------------------------------------------------------------------------------------------------------
def test_full_lab_upgrade_keeps_identity(make_lab, control_of, tmp_path, vcsim_binary):
    from pyVim.connect import Disconnect, SmartConnect
    from pyVmomi import vim

    src = tmp_path / "lab-src.yml"
    src.write_text(textwrap.dedent(LAB_INV))
    lab = make_lab(src, vcsim=True)
    twin = Twin(lab, tmp_path, control_of(lab))
    info = json.loads((twin.lab.dir / "lab.json").read_text())

    def about_and_hosts(url: str):
        host, port = url.split("//")[1].split("/")[0].split(":")
        si = SmartConnect(protocol="https", host=host, port=int(port), user="administrator@vsphere.local",
                          pwd=twin.secrets["sso"], sslContext=lab.tls.client_context())
        try:
            view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.HostSystem], True)
            return (si.content.about.instanceUuid, si.content.about.version, si.content.about.build,
                    sorted(h._moId for h in view.view))
        finally:
            Disconnect(si)

    uuid0, ver0, _, hosts0 = about_and_hosts(info["nodes"]["v1"]["sdk_url"])
    assert ver0.startswith("6.0")
    for node in ("p1", "p3", "v1"):   # all PSCs first (p2 is already at 6.5 U2), then the vCenter
        twin.runner("6.5 U1").upgrade(twin.template(node, "6.5 U1"), twin.secrets)
    info = json.loads((twin.lab.dir / "lab.json").read_text())
    uuid1, ver1, build1, hosts1 = about_and_hosts(info["nodes"]["v1"]["sdk_url"])
    assert (uuid1, hosts1) == (uuid0, hosts0)
    assert ver1 == "6.5.0" and build1 == "5973321"
    mg = info["management"]["mgmt"]["sdk_url"]
    host, port = mg.split("//")[1].split("/")[0].split(":")
    si = SmartConnect(protocol="https", host=host, port=int(port), user="administrator@vsphere.local",
                      pwd=twin.secrets["sso"], sslContext=lab.tls.client_context())
    try:
        view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
        power = {vm.name: vm.runtime.powerState for vm in view.view}
    finally:
        Disconnect(si)
    assert power["v1"] == "poweredOff" and power["v1-65"] == "poweredOn"
    assert power["p1"] == "poweredOff" and power["p1-65"] == "poweredOn"


def test_a_lost_reply_the_upgrade_happened_but_the_installer_says_it_failed(twin):
    """lost_reply on `installer`: stage 2 completes in the lab, the installer exits 1 as if its connection
    dropped; the lab's record knows the install was done once."""
    twin.control.post("/lab/faults", {"faults": [{"type": "lost_reply", "node": "p1", "action": "installer"}]})
    code, out = twin.run("6.5 U1", twin.template("p1", "6.5 U1"))
    assert code == 1 and "lost the connection" in out, out
    assert twin.node("p1")["version"] == "6.5 U1"
    c = twin.lab.state.ledger_view()["counts"]["p1"]
    assert (c["install_started"], c["install_completed"], c["lost_reply"]) == (1, 1, 1)

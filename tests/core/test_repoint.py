"""Repoint guard: only to a running PSC of the same version in the same SSO site (the seed's PSC-failure
scenario), the failover advice status gives, and `invoke repoint --check` through the real CLI."""
from __future__ import annotations

import subprocess
import re
import textwrap
import time
from pathlib import Path

import pytest

from lab.harness import cli_env, run_cli
from orchestrator.commands.plan import run as plan_run
from orchestrator.core.history import fold
from orchestrator.core.inventory import loads_inventory
from orchestrator.core.plan import load_plan
from orchestrator.core.repoint import check_repoint, failover_options
from orchestrator.core.status import compute_status
from orchestrator.engine.journal import Journal, journal_path
from orchestrator.errors import RefusedError
from tests.core.test_history import Script

OLD, NEW = "6.0 U3", "6.5 U1"

INVENTORY = textwrap.dedent("""\
    # two PSCs in site-a (behind one another), one in site-b; the domain at 6.0 U3
    domain: vsphere.local
    topology: external-psc
    credentials:
      sso: {user: administrator@vsphere.local, password_env: VCWAVE_SSO_PASSWORD}
    sites: [site-a, site-b]
    nodes:
      - {name: psc-a1, role: psc, site: site-a, host: psc-a1.corp.example, version: '6.0 U3', backup: {method: external, command: /opt/bk/run, verify: /opt/bk/verify}}
      - {name: psc-a2, role: psc, site: site-a, host: psc-a2.corp.example, version: '6.0 U3', backup: {method: external, command: /opt/bk/run, verify: /opt/bk/verify}}
      - {name: psc-b1, role: psc, site: site-b, host: psc-b1.corp.example, version: '6.0 U3', backup: {method: external, command: /opt/bk/run, verify: /opt/bk/verify}}
      - {name: vc-a, role: vcenter, site: site-a, host: vc-a.corp.example, version: '6.0 U3', psc: psc-a1, backup: {method: external, command: /opt/bk/run, verify: /opt/bk/verify}}
      - {name: vc-b, role: vcenter, site: site-b, host: vc-b.corp.example, version: '6.0 U3', psc: psc-b1, backup: {method: external, command: /opt/bk/run, verify: /opt/bk/verify}}
""")


def inv():
    return loads_inventory(INVENTORY)


def versions(s: Script):
    i = inv()
    return fold(i, s.events).versions()


def psc_wave() -> Script:
    s = Script().window("opened")
    for p in ("psc-a1", "psc-a2", "psc-b1"):
        s.upgrade(p, NEW, "psc").verify(p, "psc")
    return s


def test_old_vcenter_cannot_be_repointed_to_an_upgraded_psc():
    """'If you had a vCenter Server 5.5 or 6.0 and they were pointing to a 6.5 PSC [...] if that PSC failed
    you would not be able to repoint that vCenter Server to another PSC.'"""
    v = check_repoint(inv(), versions(psc_wave()), "vc-a", "psc-a2", down=frozenset({"psc-a1"}))
    assert not v.ok and v.rule == "repoint-same-version"
    assert "vCenter 6.0 U3, PSC 6.5 U1" in v.reason and "restore or redeploy the failed PSC" in v.reason


def test_failover_advice_after_the_psc_wave_is_restore_or_redeploy():
    opts = {o.vcenter: o for o in failover_options(inv(), versions(psc_wave()))}
    assert opts["vc-a"].psc == "psc-a1" and opts["vc-a"].candidates == ()
    assert opts["vc-a"].advice == "no other PSC of 6.0 U3 answers in site site-a: restore or redeploy psc-a1"
    assert opts["vc-b"].advice == "no other PSC of 6.0 U3 answers in site site-b: restore or redeploy psc-b1"


def test_status_shows_the_failover_advice():
    i = inv()
    s = psc_wave()
    plan = _plan_obj(i)
    st = compute_status(i, plan, fold(i, s.events), {}, time.time())
    assert ("psc-a1 fails -> vc-a: no other PSC of 6.0 U3 answers in site site-a: restore or redeploy psc-a1"
            in st.failover)
    assert st.to_json()["if_a_psc_fails"] == list(st.failover)


def test_same_version_same_site_is_allowed():
    v = check_repoint(inv(), versions(Script()), "vc-a", "psc-a2", down=frozenset({"psc-a1"}))
    assert v.ok and v.rule == "repoint-same-site-same-version"
    opts = {o.vcenter: o for o in failover_options(inv(), versions(Script()))}
    assert opts["vc-a"].candidates == ("psc-a2",) and opts["vc-a"].advice == "repoint to psc-a2"
    assert opts["vc-b"].candidates == ()  # site-b has one PSC only


def test_upgraded_vcenter_may_move_to_an_upgraded_psc():
    s = psc_wave().upgrade("vc-a", NEW, "vcenter")
    assert check_repoint(inv(), versions(s), "vc-a", "psc-a2").ok


def test_mid_psc_wave_the_old_partner_is_still_a_target():
    s = Script().window("opened").upgrade("psc-a1", NEW, "psc")
    assert check_repoint(inv(), versions(s), "vc-a", "psc-a2", down=frozenset({"psc-a1"})).ok
    assert not check_repoint(inv(), versions(s), "vc-a", "psc-a1")  # 6.0 vCenter, 6.5 PSC


def test_another_site_is_refused():
    v = check_repoint(inv(), versions(Script()), "vc-a", "psc-b1")
    assert not v.ok and v.rule == "repoint-same-site" and "site-a" in v.reason and "site-b" in v.reason


def test_down_target_is_refused():
    v = check_repoint(inv(), versions(Script()), "vc-a", "psc-a2", down=frozenset({"psc-a2"}))
    assert not v.ok and v.rule == "repoint-target-up"


def test_wrong_roles_and_unknown_nodes_are_refused():
    with pytest.raises(RefusedError, match="moves a vCenter to a PSC"):
        check_repoint(inv(), versions(Script()), "psc-a1", "psc-a2")
    with pytest.raises(RefusedError, match="moves a vCenter to a PSC"):
        check_repoint(inv(), versions(Script()), "vc-a", "vc-b")
    with pytest.raises(RefusedError, match="no node"):
        check_repoint(inv(), versions(Script()), "vc-a", "psc-zz")


# ------------------------------------------------------------------ the CLI

def _plan_obj(i):
    from orchestrator.core.plan import build_plan
    from orchestrator.core.playbook import load_playbook
    from orchestrator.core.versions import parse_version
    return build_plan(i, load_playbook("default"), parse_version(NEW))


def _silent_port() -> int:
    """A loopback port nobody listens on: the command's observation gets 'connection refused' at once."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cli_domain(tmp_path, monkeypatch):
    """An inventory file (every node on a silent loopback port: the nodes do not answer), a saved plan and a
    journal where every PSC already runs 6.5 U1."""
    monkeypatch.setenv("VCWAVE_SSO_PASSWORD", "not-used-by-a-silent-node")
    inv_file = tmp_path / "inv.yml"
    inv_file.write_text(re.sub(r"host: [a-z0-9-]+\.corp\.example", lambda _: "host: 127.0.0.1, port: {0}, "
                               "sdk_port: {0}, scheme: http".format(_silent_port()), INVENTORY))
    plan_file = tmp_path / "plan.json"
    plan_run(str(inv_file), NEW, str(plan_file), False, None, None)
    state = tmp_path / "state"
    plan = load_plan(plan_file)
    j = Journal.open(journal_path(state, "vsphere.local"))
    try:
        for p in ("psc-a1", "psc-a2", "psc-b1"):
            sid = f"psc/upgrade/{p}"
            j.append("step", node=p, step=sid, action="upgrade", status="started", phase="psc",
                     plan_hash=plan.plan_hash)
            j.append("step", node=p, step=sid, action="upgrade", status="succeeded", phase="psc",
                     plan_hash=plan.plan_hash, data={"version_after": NEW})
    finally:
        j.close()
    return inv_file, plan_file, state


def invoke(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`invoke ARGS` as its own process, forked warm by the harness (lab/warmcli.py): the production CLI's
    parsing, error mapping and exit code, without a fresh interpreter's imports."""
    return run_cli(list(args), cwd, cli_env(), timeout=120)


def test_cli_repoint_check_refused_exits_2_naming_the_rule(cli_domain, tmp_path):
    inv_file, plan_file, state = cli_domain
    r = invoke("repoint", "--vcenter", "vc-a", "--psc", "psc-a2", "--check", "--inventory", str(inv_file),
               "--plan", str(plan_file), "--state-dir", str(state), cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "repoint-same-version" in r.stderr and "restore or redeploy" in r.stderr
    assert "vc-a -> psc-a2 refused" in r.stderr


def test_cli_repoint_check_to_a_silent_psc_is_refused_without_a_flag(cli_domain, tmp_path):
    """The journal says vc-a and psc-a2 both run 6.5 U1 (a repoint the journal alone would allow); psc-a2
    does not answer, so the repoint is refused, no --down needed. (Allowed to an answering PSC: the lab
    test tests/engine/test_live_lab.py.)"""
    inv_file, plan_file, state = cli_domain
    plan = load_plan(plan_file)
    with Journal.open(journal_path(state, "vsphere.local")) as j:
        j.append("step", node="vc-a", step="vcenter/upgrade/vc-a", action="upgrade", status="succeeded",
                 phase="vcenter", plan_hash=plan.plan_hash, data={"version_after": NEW})
    r = invoke("repoint", "--vcenter", "vc-a", "--psc", "psc-a2", "--check", "--inventory", str(inv_file),
               "--plan", str(plan_file), "--state-dir", str(state), cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "repoint-target-up" in r.stderr and "connection refused" in r.stderr.split("refused:", 1)[1]


def test_cli_repoint_other_site_and_down(cli_domain, tmp_path):
    inv_file, plan_file, state = cli_domain
    common = ["--inventory", str(inv_file), "--plan", str(plan_file), "--state-dir", str(state)]
    r = invoke("repoint", "--vcenter", "vc-b", "--psc", "psc-a1", "--check", *common, cwd=tmp_path)
    assert r.returncode == 2 and "repoint-same-site" in r.stderr

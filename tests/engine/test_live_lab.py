"""Live truth on the lab twin, through the production commands: every decision from the domain as it answers.

* vc-b lost after the psc wave: `status` shows it first and proposes no `upgrade --wave vcenter`.
* psc-a lost after the psc wave: `upgrade --wave vcenter --node vc-a` is refused (exit 2, rule named), vc-a
  untouched.
* `repoint --check` to a PSC that does not answer is refused with no flag; allowed while it answers.
* A PSC wave with no precheck ever run is refused; an edited plan whose SHA-256 was recomputed is refused
  (the `invoke` CLI: exit 2, the rule named, no traceback).

Needs the vcsim binary: FAILS when it is unavailable with CI=true, skipped otherwise.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lab import manage
from orchestrator.commands import repoint as repoint_cmd
from orchestrator.commands import status as status_cmd
from orchestrator.commands import waves
from orchestrator.core.plan import content_hash
from orchestrator.errors import InputError, RefusedError
from tests.conftest import require_vcsim
from tests.core.test_repoint import invoke
from tests.engine.labkit import lab_domain
from tests.engine.test_scenarios_lab import events, lab_state, through_psc_wave

EX = Path(__file__).resolve().parents[2] / "examples"
PSC_A2 = """  - name: psc-a2
    role: psc
    site: site-a
    host: psc-a2.corp.example
    version: "6.7 U1"
    build: 10244745
    vm: {vcenter: mgmt-vc, name: psc-a2}
    backup: {method: file, location_type: SFTP, location: "sftp://backup.corp.example/vcwave/psc-a2"}
"""


@pytest.fixture(scope="module")
def vcsim_ok():
    return require_vcsim()


def two_pscs_in_site_a(tmp_path: Path) -> Path:
    """The two-site example with a second PSC in site-a (vc-a keeps psc-a)."""
    text = (EX / "two-site.yml").read_text()
    f = tmp_path / "two-pscs-site-a.yml"
    f.write_text(text.replace("  - name: psc-b\n", PSC_A2 + "  - name: psc-b\n", 1))
    return f


def test_silent_psc_refuses_repoint_and_unchecked_or_edited_plans_are_refused(vcsim_ok, tmp_path, monkeypatch):
    with lab_domain(tmp_path, monkeypatch, two_pscs_in_site_a(tmp_path), "6.7 U3") as d:
        assert "is allowed" in repoint_cmd.run(d.flags, "vc-a", "psc-a2", check=True)
        # the management vCenter says which VM holds each identity: the source appliances, powered on
        assert {n["node"]: n["identity_vm"] for n in status_cmd.status_data(d.flags).nodes} == dict.fromkeys(
            ("psc-a", "psc-a2", "psc-b", "vc-a", "vc-b"), "source")

        manage.control(d.lab_dir, "/lab/node/psc-a2/fail", {"reason": "powered off by the test"})
        t0 = time.monotonic()
        with pytest.raises(RefusedError) as exc:
            repoint_cmd.run(d.flags, "vc-a", "psc-a2", check=True)
        print(f"repoint --check with a silent PSC refused in {time.monotonic() - t0:.2f} s")
        assert exc.value.exit_code == 2 and exc.value.rule == "repoint-target-up"
        manage.control(d.lab_dir, "/lab/node/psc-a2/revive", {})

        # a freshly deployed appliance waiting for its restore is neither fine nor simply down
        manage.control(d.lab_dir, "/lab/node/psc-a2/restore-mode", {"version": "6.7 U1"})
        st = status_cmd.status_data(d.flags)
        assert {n["node"]: n["live"] for n in st.nodes}["psc-a2"] == "restore-mode"
        assert st.next_command.startswith("invoke rollback") and "waits for a restore" in st.next_command

        before = len(events(d, kind="step"))
        cli = ("--inventory", d.flags.inventory, "--plan", d.flags.plan, "--state-dir", d.flags.state_dir)
        r = invoke("upgrade", "--wave", "psc", *cli, cwd=tmp_path)
        assert r.returncode == 2 and "[rule: precheck-before-window]" in r.stderr, (r.stdout, r.stderr)
        assert "never prechecked" in r.stderr and "Traceback" not in r.stderr
        assert len(events(d, kind="step")) == before and not events(d, kind="window")

        plan_file = Path(d.flags.plan)
        data = json.loads(plan_file.read_text())
        for s in next(p for p in data["phases"] if p["name"] == "psc")["steps"]:
            s["batch"] = 0
        data["plan_hash"] = content_hash({k: v for k, v in data.items() if k != "plan_hash"})
        plan_file.write_text(json.dumps(data))
        with pytest.raises(InputError) as exc:
            waves.upgrade(d.flags, "psc")
        assert exc.value.exit_code == 2 and exc.value.rule == "psc-one-at-a-time"
        r = invoke("precheck", *cli, cwd=tmp_path)
        assert r.returncode == 2 and "[rule: psc-one-at-a-time]" in r.stderr and str(plan_file) in r.stderr
        assert {n: s["version"] for n, s in lab_state(d).items() if n.startswith("psc")} == dict.fromkeys(
            ("psc-a", "psc-a2", "psc-b"), "6.7 U1")


def test_lost_nodes_after_the_psc_wave(vcsim_ok, tmp_path, monkeypatch):
    with lab_domain(tmp_path, monkeypatch, EX / "two-site.yml", "6.7 U3") as d:
        through_psc_wave(d)
        waves.verify(d.flags)

        manage.control(d.lab_dir, "/lab/node/psc-a/fail", {"reason": "powered off by the test"})
        with pytest.raises(RefusedError) as exc:
            waves.upgrade(d.flags, "vcenter", node="vc-a")
        assert exc.value.exit_code == 2 and exc.value.rule == "psc-answers-before-vcenter"
        assert "psc-a" in str(exc.value)
        assert lab_state(d)["vc-a"]["version"] == "6.7 U1"
        assert [e.node for e in events(d, kind="disagreement", status="open")] == ["psc-a"]
        manage.control(d.lab_dir, "/lab/node/psc-a/revive", {})

        manage.control(d.lab_dir, "/lab/node/vc-b/fail", {"reason": "powered off by the test"})
        t0 = time.monotonic()
        r = invoke("status", "--inventory", d.flags.inventory, "--plan", d.flags.plan, "--state-dir",
                   d.flags.state_dir, cwd=tmp_path)
        print(f"invoke status with vc-b down (a new process): {time.monotonic() - t0:.2f} s")
        assert r.returncode == 0, r.stderr
        text = r.stdout
        st = status_cmd.status_data(d.flags)
        assert st.problems[0].startswith("vc-b: journal says verified at 6.7 U1; live: not answering")
        assert "upgrade --wave vcenter" not in st.next_command and st.next_command.startswith("bring vc-b back")
        assert text.splitlines()[1].startswith("problem: vc-b")
        assert {n["node"]: n["live"] for n in st.nodes} == {"psc-a": "answering", "psc-b": "answering",
                                                            "vc-a": "answering", "vc-b": "unknown"}
        # status is read-only: the psc-a disagreement journaled by the refused upgrade is still the only one
        assert [e.node for e in events(d, kind="disagreement")] == ["psc-a"]

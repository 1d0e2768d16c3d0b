"""The PSC decommission step, observe then act, against fakes (no lab): refused while a vCenter points at the
PSC or does not answer (nothing is sent), and after a crash the journaled task is asked on its vCenter:
adopted while it runs or once it succeeded (never started twice), started again only when it failed or the
vCenter never heard of it."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.clients.appliance import ApplianceVersion, CisTask, TopologyNode
from orchestrator.clients.retry import NotFound, ServiceUnavailable
from orchestrator.clients.vsphere import PscPointer
from orchestrator.core.history import FINALIZE_DECOMMISSIONED
from orchestrator.core.inventory import load_inventory
from orchestrator.core.plan import Step, build_plan
from orchestrator.core.playbook import load_playbook
from orchestrator.core.versions import parse_version
from orchestrator.errors import StepFailed
from orchestrator.steps.base import NOT_DONE, StepContext
from orchestrator.steps.decommission import DecommissionPsc

EX = Path(__file__).resolve().parents[2] / "examples"
INV = load_inventory(EX / "two-site.yml")


class Partner:
    """The converged vCenter's appliance API (the domain's topology, the decommission task and its states, one
    per poll), and the PSC's own answer (`psc_up`)."""

    def __init__(self, states=(), missing=False, listed=True, psc_up=True):
        self.node, self.started, self.states, self.missing = "vc-a", [], list(states), missing
        self.listed, self.psc_up = listed, psc_up

    def topology_nodes(self):
        return (TopologyNode("vc-a.corp.example", "VCSA_EMBEDDED"),) + (
            (TopologyNode("psc-a.corp.example", "PSC_EXTERNAL"),) if self.listed else ())

    def version(self):
        if not self.psc_up:
            raise ServiceUnavailable("refused", node="psc-a", what="system.version", status=503)
        return ApplianceVersion("6.7.0.20000", "10244745", "VMware Platform Services Controller", "", "", "", "")

    def psc_decommission(self, hostname, user, password, only_precheck=False):
        self.started.append(hostname)
        return "t1:com.vmware.vcenter.topology.pscs"

    def task(self, task_id):
        if self.missing:
            raise NotFound("no task", node="vc-a", what="cis.tasks.get", status=404)
        return CisTask(task_id, self.states.pop(0) if len(self.states) > 1 else self.states[0])

    def wait_job(self, get_fn, **kw):
        while not (job := get_fn()).done:
            pass
        return job


class VSphere:
    def __init__(self, admin_uri):
        self.admin_uri = admin_uri

    def connect(self):
        if self.admin_uri is None:
            raise ServiceUnavailable("refused", node="vc", what="connect", status=503)

    def sso_psc(self):
        return PscPointer(self.admin_uri, "", "") if self.admin_uri else None


def context(partner, pointers, started=None):
    notes = []
    conns = SimpleNamespace(appliance=lambda node: partner, vsphere=lambda node: VSphere(pointers[node.name]),
                            user=lambda c: "administrator@vsphere.local", secret=lambda c: "pw")
    step = Step("finalize/decommission-psc/psc-a", "finalize", 0, "psc-a", "psc", "site-a", "finalize",
                "decommission-psc", "6.7 U1", "7.0 U3")
    events = [SimpleNamespace(status="started", data=started)] if started else []
    ctx = StepContext(INV, build_plan(INV, load_playbook(), parse_version("7.0 U3")), step, INV.node("psc-a"),
                      parse_version("7.0 U3"), conns, None, lambda kind, **kw: notes.append((kind, kw)),
                      lambda: None, SimpleNamespace(deadline_scale=1.0, poll_interval=0.01),
                      events=lambda **kw: events)
    return ctx, notes


CONVERGED = {"vc-a": "", "vc-b": ""}  # embedded SSO: no config.vpxd.sso.* pointing elsewhere


def test_a_vcenter_still_pointing_at_the_psc_or_silent_stops_it_before_anything_is_sent():
    for pointers, why in (({"vc-a": "", "vc-b": "https://psc-a.corp.example/sso-adminserver/sdk/vsphere.local"},
                           "vc-b still points at it"),
                          ({"vc-a": "", "vc-b": None}, "vc-b does not answer")):
        partner = Partner(["SUCCEEDED"])
        ctx, notes = context(partner, pointers)
        with pytest.raises(StepFailed, match=why):
            DecommissionPsc().run(ctx)
        assert partner.started == [] and notes == []


def test_run_decommissions_through_the_partner_and_journals_it():
    partner = Partner(["RUNNING", "SUCCEEDED"])
    ctx, notes = context(partner, CONVERGED)
    assert DecommissionPsc().run(ctx) == {"decommissioned": "psc-a", "partner": "vc-a"}
    assert partner.started == ["psc-a.corp.example"]
    assert [kw["status"] for kind, kw in notes] == [FINALIZE_DECOMMISSIONED]


@pytest.mark.parametrize("states, missing, adopted", [
    (["RUNNING", "SUCCEEDED"], False, True), (["SUCCEEDED"], False, True),
    (["FAILED"], False, False), ([], True, False)])
def test_after_a_crash_the_journaled_task_decides(states, missing, adopted):
    partner = Partner(states, missing)
    ctx, notes = context(partner, CONVERGED, started={"task_id": "t1:com.vmware.vcenter.topology.pscs",
                                                     "partner": "vc-a"})
    out = DecommissionPsc().reconcile(ctx, None)
    assert partner.started == []  # never a second decommission from the reconcile
    assert (out != NOT_DONE) == adopted and bool(notes) == adopted


def test_after_a_crash_without_a_journaled_task_it_starts_again():
    ctx, _ = context(Partner(["SUCCEEDED"]), CONVERGED)
    assert DecommissionPsc().reconcile(ctx, None) == NOT_DONE


@pytest.mark.parametrize("listed, psc_up, outcome", [
    (False, False, "done"),      # a lost answer: the domain says it is decommissioned; nothing is sent again
    (True, False, "unknown"),    # listed but silent (down? shutting down?): unknown, never "go"
    (False, True, "unknown"),    # answers but not listed (a name spelled otherwise?): unknown, never "gone"
])
def test_the_domain_says_whether_the_psc_already_left_it(listed, psc_up, outcome):
    partner = Partner(["SUCCEEDED"], listed=listed, psc_up=psc_up)
    ctx, notes = context(partner, CONVERGED)
    if outcome == "done":
        assert DecommissionPsc().run(ctx)["decommissioned"] == "psc-a" and len(notes) == 1
        assert DecommissionPsc().reconcile(ctx, None) != NOT_DONE
    else:
        with pytest.raises(StepFailed, match="unknown whether it is still in the SSO domain"):
            DecommissionPsc().run(ctx)
    assert partner.started == []

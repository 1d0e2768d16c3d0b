"""The lab's external-PSC decommission, as vCenter 7.0's `com.vmware.vcenter.topology.pscs` does it.

VMware's vCenter Server Appliance Management programming guide, "Decommissioning Nodes": after converging,
`POST https://<vCenter>:5480/rest/vcenter/topology/pscs/{hostname}?action=decommission&vmw-task=true` with
`{"spec": {"sso_admin_username", "sso_admin_password"}, "only_precheck": false}` answers a task id
(`<uuid>:com.vmware.vcenter.topology.pscs`), followed with `GET /rest/cis/tasks/{task}`. Decommissioning "shuts
[the PSC] down and removes it from the single sign-on domain"; "no vCenter Server Appliance instances [may
be] pointing to the Platform Services Controller"; it runs on a vCenter with an embedded PSC (the SDK:
`Unsupported` "if the appliance is in not a management node"). The twin refuses exactly those, and its task
ends with the PSC down (its VM powered off, `decommissioned` in the lab's state).

Pure over the lab state's data: `LabState` holds the lock, records and saves (lab/state.py).
"""
from __future__ import annotations

import uuid
from typing import Any

SERVICE = "com.vmware.vcenter.topology.pscs"
SECONDS = 300.0  # before the lab's time scale: the PSC's services stop, vmdird entries go, the VM powers off


def problem(nodes: dict[str, dict], on: str, psc: str | None, credentials_ok: bool, answering: bool) -> tuple[str, str]:
    """(vapi error kind, text) of the API's refusal, or ("", "") when the decommission may start.
    `psc`: the node the hostname names (None: none of the domain); `answering`: the PSC answers now."""
    me = nodes[on]
    if not credentials_ok:
        return "unauthenticated", "the SSO administrator user name or password is wrong"
    if me["role"] != "vcenter" or me.get("psc"):
        return "unsupported", (f"{on} is not a vCenter Server with an embedded Platform Services Controller: "
                               f"decommission a PSC from a converged vCenter of its domain")
    if psc is None or nodes[psc]["role"] != "psc":
        return "invalid_argument", "the hostname is not an external Platform Services Controller of this domain"
    if nodes[psc].get("decommissioned"):
        return "invalid_argument", f"the Platform Services Controller {psc} was already decommissioned"
    users = sorted(n["name"] for n in nodes.values() if n.get("psc") == psc and not n.get("decommissioned"))
    if users:
        return "not_allowed_in_current_state", (
            f"vCenter Server instance(s) {', '.join(users)} still point at the Platform Services Controller {psc}: "
            f"converge or repoint them before decommissioning it")
    if not answering:
        return "service_unavailable", f"cannot reach the Platform Services Controller {psc}"
    return "", ""


def new_task(on: str, psc: str, now: float, seconds: float, only_precheck: bool) -> dict[str, Any]:
    """A decommission task (a precheck that passed is done at once)."""
    return {"id": f"{uuid.uuid4()}:{SERVICE}", "on": on, "psc": psc, "start": now,
            "duration": 0.0 if only_precheck else seconds, "precheck": only_precheck,
            "status": "SUCCEEDED" if only_precheck else "RUNNING", "end": now if only_precheck else None}


def due(tasks: dict[str, dict], now: float) -> list[dict]:
    """Running tasks whose time has come (their PSC is shut down and removed now)."""
    return [t for t in tasks.values() if t["status"] == "RUNNING" and now >= t["start"] + t["duration"]]


def view(task: dict, iso: Any) -> dict[str, Any]:
    """`GET /rest/cis/tasks/{task}`'s Info (CommonInfo + status)."""
    out = {"service": SERVICE, "operation": "decommission", "status": task["status"], "cancelable": False,
           "description": {"id": f"{SERVICE}.decommission", "default_message":
                           f"Decommission the Platform Services Controller {task['psc']}", "args": []},
           "start_time": iso(task["start"]), "user": "administrator"}
    if task["end"] is not None:
        out["end_time"] = iso(task["end"])
    return out

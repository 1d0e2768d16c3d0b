"""The lab-private control API (JSON over loopback HTTP), served by the daemon on `control_url`.

Why separate from the appliance twin: these are the knobs of the rehearsal itself (break a node, deploy a
fresh appliance for a restore, run the installer stand-in), not anything a real appliance offers.

    GET  /lab/state                                  whole domain state (passwords removed) + faults
    GET  /lab/record?since=N                         the lab's own record (lab/ledger.py): entries after the
                                                     N-th + per-node counts ("installed exactly once")
    POST /lab/node/{name}/restore-mode  {"version"?, "build"?}   freshly deployed appliance, waits for a restore
                                                     (after `delete`: a new appliance VM is deployed first)
    POST /lab/node/{name}/fail          {"reason"?}  node goes down (REST refused, vcsim stopped)
    POST /lab/node/{name}/revive                     node comes back (old version if an install died);
                                                     refused for a deleted node
    POST /lab/node/{name}/corrupt       {"reason"?}  answers with health red and key services stopped; only a
                                                     restore or a snapshot revert brings it back
    POST /lab/node/{name}/delete        {"reason"?}  its appliance VM is deleted: only restore-mode + a restore
    POST /lab/node/{name}/data          {k: v}       change the node's data (to see a restore bring it back)
    POST /lab/node/{name}/expire-sessions            drop every REST session of the node now
    POST /lab/repoint   {"vcenter", "psc"}           same site + same version, else 400
    POST /lab/faults    {seed, faults: [...]}        replace the fault spec
    POST /lab/repository {"versions": [...] | null}  patches the update API offers (null: catalogue default)
    POST /lab/installer/upgrade  {"source", "target_version", "target_build"?, "new_vm_name"?, "rebuild"?,
                                  "sso"? {"first_instance", "partner"?: node name} (a converge to 7.0+)}
    POST /lab/installer/rollback {"source"}
    POST /lab/shutdown                               stop the daemon
    POST /lab/vm-event/{mgmt} {"vm", "power"} | {"vm", "snapshot", "event": "snapshot"|"revert"}
                                                     a management vcsim's vm hook: its VM changed, the node
                                                     follows (lab/vmevents.py)

Errors answer {"error": message, "kind": vapi-ish kind} with 400/404/500.
"""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from .appliance import send_bytes
from .faults import FaultSpecError
from .serving import LabHTTPServer, LabRequestHandler
from .state import LabError

if TYPE_CHECKING:  # pragma: no cover
    from .daemon import Lab


class ControlServer:
    def __init__(self, lab: "Lab", port: int = 0) -> None:
        self.lab = lab
        self.port = port
        self._server: LabHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ControlServer":
        ctl = self

        class Handler(LabRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers, body: two writes; Nagle held each answer ~40 ms

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def _go(self) -> None:
                ctl._handle(self)

            do_GET = do_POST = _go

        try:
            srv = LabHTTPServer(("127.0.0.1", self.port), Handler)
        except OSError:
            srv = LabHTTPServer(("127.0.0.1", 0), Handler)
        self.port = srv.server_address[1]
        self._server = srv
        threading.Thread(target=srv.serve, name="lab-control", daemon=True).start()
        return self

    def stop(self) -> None:
        srv, self._server = self._server, None
        if srv is not None:
            srv.stop()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return _send(h, 400, {"error": "request body is not valid JSON", "kind": "invalid_argument"})
        path = h.path.split("?", 1)[0].rstrip("/")
        lab = self.lab
        try:
            if h.command == "GET" and path == "/lab/state":
                return _send(h, 200, lab.describe())
            if h.command == "GET" and path == "/lab/record":
                since = re.search(r"[?&]since=(\d+)", h.path)
                return _send(h, 200, lab.state.ledger_view(int(since.group(1)) if since else 0))
            if h.command != "POST":
                raise LabError(f"not found: {h.command} {path}", "not_found", 404)
            m = re.fullmatch(r"/lab/node/([^/]+)/([a-z-]+)", path)
            if m:
                name, what = m.groups()
                if what == "restore-mode":
                    return _send(h, 200, lab.restore_mode(name, body.get("version"), body.get("build")))
                if what == "fail":
                    return _send(h, 200, lab.fail(name, body.get("reason", "failed via the lab control API")))
                if what == "revive":
                    return _send(h, 200, lab.revive(name))
                if what in ("corrupt", "delete"):
                    return _send(h, 200, lab.break_node(name, what, body.get("reason", "")))
                if what == "data":
                    return _send(h, 200, {"data": lab.state.set_data(name, body)})
                if what == "expire-sessions":
                    lab.state.node(name)
                    lab.servers[name].expire_sessions()
                    return _send(h, 200, {"node": name, "sessions": 0})
            m = re.fullmatch(r"/lab/vm-event/([^/]+)", path)
            if m:
                return _send(h, 200, lab.vm_changed(m.group(1), body))
            if path == "/lab/repoint":
                return _send(h, 200, lab.repoint(_req(body, "vcenter"), _req(body, "psc")))
            if path == "/lab/faults":
                lab.state.faults.load(body)
                return _send(h, 200, lab.state.faults.to_dict())
            if path == "/lab/repository":
                lab.state.set_repository(body.get("versions"))
                return _send(h, 200, {"repository": lab.state.data["repository"]})
            if path == "/lab/installer/upgrade":
                return _send(h, 200, lab.installer_upgrade(
                    _req(body, "source"), _req(body, "target_version"), body.get("target_build"),
                    body.get("new_vm_name"), bool(body.get("rebuild", False)), body.get("sso")))
            if path == "/lab/installer/rollback":
                return _send(h, 200, lab.installer_rollback(_req(body, "source")))
            if path == "/lab/shutdown":
                _send(h, 200, {"stopping": True})
                lab.request_stop()
                return None
            raise LabError(f"not found: {h.command} {path}", "not_found", 404)
        except LabError as e:
            return _send(h, e.status if e.status != 401 else 400, {"error": e.message, "kind": e.kind})
        except (FaultSpecError, ValueError) as e:
            return _send(h, 400, {"error": str(e), "kind": "invalid_argument"})
        except Exception as e:  # pragma: no cover
            lab.log(f"control error on {path}: {type(e).__name__}: {e}")
            return _send(h, 500, {"error": f"{type(e).__name__}: {e}", "kind": "error"})


def _req(body: dict, key: str) -> Any:
    v = body.get(key) if isinstance(body, dict) else None
    if v in (None, ""):
        raise LabError(f"missing required field '{key}'")
    return v


def _send(h: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    send_bytes(h, status, json.dumps(body, default=str).encode())
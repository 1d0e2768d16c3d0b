"""The appliance (VAMI) REST twin: one stdlib HTTP server per PSC/vCenter, `/rest` style (6.5+), and from
7.0 U2 on the `/api` style too (same resources; results unwrapped, maps as objects, `POST /api/session`).

Why stdlib: the twin must start in milliseconds for 25 nodes and have no dependency the product does not have.
It serves VMware's documented paths, payloads, states and error shapes (see /work/shared/vsphere-facts.md and
the vSphere Automation SDK docs) so that vcwave's REST client cannot tell it from an appliance:

- session: POST/DELETE /rest/com/vmware/cis/session (basic auth -> id; header vmware-api-session-id)
- GET /rest/appliance/system/version, /rest/appliance/health/{system,load,mem,storage,swap,
  database-storage,software-packages}, /rest/appliance/vmon/service[/{id}]
- backup: /rest/appliance/recovery/backup/job[/{id}[/cancel]]
- restore: /rest/appliance/recovery/restore/{validate,job,job/cancel} (only in restore mode)
- update (6.7+): /rest/appliance/update, /update/pending[/{version}[?action=...]], /update/staged
- topology (vCenters): GET /rest/vcenter/topology/nodes; converged 7.0 vCenters: POST
  /rest/vcenter/topology/pscs/{hostname}?action=decommission&vmw-task=true, GET /rest/cis/tasks/{task} (lab/decommission.py)

5.5/6.0 (and Windows) nodes answer 404 to every path: they have no appliance REST API. 6.5 nodes answer 404
to every /rest/appliance/update path. A node that is down does not listen at all (connection refused).
A rebooting appliance (the end of an install, a power-on: lab/boot.py) first refuses connections, then
answers 503 while its services start. Sessions live in memory: they do not survive a reboot (install,
restore, revive) nor a lab restart, like on the real appliance. A `lost_reply` fault (lab/faults.py) lets
a call do its work and then drops the answer.
"""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
import select
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from orchestrator.core.versions import catalogue, parse_version

from .serving import LabHTTPServer, LabRequestHandler
from .state import LabError, LabState, has_api_style, has_rest, has_update_api, iso, version_of

SESSION_PATH = "/rest/com/vmware/cis/session"
API_SESSION_PATH = "/api/session"
SESSION_HEADER = "vmware-api-session-id"


# Pending.Info's `knowledge_base` (a URI, required): the twin names VMware's build-number KB article.
KB_BUILDS = "https://kb.vmware.com/s/article/2143838"


def update_name(v: Any) -> str:
    """Summary/Pending.Info/Staged.Info `name` (required): the patch bundle's name, as VMware spells it."""
    return f"VMware-vCenter-Server-Appliance-{catalogue().appliance_string(v)}-{v.build}-patch-FP"


def msg(text: str, mid: str = "com.vmware.vcwave.lab.message") -> dict:
    return {"id": mid, "default_message": text, "args": []}


def vapi_error(kind: str, text: str) -> dict:
    """The /rest error shape: {"type": "com.vmware.vapi.std.errors.<kind>", "value": {"messages": [...]}}."""
    return {"type": f"com.vmware.vapi.std.errors.{kind}",
            "value": {"messages": [msg(text, f"com.vmware.vapi.std.errors.{kind}")]}}


class Reply(Exception):
    """Raised by a route to answer with status + JSON body (None = empty body)."""

    def __init__(self, status: int, body: Any = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def err(kind: str, text: str, status: int) -> Reply:
    return Reply(status, vapi_error(kind, text))


def rest_path(path: str) -> str | None:
    """The `/rest` path an `/api` path names (7.0 U2+: same resources, another URL style), None if not /api."""
    if path == API_SESSION_PATH:
        return SESSION_PATH
    return "/rest" + path[len("/api"):] if path.startswith("/api/") else None


def api_body(rest_body: Any) -> Any:
    """A `/rest` answer in the `/api` style: results unwrapped, maps as JSON objects (not key/value lists),
    errors as {"error_type": "NOT_FOUND", "messages": [...]}."""
    if isinstance(rest_body, dict) and set(rest_body) == {"type", "value"} and "errors" in str(rest_body["type"]):
        kind = str(rest_body["type"]).rsplit(".", 1)[-1]
        return {"error_type": kind.upper(), "messages": rest_body["value"].get("messages", [])}
    body = rest_body["value"] if isinstance(rest_body, dict) and set(rest_body) == {"value"} else rest_body
    if isinstance(body, list) and body and all(isinstance(x, dict) and set(x) == {"key", "value"} for x in body):
        return {x["key"]: x["value"] for x in body}
    return body


class _Server(LabHTTPServer):
    request_queue_size = 64


class ApplianceServer:
    """The REST twin of one node. `sync()` opens or closes the listener to match the node's down flag."""

    def __init__(self, state: LabState, name: str, session_timeout: float = 1800.0, port: int = 0,
                 host: str = "127.0.0.1", tls: ssl.SSLContext | None = None,
                 session_log: Path | None = None) -> None:
        self.state = state
        self.session_log = session_log  # every session id issued, one per line (the lab's record)
        self.tls = tls  # https with the lab CA's certificate (None: plain http)
        self.name = name
        self.host = host
        self.port = port
        self.session_timeout = session_timeout
        self.sessions: dict[str, dict] = {}
        self._slock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._life = threading.Lock()
        # hostname (as a client names a node: the lab's 127.0.0.1:<port>) -> node name; set by the daemon
        self.resolve: Callable[[str], str | None] = lambda hostname: None
        self.address_of: Callable[[str], str] = lambda name: name  # node name -> its address; set by the daemon

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    def bind(self) -> None:
        """Bind the port now (even for a down node) so the port is known; falls back to a free port."""
        with self._life:
            if self._server is not None:
                return
            try:
                srv = _Server((self.host, self.port), self._handler_class())
            except OSError:
                if not self.port:
                    raise
                srv = _Server((self.host, 0), self._handler_class())
            self.port = srv.server_address[1]
            if self.tls:  # the handshake runs in the request's thread, at its first read
                srv.socket = self.tls.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
            self._server = srv
            self._thread = threading.Thread(target=srv.serve, name=f"rest-{self.name}", daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._life:
            srv, self._server = self._server, None
        if srv is not None:
            srv.stop()
        with self._slock:
            self.sessions.clear()

    def sync(self) -> None:
        """Listen when the node is up, stop listening (connection refused) when it is down or its OS reboots."""
        down = self.state.reachability(self.name) == "refused"
        if down and self.listening:
            self.close()
        elif not down and not self.listening:
            self.bind()

    def start(self) -> "ApplianceServer":
        self.bind()
        self.sync()
        return self

    stop = close

    # -- sessions ----------------------------------------------------------------------------------
    def expire_sessions(self) -> None:
        with self._slock:
            self.sessions.clear()

    def _new_session(self, user: str) -> str:
        sid = secrets.token_hex(16)
        with self._slock:
            self.sessions[sid] = {"user": user, "last": time.monotonic(),
                                  "boot": self.state.nodes[self.name]["boot"]}
            if self.session_log is not None:
                fd = os.open(self.session_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with open(fd, "a") as fh:
                    fh.write(sid + "\n")
        return sid

    def _check_session(self, sid: str | None) -> dict | None:
        if not sid:
            return None
        with self._slock:
            s = self.sessions.get(sid)
            if s is None:
                return None
            now = time.monotonic()
            if now - s["last"] > self.session_timeout or s["boot"] != self.state.nodes[self.name]["boot"]:
                del self.sessions[sid]
                return None
            s["last"] = now
            return s

    def _drop_session(self, sid: str | None) -> bool:
        with self._slock:
            return self.sessions.pop(sid or "", None) is not None

    # -- HTTP --------------------------------------------------------------------------------------
    def _handler_class(self) -> type:
        twin = self

        class Handler(LabRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers, body: two writes; Nagle held each answer ~40 ms
            server_version = "envoy"
            sys_version = ""

            def log_message(self, fmt: str, *args: Any) -> None:  # quiet
                pass

            def _go(self) -> None:
                twin._handle(self)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _go

        return Handler

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        st = self.state
        node = st.nodes[self.name]
        fate = st.faults.on_call(self.name)
        if fate == "expire":
            self.expire_sessions()
        st.settle(self.name)
        reach = st.reachability(self.name)
        if fate == "reset" or reach == "refused":
            _reset(h)
            return
        if fate == "503":
            _send(h, 503, vapi_error("service_unavailable", "Service Unavailable (lab fault injection)"))
            return
        garbage = st.faults.garbage(self.name, h.command, urlsplit(h.path).path, due=st.fault_due)
        if garbage is not None:
            send_garbage(h, garbage.answer, garbage.rate)
            return
        if not has_rest(node):
            _send_text(h, 404, "Not Found")
            return
        if reach == "starting":
            _send(h, 503, vapi_error("service_unavailable", "The appliance services are starting"))
            return
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path.rstrip("/") or "/"
        api = rest_path(path) if has_api_style(node) else None  # before 7.0 U2 an /api path is just unknown
        if api is not None:
            path = api
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            _send(h, 400, vapi_error("invalid_argument", "The request body is not valid JSON"))
            return
        try:
            route, args = self._route(h.command, path, node)
            if route is None:
                raise err("not_found", f"Not found: {h.command} {path}", 404)
            if route != self._session_create:
                if self._check_session(h.headers.get(SESSION_HEADER)) is None:
                    raise err("unauthenticated", "This method requires authentication.", 401)
            result = route(h, query, body, *args)
            if st.reachability(self.name) == "refused":  # the reboot began while the call ran (the route moved
                _reset(h)                                # the node's clock on): no answer, as on the appliance
                return
            if self._reply_lost(h, _action(route.__name__, query)):
                return
            raise Reply(200, None if result is _EMPTY else {"value": result})
        except Reply as r:
            _send(h, r.status, api_body(r.body) if api is not None and r.body is not None else r.body)
        except LabError as e:
            reply = vapi_error(e.kind, e.message)
            _send(h, e.status, api_body(reply) if api is not None else reply)
        except Exception as e:  # pragma: no cover - a twin bug must show, not hang the client
            _send(h, 500, vapi_error("internal_server_error", f"lab twin error: {type(e).__name__}: {e}"))

    def _reply_lost(self, h: BaseHTTPRequestHandler, action: str) -> bool:
        """The call did its work; a `lost_reply` fault now drops the answer (RST, or silence until the client
        gives up). Recorded in the lab's ledger so a test knows the action happened."""
        f = self.state.faults.lost_reply(self.name, action)
        if f is None:
            return False
        self.state.record(self.name, "lost_reply", action=action, mode=f.mode)
        if f.mode == "timeout":
            _hold_silent(h, f.seconds)
        _reset(h)
        return True

    def _route(self, method: str, path: str, node: dict) -> tuple[Callable | None, tuple]:
        if not hasattr(self, "_route_table"):
            self._route_table = self._routes()
        for m, rx, fn, need_update in self._route_table:
            if m != method:
                continue
            mo = rx.fullmatch(path)
            if mo:
                if need_update and not has_update_api(node):
                    return None, ()
                return fn, mo.groups()
        return None, ()

    def _routes(self) -> list:
        R = re.compile
        seg = r"([^/]+)"
        return [
            ("POST", R(re.escape(SESSION_PATH)), self._session_create, False),
            ("DELETE", R(re.escape(SESSION_PATH)), self._session_delete, False),
            ("GET", R(r"/rest/appliance/system/version"), self._version, False),
            ("GET", R(r"/rest/appliance/health/" + seg), self._health, False),
            ("GET", R(r"/rest/appliance/vmon/service"), self._services, False),
            ("GET", R(r"/rest/appliance/vmon/service/" + seg), self._service, False),
            # The same vMon services under their vSphere API 6.7 name (com.vmware.vcenter.services.Service):
            # what VMware's 9.x Python SDK binds (it has no appliance.vmon binding), 6.7+ like the update API.
            ("GET", R(r"/rest/vcenter/services"), self._services, True),
            ("GET", R(r"/rest/vcenter/services/" + seg), self._service, True),
            ("POST", R(r"/rest/appliance/recovery/backup/job"), self._backup_create, False),
            ("GET", R(r"/rest/appliance/recovery/backup/job"), self._backup_list, False),
            ("GET", R(r"/rest/appliance/recovery/backup/job/" + seg), self._backup_get, False),
            ("POST", R(r"/rest/appliance/recovery/backup/job/" + seg + "/cancel"), self._backup_cancel, False),
            ("POST", R(r"/rest/appliance/recovery/restore/validate"), self._restore_validate, False),
            ("POST", R(r"/rest/appliance/recovery/restore/job"), self._restore_create, False),
            ("GET", R(r"/rest/appliance/recovery/restore/job"), self._restore_get, False),
            ("POST", R(r"/rest/appliance/recovery/restore/job/cancel"), self._restore_cancel, False),
            ("GET", R(r"/rest/appliance/update"), self._update_get, True),
            ("GET", R(r"/rest/appliance/update/pending"), self._pending_list, True),
            ("GET", R(r"/rest/appliance/update/pending/" + seg), self._pending_get, True),
            ("POST", R(r"/rest/appliance/update/pending/" + seg), self._pending_action, True),
            ("GET", R(r"/rest/appliance/update/staged"), self._staged_get, True),
            ("DELETE", R(r"/rest/appliance/update/staged"), self._staged_delete, True),
            ("GET", R(r"/rest/vcenter/topology/nodes"), self._topology_nodes, False),
            ("POST", R(r"/rest/vcenter/topology/pscs/" + seg), self._psc_decommission, False),
            ("GET", R(r"/rest/cis/tasks/" + seg), self._cis_task, False),
        ]

    # -- session -----------------------------------------------------------------------------------
    def _session_create(self, h, q, body) -> str:
        auth = h.headers.get("Authorization") or ""
        if not auth.lower().startswith("basic "):
            raise err("unauthenticated", "Authentication required.", 401)
        try:
            user, _, pw = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except Exception:
            raise err("unauthenticated", "Authentication required.", 401) from None
        d = self.state.data
        node = self.state.nodes[self.name]
        ok_root = user == "root" and pw == d["root_password"]
        ok_sso = user.lower() == d["sso_user"].lower() and pw == d["sso_password"] and not node["restore_mode"]
        if not (ok_root or ok_sso):
            raise err("unauthenticated", "Authentication failed: invalid user name or password.", 401)
        return self._new_session(user)

    def _session_delete(self, h, q, body):
        self._drop_session(h.headers.get(SESSION_HEADER))
        return _EMPTY

    # -- system ------------------------------------------------------------------------------------
    def _version(self, h, q, body) -> dict:
        node = self.state.nodes[self.name]
        v = version_of(node)
        psc = node["role"] == "psc"
        date = catalogue().release_date(v)
        return {
            "version": catalogue().appliance_string(v),
            "product": "VMware Platform Services Controller" if psc else "VMware vCenter Server Appliance",
            "build": str(v.build),
            "type": "Platform Services Controller" if psc
            else "vCenter Server with an external Platform Services Controller" if node.get("psc")
            else "vCenter Server with an embedded Platform Services Controller",  # converged (7.0+)
            "summary": f"Patch for VMware vCenter Server {v.major}.{v.minor}.0" if node["patched"] else "",
            "releasedate": date.strftime("%B %d, %Y") if (node["patched"] and date) else "",
            "install_time": iso(node["install_time"]),
        }

    _HEALTH = ("system", "load", "mem", "storage", "swap", "database-storage", "software-packages")

    def _health(self, h, q, body, item: str) -> str:
        if item not in self._HEALTH:
            raise err("not_found", f"Not found: health item {item}", 404)
        node = self.state.nodes[self.name]
        if item == "system":
            return node["health"]
        if item == "database-storage" and node["role"] == "psc":
            return "green"
        return "gray" if node["restore_mode"] else "green"

    def _service_info(self, sname: str, st: str) -> dict:
        info = {"name_key": f"cis.{sname}.ServiceName", "description_key": f"cis.{sname}.ServiceDescription",
                "startup_type": "AUTOMATIC", "state": st}
        if st == "STARTED":
            info["health"] = "HEALTHY"
            info["health_messages"] = []
        return info

    def _services(self, h, q, body) -> list:
        node = self.state.nodes[self.name]
        return [{"key": k, "value": self._service_info(k, s)} for k, s in sorted(node["services"].items())]

    def _service(self, h, q, body, sid: str) -> dict:
        node = self.state.nodes[self.name]
        if sid not in node["services"]:
            raise err("not_found", f"Service {sid} not found", 404)
        return self._service_info(sid, node["services"][sid])

    # -- backup ------------------------------------------------------------------------------------
    @staticmethod
    def _job_view(job: dict) -> dict:
        return {"id": job["id"], "state": job["state"], "progress": job["progress"],
                "messages": [msg(m, "com.vmware.applmgmt.backup.job") for m in job["messages"]],
                "start_time": iso(job["start"]), **({"end_time": iso(job["end"])} if job["end"] else {})}

    def _backup_create(self, h, q, body) -> dict:
        piece = (body or {}).get("piece") if isinstance(body, dict) else None
        return self._job_view(self.state.start_backup(self.name, piece))

    def _backup_list(self, h, q, body) -> list:
        with self.state.lock:
            return sorted(self.state.nodes[self.name]["backup_jobs"])

    def _backup_get(self, h, q, body, bid: str) -> dict:
        return self._job_view(self.state.backup_job(self.name, bid))

    def _backup_cancel(self, h, q, body, bid: str) -> dict:
        self.state.cancel_backup(self.name, bid)
        return {"status": "OK", "messages": [msg("Backup job was canceled.")]}

    # -- restore -----------------------------------------------------------------------------------
    def _restore_validate(self, h, q, body) -> dict:
        piece = (body or {}).get("piece") if isinstance(body, dict) else None
        v = self.state.restore_validate(self.name, piece)
        v = dict(v)
        v.pop("backup", None)
        v["messages"] = [msg(m, "com.vmware.applmgmt.restore.validate") for m in v["messages"]]
        return v

    @staticmethod
    def _restore_view(job: dict | None) -> dict:
        if not job:
            return {"state": "NONE", "messages": [], "progress": 0}
        return {"state": job["state"], "progress": job["progress"],
                "messages": [msg(m, "com.vmware.applmgmt.restore.job") for m in job["messages"]],
                "start_time": iso(job["start"]), **({"end_time": iso(job["end"])} if job["end"] else {})}

    def _restore_create(self, h, q, body) -> dict:
        piece = (body or {}).get("piece") if isinstance(body, dict) else None
        return self._restore_view(self.state.start_restore(self.name, piece))

    def _restore_get(self, h, q, body) -> dict:
        return self._restore_view(self.state.restore_job(self.name))

    def _restore_cancel(self, h, q, body) -> dict:
        self.state.cancel_restore(self.name)
        return {"status": "OK", "messages": [msg("Restore job was canceled.")]}

    # -- topology (7.0 converged vCenters): decommission an external PSC, lab/decommission.py ------------
    def _psc_decommission(self, h, q, body, hostname: str) -> str:
        if q.get("action") != "decommission" or q.get("vmw-task") != "true":
            raise err("invalid_argument", "expected ?action=decommission&vmw-task=true", 400)
        spec = (body or {}).get("spec") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise err("invalid_argument", "the request body needs a 'spec' with sso_admin_username and "
                      "sso_admin_password", 400)
        psc = self.resolve(unquote(hostname))
        return self.state.start_decommission(self.name, psc, str(spec.get("sso_admin_username") or ""),
                                             str(spec.get("sso_admin_password") or ""),
                                             bool(body.get("only_precheck")))

    def _topology_nodes(self, h, q, body) -> list:
        if self.state.nodes[self.name]["role"] != "vcenter":
            raise err("not_found", f"Not found: GET /rest/vcenter/topology/nodes on {self.name}", 404)
        return self.state.topology_nodes(self.address_of)

    def _cis_task(self, h, q, body, task: str) -> dict:
        return self.state.topology_task(unquote(task))

    # -- update ------------------------------------------------------------------------------------
    @staticmethod
    def _task_view(task: dict) -> dict:
        out = {"description": msg(f"Update {task['operation']} of {task['version']}",
                                  f"com.vmware.appliance.update.{task['operation']}"),
               "service": "com.vmware.appliance.update.pending", "operation": task["operation"],
               "status": task["status"], "cancelable": False,
               "progress": {"total": 100, "completed": task["progress"],
                            "message": msg(task["messages"][-1] if task["messages"] else f"{task['operation']} "
                                           f"in progress")},
               "subtask_order": [], "subtasks": [], "start_time": iso(task["start"])}
        if task["end"]:
            out["end_time"] = iso(task["end"])
        if task.get("error"):
            out["error"] = task["error"]
        return out

    def _update_get(self, h, q, body) -> dict:
        info = self.state.update_info(self.name)
        if "task" in info:
            info["task"] = self._task_view(info["task"])
        if info["latest_query_time"] is None:
            info.pop("latest_query_time")
        return info

    def _summary(self, v) -> dict:
        """Update.Summary (and the fields Pending.Info and Staged.Info share with it), as VMware's SDK types it."""
        date = catalogue().release_date(v)
        return {"version": catalogue().appliance_string(v), "name": update_name(v),
                "description": msg(f"VMware vCenter Server {v.release} (build {v.build})",
                                   "com.vmware.appliance.update.description"),
                "priority": "HIGH", "severity": "CRITICAL", "update_type": "SECURITY",
                "release_date": (date.isoformat() + "T00:00:00.000Z") if date else None,
                "reboot_required": True, "size": 1500 + v.update * 100}

    def _pending_list(self, h, q, body) -> list:
        # the query of the documented /rest call, or the operation-input body VMware's SDK sends on a GET
        st = q.get("source_type") or (body.get("source_type") if isinstance(body, dict) else None)
        if st not in ("LOCAL", "LOCAL_AND_ONLINE", "LAST_CHECK"):
            raise err("invalid_argument", f"Invalid source_type {st!r}: expected LOCAL, LOCAL_AND_ONLINE or "
                                          f"LAST_CHECK", 400)
        if st != "LAST_CHECK":
            self.state.set_query_time(self.name)
        return [self._summary(v) for v in self.state.available_updates(self.name)]

    def _pending_info(self, v) -> dict:
        node = self.state.nodes[self.name]
        info = self._summary(v)
        info.pop("version")
        staged = node["update"]["staged"] == catalogue().appliance_string(v)
        info.update(contents=[msg(f"Fixes and security updates of {v.release}")], knowledge_base=KB_BUILDS,
                    services_will_be_stopped=[{"service": s, "description": msg(s)} for s in sorted(node["services"])],
                    eulas=[msg("VMware End User License Agreement")], staged=staged)
        return info

    def _pending_get(self, h, q, body, version: str) -> dict:
        return self._pending_info(self.state.resolve_update(self.name, version))

    @staticmethod
    def _user_data(body: Any) -> dict:
        ud = (body or {}).get("user_data") if isinstance(body, dict) else None
        if isinstance(ud, list):  # /rest map encoding: [{"key": k, "value": v}]
            return {e.get("key"): e.get("value") for e in ud if isinstance(e, dict)}
        return ud if isinstance(ud, dict) else {}

    def _pending_action(self, h, q, body, version: str):
        action = q.get("action") or q.get("~action")
        if action == "precheck":
            r = self.state.precheck(self.name, version)
            now = iso(time.time())
            return {"check_time": now, "estimated_time_to_install": 40, "estimated_time_to_rollback": 15,
                    "reboot_required": True,
                    "issues": {"info": [], "warnings": [],
                               "errors": [{"id": "com.vmware.appliance.update.precheck.error", "time": now,
                                           "message": msg(e), "resolution": msg("Resolve the issue and retry.")}
                                          for e in r["errors"]]},
                    "questions": [{"data_item": "vmdir.password", "type": "PASSWORD",
                                   "text": msg("Single Sign-On administrator password"),
                                   "description": msg("Password of the SSO administrator of the domain")}]}
        if action == "validate":
            r = self.state.validate_update(self.name, version, self._user_data(body))
            return {"info": [], "warnings": [],
                    "errors": [{"id": "com.vmware.appliance.update.validate.error", "message": msg(e)}
                               for e in r["errors"]]}
        if action in ("stage", "install", "stage-and-install"):
            self.state.start_update(self.name, version, action, self._user_data(body))
            return _EMPTY
        raise err("invalid_argument", f"Unknown action {action!r}", 400)

    def _staged_get(self, h, q, body) -> dict:
        self.state.tick()
        node = self.state.nodes[self.name]
        staged = node["update"]["staged"]
        task = node["update"]["task"]
        if task and task["status"] == "RUNNING" and task["operation"] == "stage":
            v = parse_version(task["release"], task["build"])
            info = self._summary(v)
            info["staging_complete"] = False
            return info
        if not staged:
            raise err("not_found", "Nothing is staged", 404)
        info = self._summary(catalogue().resolve(parse_version(staged)))
        info["staging_complete"] = True
        return info

    def _staged_delete(self, h, q, body):
        with self.state.lock:
            self.state.nodes[self.name]["update"]["staged"] = None
            self.state.save()
        return _EMPTY


_EMPTY = object()


def send_bytes(h: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str = "application/json") -> None:
    """One answer; a client that went away (a reset, a killed caller) only closes the connection."""
    try:
        h.send_response(status)
        if data:
            h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
    except OSError:
        h.close_connection = True


GARBAGE_BODIES = {
    "truncated": b'{"value": {"version": "6.7.0.40000", "build": "143677',
    "list": b'[1, 2, "three"]',
    "html": b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>",
}
HUGE = 10 * 1024 * 1024
TRICKLE = 200 * 1024  # at 1 KB/s: 200 s, far beyond any sane request deadline


def send_garbage(h: BaseHTTPRequestHandler, answer: str, rate: int = 1024) -> None:
    """A 200 that is not what the API documents (lab/faults.py `garbage`): the request is not processed.
    `huge*` and `trickle` stream until the client hangs up, as a broken proxy would."""
    h.close_connection = True
    if answer in GARBAGE_BODIES:
        body = GARBAGE_BODIES[answer]
        send_bytes(h, 200, body, "text/html" if answer == "html" else "application/json")
        return
    try:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        size = HUGE if answer.startswith("huge") else TRICKLE
        if answer != "huge-unannounced":
            h.send_header("Content-Length", str(size))
        h.send_header("Connection", "close")
        h.end_headers()
        piece, pause = (b" " * 65536, 0.0) if answer.startswith("huge") else (b" " * max(1, rate // 10), 0.1)
        for _ in range(size // len(piece)):
            h.wfile.write(piece)
            h.wfile.flush()
            time.sleep(pause)
    except OSError:
        pass  # the client refused the body and hung up: what it should do


def _send(h: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    send_bytes(h, status, b"" if body is None else json.dumps(body).encode())


def _send_text(h: BaseHTTPRequestHandler, status: int, text: str) -> None:
    send_bytes(h, status, text.encode(), "text/html")


# Route handler -> the action name a `lost_reply` fault matches (lab/faults.py LOST_REPLY_ACTIONS).
_ACTIONS = {"_session_create": "login", "_version": "version", "_health": "health", "_services": "services",
            "_service": "services", "_backup_create": "backup", "_backup_get": "backup_job",
            "_restore_create": "restore", "_restore_get": "restore_job", "_update_get": "update_state",
            "_pending_list": "pending", "_pending_get": "pending", "_staged_get": "staged"}


def _action(handler: str, query: dict) -> str:
    """The action of one call: POST .../pending/{v}?action=install is "install"."""
    if handler == "_pending_action":
        return str(query.get("action") or query.get("~action") or "")
    return _ACTIONS.get(handler, handler.lstrip("_"))


def _hold_silent(h: BaseHTTPRequestHandler, seconds: float) -> None:
    """Say nothing until the client closes its side (its read timeout) or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([h.connection], [], [], 0.1)
        if ready:
            try:
                if not h.connection.recv(1, socket.MSG_PEEK):
                    return  # EOF: the client gave up
            except OSError:
                return
            time.sleep(0.1)  # the client sent more: still say nothing


def _reset(h: BaseHTTPRequestHandler) -> None:
    """Close the socket without an answer (RST, like a dropped connection)."""
    h.close_connection = True
    try:
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        h.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass

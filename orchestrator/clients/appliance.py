"""Appliance REST client (VCSA / PSC appliance 6.5+): session, version, health, services, file-based backup,
restore, and the 6.7+ update API. Stdlib only (http.client), typed frozen results, no knowledge of waves.

Why stdlib: the appliance API is a handful of JSON calls; one less dependency means one less thing to pin
on an air-gapped admin host. URL style: `/rest` (6.5-7.0, results wrapped in {"value": ...}) by default;
`api_style="api"` targets the 7.0 U2+ `/api` paths (unwrapped results).

Every call goes through `orchestrator.clients.retry.call_with_retry` (the one place for retries); an expired
session (401 with a session id) is re-created once transparently. 5.5/6.0 nodes have no appliance REST API:
they answer 404 everywhere, reported as `NotFound("no appliance REST API on this node ...")`.
"""
from __future__ import annotations

import base64
import http.client
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from orchestrator import stop
from orchestrator.clients import tls
from orchestrator.clients.answers import bounded_response
from orchestrator.clients.keepalive import KeptConnection
from orchestrator.clients.retry import (Backoff, BadAnswer, BadRequest, ClientError, DeadlineExceeded, NotFound,
                                        RetryPolicy, ServerError, ServiceUnavailable, SessionExpired, TransientError,
                                        Unauthorized, Unsupported, RETRIES, call_with_retry,
                                        default_policy, polling)
from orchestrator.log import get_logger
from orchestrator.secrets import Secret, as_secret

SESSION_HEADER = "vmware-api-session-id"
JOB_TERMINAL = ("SUCCEEDED", "FAILED")
UPDATE_BUSY = ("STAGE_IN_PROGRESS", "INSTALL_IN_PROGRESS", "ROLLBACK_IN_PROGRESS")
SOURCE_TYPES = ("LOCAL", "LOCAL_AND_ONLINE", "LAST_CHECK")
MAX_BODY = 4 * 1024 * 1024   # the largest documented answer (the services list) is tens of KB
NONE = type(None)

J = TypeVar("J")


# -- typed results -------------------------------------------------------------------------------------
def _msgs(raw: Any) -> tuple[str, ...]:
    """vapi LocalizableMessage list -> texts (a lone message or a garbage value is kept as its text)."""
    if raw and not isinstance(raw, (list, tuple)):
        raw = [raw]
    out = []
    for m in raw or ():
        if isinstance(m, dict):
            out.append(str(m.get("default_message") or m.get("id") or ""))
        else:
            out.append(str(m))
    return tuple(out)


@dataclass(frozen=True)
class ApplianceVersion:
    version: str          # appliance string, e.g. 6.7.0.20000
    build: str
    product: str
    type: str
    install_time: str
    releasedate: str = ""
    summary: str = ""


@dataclass(frozen=True)
class Health:
    system: str                                  # green|yellow|orange|red|gray
    items: tuple[tuple[str, str], ...] = ()      # (load, green), (mem, green), ...

    @property
    def ok(self) -> bool:
        return self.system == "green"

    def get(self, name: str) -> str | None:
        return dict(self.items).get(name)


@dataclass(frozen=True)
class Service:
    name: str
    state: str            # STARTED|STOPPED|...
    health: str = ""
    startup_type: str = ""


class _JobState:
    """Backup and restore jobs share VMware's states: INPROGRESS | SUCCEEDED | FAILED | NONE."""

    state: str

    @property
    def done(self) -> bool:
        return self.state in JOB_TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"


@dataclass(frozen=True)
class BackupJob(_JobState):
    id: str
    state: str
    progress: int
    messages: tuple[str, ...] = ()
    start_time: str | None = None
    end_time: str | None = None


@dataclass(frozen=True)
class RestoreJob(_JobState):
    state: str
    progress: int
    messages: tuple[str, ...] = ()
    start_time: str | None = None
    end_time: str | None = None


@dataclass(frozen=True)
class CisTask(_JobState):
    """`GET /rest/cis/tasks/{task}` (6.7.1+): status PENDING | RUNNING | BLOCKED | SUCCEEDED | FAILED."""

    id: str
    state: str
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class TopologyNode:
    """One node of the SSO domain as a vCenter lists it (`GET /rest/vcenter/topology/nodes`, vSphere API 6.7.2+)."""

    node: str  # IP address or DNS name
    type: str  # VCSA_EMBEDDED | VCSA_EXTERNAL | PSC_EXTERNAL
    client_affinity: str = ""  # a VCSA_EXTERNAL's PSC


@dataclass(frozen=True)
class RestoreValidation:
    status: str           # OK|WARNING|FAIL
    messages: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status in ("OK", "WARNING")


@dataclass(frozen=True)
class UpdateTask:
    operation: str
    status: str           # RUNNING|SUCCEEDED|FAILED|...
    progress: int
    message: str = ""
    error: str = ""


@dataclass(frozen=True)
class UpdateState:
    state: str            # UP_TO_DATE|UPDATES_PENDING|STAGE_IN_PROGRESS|INSTALL_IN_PROGRESS|INSTALL_FAILED|...
    version: str = ""
    latest_query_time: str | None = None
    task: UpdateTask | None = None

    @property
    def progress(self) -> int:
        return self.task.progress if self.task else (100 if self.done else 0)

    @property
    def done(self) -> bool:
        return self.state not in UPDATE_BUSY and not (self.task and self.task.status == "RUNNING")

    @property
    def failed(self) -> bool:
        return self.state == "INSTALL_FAILED" or bool(self.task and self.task.status == "FAILED")


@dataclass(frozen=True)
class PendingUpdate:
    """Update.Summary, as VMware documents it (`version` and `name` are required)."""

    version: str
    name: str = ""
    description: str = ""
    update_type: str = ""
    severity: str = ""
    priority: str = ""
    release_date: str | None = None
    reboot_required: bool = True
    size: int = 0


@dataclass(frozen=True)
class PrecheckResult:
    version: str
    check_time: str | None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    info: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()      # user_data items the install needs (e.g. vmdir.password)
    reboot_required: bool = True

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class StagedUpdate:
    version: str
    staging_complete: bool
    name: str = ""


def _issue_texts(items: Any) -> tuple[str, ...]:
    out = []
    for it in items or ():
        if isinstance(it, dict):
            m = it.get("message")
            out.append(_msgs([m])[0] if m else str(it.get("id", "")))
        else:
            out.append(str(it))
    return tuple(out)


def _task(raw: Any) -> UpdateTask | None:
    if not isinstance(raw, dict):
        return None
    prog = raw.get("progress")
    if isinstance(prog, dict):
        total = prog.get("total") or 100
        pct = int(round(100 * (prog.get("completed") or 0) / total))
        message = _msgs([prog.get("message")])[0] if prog.get("message") else ""
    else:
        pct, message = int(prog or 0), ""
    err = raw.get("error")
    if isinstance(err, dict):
        err = "; ".join(_msgs((err.get("value") or err).get("messages") or [])) or json.dumps(err)
    return UpdateTask(str(raw.get("operation", "")), str(raw.get("status", "")), pct, message, str(err or ""))


def _text(v: Any) -> str:
    """An id or a name: a string or a number, never a structure (that would be a garbage answer)."""
    if isinstance(v, (dict, list)) or v is None:
        raise TypeError(f"expected an id, got {json.dumps(v)[:40]}")
    return str(v)


def _services(raw: Any) -> tuple[Service, ...]:
    if isinstance(raw, dict):  # /api style: map
        raw = [{"key": k, "value": v} for k, v in raw.items()]
    out = []
    for e in raw:
        v = e.get("value", {})
        out.append(Service(_text(e.get("key")), str(v.get("state", "")), str(v.get("health", "") or ""),
                           str(v.get("startup_type", "") or "")))
    return tuple(sorted(out, key=lambda s: s.name))


# -- the client -----------------------------------------------------------------------------------------
class ApplianceClient:
    """One appliance's REST API. `password` is a Secret (a plain str is wrapped)."""

    def __init__(self, base_url: str, user: str, password: Secret | str, *, verify: bool | str = True,
                 thumbprint: str | None = None, timeout: float = 30.0, node: str = "", api_style: str = "rest",
                 retry_policy: RetryPolicy | None = None, connect_timeout: float = 10.0,
                 total_timeout: float = 120.0, max_body: int = MAX_BODY) -> None:
        u = urlsplit(base_url)
        if not u.hostname:
            raise ValueError(f"bad appliance URL {base_url!r}")
        self.scheme = u.scheme or "https"
        self.host = u.hostname
        self.port = u.port or (443 if self.scheme == "https" else 80)
        self.node = node or self.host
        tls.check_scheme(self.scheme, self.host, node=self.node)
        if api_style not in ("rest", "api"):
            raise ValueError("api_style must be 'rest' or 'api'")
        self.api_style = api_style
        self.base_url = f"{self.scheme}://{u.netloc}"
        self.user = user
        self._password = as_secret(password)
        self.timeout = timeout                # per read: no byte for this long is a dead answer
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout    # per request, however the bytes trickle in
        self.max_body = max_body
        self.retry_policy = retry_policy
        self._ctx = None
        if self.scheme == "https":
            self._ctx = tls.ssl_context(verify, thumbprint, host=self.host, node=self.node, client="appliance")
        self._sid: str | None = None
        self.requests = 0
        self._conns = KeptConnection(self._connection)
        self._log = get_logger("vcwave.appliance")

    # -- transport ---------------------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self.scheme == "http":
            return http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        return http.client.HTTPSConnection(self.host, self.port, timeout=self.connect_timeout, context=self._ctx)

    def _path(self, rest_path: str) -> str:
        """`rest_path` is written in /rest form without the prefix: 'appliance/system/version'."""
        if self.api_style == "api":
            if rest_path == "com/vmware/cis/session":
                return "/api/session"
            return "/api/" + rest_path
        return "/rest/" + rest_path

    def _raw(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None,
             keep: bool | None = None) -> tuple[int, bytes, str]:
        """One request. `keep`: on the kept connection (default: reads only, clients/keepalive.py)."""
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Accept": "application/json"}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        with self._conns.connection(keep=method == "GET" if keep is None else keep) as conn:
            conn.response_class = bounded_response(self.node, f"{method} {path}", max_body=self.max_body,
                                                   total=self.total_timeout, per_read=self.timeout)
            self.requests += 1
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheader("Content-Type", "") or ""

    def _error(self, status: int, payload: bytes, ctype: str, method: str, path: str, what: str,
               with_session: bool) -> ClientError:
        etype, messages = "", ()
        try:
            doc = json.loads(payload) if payload else None
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            etype = str(doc.get("type") or doc.get("error_type") or "")
            value = doc.get("value") if isinstance(doc.get("value"), dict) else doc
            messages = _msgs(value.get("messages"))
        detail = "; ".join(messages) or (payload[:200].decode("utf-8", "replace").strip() if payload else "")
        where = f"{method} {path}"
        kw = dict(node=self.node, what=what, status=status)
        if status == 401:
            if with_session:
                return SessionExpired(f"session expired or invalid (401 on {where})", **kw)
            return Unauthorized(f"login refused for user {self.user} (401): {detail}", **kw)
        if status == 404:
            if not etype:
                return NotFound(f"no appliance REST API on this node (404 on {where}): 5.5/6.0 and Windows nodes "
                                f"have none", **kw)
            return NotFound(f"{detail or 'not found'} (404 on {where})", **kw)
        if status in (502, 503, 504):
            return ServiceUnavailable(f"HTTP {status} on {where}: {detail}", **kw)
        if 400 <= status < 500:
            return BadRequest(f"HTTP {status} on {where}: {etype.rsplit('.', 1)[-1] or 'error'}: {detail}",
                              error_type=etype, messages=messages, **kw)
        return ServerError(f"HTTP {status} on {where}: {detail}", **kw)

    def _json(self, payload: bytes, ctype: str, method: str, path: str) -> Any:
        """A 2xx answer's document: JSON by content type and by content, or BadAnswer naming the path."""
        where = f"{method} {path}"
        if not payload:
            return None
        if "json" not in ctype.lower():
            raise BadAnswer(f"answer is {ctype or 'untyped'}, not JSON: "
                            f"{payload[:80].decode('utf-8', 'replace')!r}", node=self.node, what=where)
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise BadAnswer(f"answer is not valid JSON ({exc}; truncated?)", node=self.node,
                            what=where) from None

    def _expect(self, value: Any, expect: tuple[type, ...], method: str, path: str) -> Any:
        """The documented shape of a result (a struct, a list, a string): anything else is a BadAnswer,
        so that no caller ever reads `.get` of a list or a field of None."""
        if not isinstance(value, expect) or isinstance(value, bool) and bool not in expect:
            names = " or ".join("nothing" if t is NONE else {dict: "an object", list: "a list", str: "a string"}
                                .get(t, t.__name__) for t in expect)
            raise BadAnswer(f"answer is {type(value).__name__} {json.dumps(value)[:60]}, "
                            f"expected {names}", node=self.node, what=f"{method} {path}")
        return value

    def _once(self, method: str, path: str, what: str, body: Any, expect: tuple[type, ...],
              convert: Callable[[Any], Any] | None) -> Any:
        """One attempt. An answer that will be asked again (a 503, a garbage answer) drops the kept
        connection: the next attempt goes out on a fresh one, as every attempt did before keep-alive."""
        try:
            return self._answer(method, path, what, body, expect, convert)
        except TransientError:
            self._conns.close()
            raise

    def _answer(self, method: str, path: str, what: str, body: Any, expect: tuple[type, ...],
                convert: Callable[[Any], Any] | None) -> Any:
        if self._sid is None:
            self._login_once()
        status, payload, ctype = self._raw(method, path, body, {SESSION_HEADER: self._sid or ""})
        if not 200 <= status < 300:
            raise self._error(status, payload, ctype, method, path, what, with_session=True)
        doc = self._json(payload, ctype, method, path)
        if self.api_style == "rest" and isinstance(doc, dict) and "value" in doc:
            doc = doc["value"]
        doc = self._expect(doc, expect, method, path)
        if convert is None:
            return doc
        try:
            return convert(doc)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise BadAnswer(f"answer lacks the documented fields ({type(exc).__name__}: "
                            f"{exc})", node=self.node, what=f"{method} {path}") from None

    def _call(self, method: str, rest_path: str, what: str, *, body: Any = None,
              query: Mapping[str, str] | None = None, idempotent: bool = True,
              expect: tuple[type, ...] = (dict,), convert: Callable[[Any], Any] | None = None) -> Any:
        """One call, retried by the one policy; the answer checked for its JSON shape (`expect`) and turned
        into a typed result (`convert`) inside the retry, so a garbage answer to a GET is asked again."""
        path = self._path(rest_path) + (("?" + urlencode(query)) if query else "")
        return call_with_retry(lambda: self._once(method, path, what, body, expect, convert), what=what,
                               node=self.node, idempotent=idempotent, relogin=self._relogin,
                               policy=self.retry_policy)

    # -- session -------------------------------------------------------------------------------------------
    def _login_once(self) -> str:
        path = self._path("com/vmware/cis/session")
        token = base64.b64encode(f"{self.user}:{self._password.reveal()}".encode()).decode()
        # on the kept connection: the reads that follow go on it (a login changes no node; a lost reply to it
        # is asked again like a read, and at worst leaves a session that expires)
        status, payload, ctype = self._raw("POST", path, None, {"Authorization": f"Basic {token}"}, keep=True)
        if not 200 <= status < 300:
            raise self._error(status, payload, ctype, "POST", path, "session.create", with_session=False)
        doc = self._json(payload, ctype, "POST", path)
        sid = doc.get("value") if isinstance(doc, dict) else doc  # /rest wraps the id, /api does not
        self._sid = self._expect(sid, (str,), "POST", path)
        Secret(self._sid)  # registers the session id for scrubbing
        self._log.debug("appliance.session_created", node=self.node)
        return self._sid

    def _relogin(self) -> None:
        self._sid = None
        self._login_once()

    def login(self) -> None:
        """Create a session now (otherwise the first call does)."""
        call_with_retry(self._login_once, what="session.create", node=self.node, policy=self.retry_policy)

    @property
    def has_session(self) -> bool:
        return self._sid is not None

    @property
    def connections(self) -> int:
        """How many connections this client opened (reads share a kept one: fewer than `requests`)."""
        return self._conns.opened

    def close_idle(self) -> None:
        """Close the connection kept for reads; the session stays (the next call opens a fresh one)."""
        self._conns.close()

    def logout(self) -> None:
        """Delete the session (best effort: an already expired session is fine) and close the kept connection.
        The delete goes on the kept connection when there is one (a lost reply to it changes nothing: the
        session ends either way, by this call or by its expiry)."""
        if self._sid is None:
            self.close_idle()
            return
        path = self._path("com/vmware/cis/session")
        try:
            self._raw("DELETE", path, None, {SESSION_HEADER: self._sid}, keep=True)
        except OSError:
            pass
        finally:
            self._sid = None
            self.close_idle()

    def __enter__(self) -> "ApplianceClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.logout()

    # -- system ------------------------------------------------------------------------------------------
    def version(self) -> ApplianceVersion:
        return self._call("GET", "appliance/system/version", "system.version", convert=lambda v: ApplianceVersion(
            str(v.get("version", "")), str(v.get("build", "")), str(v.get("product", "")), str(v.get("type", "")),
            str(v.get("install_time", "")), str(v.get("releasedate", "") or ""), str(v.get("summary", "") or "")))

    HEALTH_ITEMS = ("load", "mem", "storage", "swap", "database-storage", "software-packages")

    def health(self, items: Iterable[str] = HEALTH_ITEMS) -> Health:
        """Every item is asked; a 404 is an error naming the path (a skipped item would read as healthy)."""
        system = self._call("GET", "appliance/health/system", "health.system", expect=(str,))
        sub = tuple((item, str(self._call("GET", f"appliance/health/{item}", f"health.{item}", expect=(str,))))
                    for item in items)
        return Health(str(system), sub)

    def services(self) -> tuple[Service, ...]:
        return self._call("GET", "appliance/vmon/service", "vmon.services", expect=(list, dict),
                          convert=_services)

    # -- backup ------------------------------------------------------------------------------------------
    @staticmethod
    def _backup_job(v: dict) -> BackupJob:
        return BackupJob(str(v.get("id", "")), str(v.get("state", "")), int(v.get("progress") or 0),
                         _msgs(v.get("messages")), v.get("start_time"), v.get("end_time"))

    def backup_start(self, *, location_type: str, location: str, parts: Iterable[str] = ("common",),
                     location_user: str | None = None, location_password: Secret | str | None = None,
                     backup_password: Secret | str | None = None, comment: str = "") -> str:
        """Start a file-based backup job; returns its id. Not repeated after an ambiguous failure."""
        piece: dict[str, Any] = {"parts": list(parts), "location_type": location_type, "location": location}
        if location_user:
            piece["location_user"] = location_user
        lp, bp = as_secret(location_password), as_secret(backup_password)
        if lp:
            piece["location_password"] = lp.reveal()
        if bp:
            piece["backup_password"] = bp.reveal()
        if comment:
            piece["comment"] = comment
        return self._call("POST", "appliance/recovery/backup/job", "backup.start", body={"piece": piece},
                          idempotent=False, convert=lambda v: _text(v["id"]))

    def backup_job(self, job_id: str) -> BackupJob:
        return self._call("GET", f"appliance/recovery/backup/job/{quote(job_id, safe='')}", "backup.job",
                          convert=self._backup_job)

    def backup_jobs(self) -> tuple[str, ...]:
        return self._call("GET", "appliance/recovery/backup/job", "backup.jobs", expect=(list, NONE),
                          convert=lambda ids: tuple(_text(x) for x in ids or ()))

    def backup_cancel(self, job_id: str) -> None:
        self._call("POST", f"appliance/recovery/backup/job/{quote(job_id, safe='')}/cancel", "backup.cancel",
                   expect=(NONE, dict))

    # -- restore (only on a freshly deployed appliance in restore mode) -------------------------------------
    @staticmethod
    def _restore_piece(location_type: str, location: str, location_user: str | None,
                       location_password: Secret | str | None, backup_password: Secret | str | None,
                       sso_admin_user_name: str | None, sso_admin_user_password: Secret | str | None,
                       ignore_warnings: bool) -> dict:
        piece: dict[str, Any] = {"location_type": location_type, "location": location,
                                 "ignore_warnings": ignore_warnings}
        if location_user:
            piece["location_user"] = location_user
        for k, v in (("location_password", location_password), ("backup_password", backup_password),
                     ("sso_admin_user_password", sso_admin_user_password)):
            s = as_secret(v)
            if s:
                piece[k] = s.reveal()
        if sso_admin_user_name:
            piece["sso_admin_user_name"] = sso_admin_user_name
        return piece

    def restore_validate(self, *, location_type: str, location: str, location_user: str | None = None,
                         location_password: Secret | str | None = None, backup_password: Secret | str | None = None,
                         sso_admin_user_name: str | None = None,
                         sso_admin_user_password: Secret | str | None = None) -> RestoreValidation:
        piece = self._restore_piece(location_type, location, location_user, location_password, backup_password,
                                    sso_admin_user_name, sso_admin_user_password, False)
        return self._call("POST", "appliance/recovery/restore/validate", "restore.validate", body={"piece": piece},
                          convert=lambda v: RestoreValidation(str(v.get("status", "")), _msgs(v.get("messages"))))

    def restore_start(self, *, location_type: str, location: str, location_user: str | None = None,
                      location_password: Secret | str | None = None, backup_password: Secret | str | None = None,
                      sso_admin_user_name: str | None = None, sso_admin_user_password: Secret | str | None = None,
                      ignore_warnings: bool = False) -> RestoreJob:
        piece = self._restore_piece(location_type, location, location_user, location_password, backup_password,
                                    sso_admin_user_name, sso_admin_user_password, ignore_warnings)
        return self._call("POST", "appliance/recovery/restore/job", "restore.start", body={"piece": piece},
                          idempotent=False, convert=self._restore_job)

    @staticmethod
    def _restore_job(v: dict) -> RestoreJob:
        return RestoreJob(str(v.get("state", "")), int(v.get("progress") or 0), _msgs(v.get("messages")),
                          v.get("start_time"), v.get("end_time"))

    def restore_job(self) -> RestoreJob:
        return self._call("GET", "appliance/recovery/restore/job", "restore.job", convert=self._restore_job)

    # -- update (6.7+) -----------------------------------------------------------------------------------
    def _update_call(self, method: str, rest_path: str, what: str, **kw: Any) -> Any:
        try:
            return self._call(method, rest_path, what, **kw)
        except NotFound as exc:
            if "no appliance REST API" in exc.message:
                raise
            if rest_path in ("appliance/update", "appliance/update/pending") or "Not found:" in exc.message:
                raise Unsupported(f"no appliance update API on this node (6.7+ only; 6.5 is patched from the "
                                  f"VAMI or the appliance shell): {exc.message}", node=self.node, what=what,
                                  status=404) from exc
            raise

    def update_state(self) -> UpdateState:
        return self._update_call("GET", "appliance/update", "update.get", convert=lambda v: UpdateState(
            str(v.get("state", "")), str(v.get("version", "") or ""), v.get("latest_query_time"), _task(v.get("task"))))

    @staticmethod
    def _pending(v: dict, version: str = "") -> PendingUpdate:
        return PendingUpdate(str(v.get("version", version)), str(v.get("name", "")),
                             _msgs([v["description"]])[0] if v.get("description") else "",
                             str(v.get("update_type", "")), str(v.get("severity", "")),
                             str(v.get("priority", "")), v.get("release_date"), bool(v.get("reboot_required", True)),
                             int(v.get("size") or 0))

    def update_pending(self, source_type: str = "LOCAL_AND_ONLINE") -> tuple[PendingUpdate, ...]:
        if source_type not in SOURCE_TYPES:
            raise ValueError(f"source_type must be one of {SOURCE_TYPES}")
        return self._update_call("GET", "appliance/update/pending", "update.pending",
                                 query={"source_type": source_type}, expect=(list, NONE),
                                 convert=lambda raw: tuple(self._pending(v) for v in raw or ()))

    def update_precheck(self, version: str) -> PrecheckResult:
        def result(v: dict) -> PrecheckResult:
            issues = v.get("issues") or {}
            qs = tuple(str(q.get("data_item", "")) for q in v.get("questions") or () if isinstance(q, dict))
            return PrecheckResult(version, v.get("check_time"), _issue_texts(issues.get("errors")),
                                  _issue_texts(issues.get("warnings")), _issue_texts(issues.get("info")), qs,
                                  bool(v.get("reboot_required", True)))
        return self._update_call("POST", f"appliance/update/pending/{quote(version, safe='')}", "update.precheck",
                                 query={"action": "precheck"}, convert=result)

    def _user_data(self, user_data: Mapping[str, Secret | str] | None) -> Any:
        plain = {k: (v.reveal() if isinstance(v, Secret) else str(v)) for k, v in (user_data or {}).items()}
        for v in (user_data or {}).values():
            as_secret(v)  # registered for scrubbing
        if self.api_style == "api":
            return plain
        return [{"key": k, "value": v} for k, v in plain.items()]  # /rest map encoding

    def update_stage(self, version: str) -> None:
        self._update_call("POST", f"appliance/update/pending/{quote(version, safe='')}", "update.stage",
                          query={"action": "stage"}, idempotent=False, expect=(NONE, dict))

    def update_validate(self, version: str, user_data: Mapping[str, Secret | str]) -> tuple[str, ...]:
        return self._update_call("POST", f"appliance/update/pending/{quote(version, safe='')}", "update.validate",
                                 query={"action": "validate"}, body={"user_data": self._user_data(user_data)},
                                 expect=(NONE, dict), convert=lambda v: _issue_texts((v or {}).get("errors")))

    def update_install(self, version: str, user_data: Mapping[str, Secret | str]) -> None:
        self._update_call("POST", f"appliance/update/pending/{quote(version, safe='')}", "update.install",
                          query={"action": "install"}, body={"user_data": self._user_data(user_data)},
                          idempotent=False, expect=(NONE, dict))

    def update_staged(self) -> StagedUpdate | None:
        """The staged update, or None when nothing is staged."""
        try:
            return self._update_call("GET", "appliance/update/staged", "update.staged", convert=lambda v: StagedUpdate(
                str(v.get("version", "")), bool(v.get("staging_complete", False)), str(v.get("name", ""))))
        except NotFound:
            return None

    # -- topology (converged 7.0+ vCenters) -----------------------------------------------------------------
    def psc_decommission(self, hostname: str, sso_user: str, sso_password: Secret | str,
                         only_precheck: bool = False) -> str:
        """Start decommissioning the external PSC `hostname` from this converged vCenter: the task id.
        VMware's appliance management programming guide, "Decommissioning Nodes" (docs/vsphere-facts-7-8.md)."""
        body = {"spec": {"sso_admin_username": sso_user, "sso_admin_password": as_secret(sso_password).reveal()},
                "only_precheck": only_precheck}
        return self._call("POST", f"vcenter/topology/pscs/{quote(hostname, safe='')}", "topology.pscs.decommission",
                          query={"action": "decommission", "vmw-task": "true"}, body=body, idempotent=False,
                          expect=(str,))

    def topology_nodes(self) -> tuple[TopologyNode, ...]:
        """The vCenters and PSCs of this vCenter's SSO domain (a decommissioned PSC is no longer one)."""
        return self._call("GET", "vcenter/topology/nodes", "topology.nodes.list", expect=(list,),
                          convert=lambda raw: tuple(TopologyNode(str(n["node"]).lower(), str(n["type"]),
                                                                 str(n.get("client_affinity") or "").lower())
                                                    for n in raw))

    def task(self, task_id: str) -> CisTask:
        return self._call("GET", f"cis/tasks/{quote(task_id, safe='')}", "cis.tasks.get", convert=lambda v: CisTask(
            task_id, str(v["status"]), _msgs((v.get("error") or {}).get("messages"))))

    # -- waiting -----------------------------------------------------------------------------------------
    def wait_job(self, get_fn: Callable[[], J], *, deadline: float, on_progress: Callable[[J], None] | None = None,
                 done: Callable[[J], bool] | None = None, what: str = "job", initial: float = 0.5,
                 factor: float = 1.6, cap: float = 10.0, sleep: Callable[[float], None] = stop.sleep,
                 clock: Callable[[], float] = time.monotonic) -> J:
        return wait_job(get_fn, deadline=deadline, on_progress=on_progress, done=done, what=what, node=self.node,
                        initial=initial, factor=factor, cap=cap, sleep=sleep, clock=clock)


def wait_job(get_fn: Callable[[], J], *, deadline: float, on_progress: Callable[[J], None] | None = None,
             done: Callable[[J], bool] | None = None, what: str = "job", node: str = "", initial: float = 0.5,
             factor: float = 1.6, cap: float = 10.0, sleep: Callable[[float], None] = stop.sleep,
             clock: Callable[[], float] = time.monotonic) -> J:
    """Poll `get_fn()` with capped exponential backoff until `done(job)` (default: `job.done`), within an
    overall `deadline` (seconds). Emits a `job.progress` event (percent, elapsed, node) on each change.
    Transient failures of a poll (503 while the appliance reboots, a refused connection) are tolerated until
    the deadline; permanent ones are raised, and so is a garbage answer repeated as many times in a row as
    the retry policy has attempts (a rebooting node refuses or answers 503; it does not answer garbage)."""
    log = get_logger("vcwave.appliance")
    is_done = done or (lambda j: bool(getattr(j, "done")))
    start = clock()
    pace = Backoff(initial, cap, factor)
    last: tuple | None = None
    garbage = 0
    while True:
        elapsed = clock() - start
        try:
            with polling():
                job = get_fn()
            garbage = 0
        except TransientError as exc:
            garbage = garbage + 1 if isinstance(exc, BadAnswer) else 0
            if garbage >= default_policy().attempts:
                raise
            RETRIES.add(f"{what}.poll")
            log.info("job.poll_failed", node=node, what=what, elapsed=round(elapsed, 2), deadline_s=round(deadline),
                     error=exc.message)
            job = None
        if job is not None:
            key = (getattr(job, "state", None), getattr(job, "progress", None))
            if key != last:
                last = key
                if key != (None, None):  # a job that reports neither state nor percent has no progress to show
                    log.info("job.progress", node=node, what=what, state=key[0], percent=key[1],
                             elapsed=round(elapsed, 2), deadline_s=round(deadline))
                if on_progress:
                    on_progress(job)
            if is_done(job):
                return job
        remaining = deadline - (clock() - start)
        if remaining <= 0:
            raise DeadlineExceeded(f"{what} not finished after {deadline:.0f}s (last state {last})", node=node,
                                   what=what)
        sleep(min(pace.next(), remaining))

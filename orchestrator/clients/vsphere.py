"""vSphere (vim25) client over pyVmomi: identity facts, the PSC a vCenter points at, an inventory fingerprint,
and snapshots/power of appliance VMs in a management vCenter. Knows nothing of waves.

Why this shape:
- Round trips are the cost on a WAN: `fingerprint()` and `vm_power_states()` use ONE `RetrievePropertiesEx`
  over a ContainerView (plus continuation pages), never lazy attribute walks (one round trip per property).
  `round_trips` counts the SOAP requests of this client's stub so `invoke bench.facts` can print it.
- Tasks are awaited with a private PropertyCollector's `WaitForUpdatesEx` (server-side long poll), not polling.
- TLS: verification on by default (`verify=True` or a CA bundle path), or a pinned SHA-256 thumbprint checked
  by the SSL context itself right after each handshake (pyVmomi's own `thumbprint` is only consulted after
  normal verification fails, so it is never passed: the pin must hold before `Login` carries the password);
  `verify=False` only when passed explicitly, logged as `tls.verification_disabled`. pyVmomi itself skips
  verification for 'localhost'/'127.0.0.1' when no context is given, so a context is ALWAYS passed.
  Plain http only for loopback hosts (the lab's vcsim).
- Every answer is read within a size cap and a total deadline (clients/answers.py), the login's too: the
  steps of pyVmomi's `SmartConnect` are run here with the bounded stub (see `_smart_connect`).
- An expired session (vim.fault.NotAuthenticated) logs in again once on the same stub, so ManagedObject
  references held by callers stay valid; every call goes through `retry.call_with_retry`.
"""
from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass
from xml.etree import ElementTree
from xml.etree.ElementTree import ParseError
from xml.parsers.expat import ExpatError
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import urlsplit

from pyVmomi import SoapStubAdapter, vim, vmodl
from pyVmomi.VmomiSupport import GetServiceVersions, versionIdMap

from orchestrator.clients import tls
from orchestrator.clients.answers import bounded_response
from orchestrator.clients.keepalive import dropped
from orchestrator.clients.retry import (BadAnswer, BadRequest, ClientError, DeadlineExceeded, NotFound, PermanentError,
                                        RetryPolicy, SessionExpired, Unauthorized, call_with_retry, classify)
from orchestrator.log import get_logger
from orchestrator.secrets import Secret, as_secret

T = TypeVar("T")

MAX_BODY = 64 * 1024 * 1024  # a RetrievePropertiesEx page of a large inventory is a few MB; 64 MB is garbage
VERSIONS_MAX_BODY = 1024 * 1024  # vimServiceVersions.xml is a few KB
SSO_KEYS = ("config.vpxd.sso.admin.uri", "config.vpxd.sso.sts.uri", "config.vpxd.sso.groupcheck.uri")


@dataclass(frozen=True)
class About:
    version: str
    build: str
    api_version: str
    instance_uuid: str
    full_name: str


@dataclass(frozen=True)
class PscPointer:
    admin_uri: str
    sts_uri: str
    host: str
    groupcheck_uri: str = ""


@dataclass(frozen=True)
class InventoryFingerprint:
    """Morefs of hosts, VMs and datastores (sorted). A rebuilt vCenter has new morefs for the same names."""

    hosts: tuple[str, ...]
    vms: tuple[str, ...]
    datastores: tuple[str, ...]
    counts: tuple[tuple[str, int], ...]
    names: tuple[tuple[str, str], ...] = ()   # (moref, name)

    def count(self, kind: str) -> int:
        return dict(self.counts).get(kind, 0)


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    description: str
    moref: str
    create_time: str
    children: tuple["SnapshotInfo", ...] = ()


def _fault_text(exc: BaseException) -> str:
    msg = getattr(exc, "msg", None) or getattr(exc, "localizedMessage", None) or ""
    return f"{type(exc).__name__}: {msg}".rstrip(": ") if msg else type(exc).__name__


def map_fault(exc: BaseException, *, node: str = "", what: str = "") -> BaseException:
    """vim/vmodl faults -> vcwave client errors; transport errors via retry.classify."""
    if isinstance(exc, ClientError):
        return exc
    if isinstance(exc, vim.fault.NotAuthenticated):
        return SessionExpired(f"session expired: {_fault_text(exc)}", node=node, what=what)
    if isinstance(exc, (vim.fault.InvalidLogin, vim.fault.NoPermission)):
        return Unauthorized(_fault_text(exc), node=node, what=what)
    if isinstance(exc, (vmodl.fault.ManagedObjectNotFound, vim.fault.NotFound)):
        return NotFound(_fault_text(exc), node=node, what=what)
    if isinstance(exc, (vmodl.fault.InvalidArgument, vim.fault.InvalidName)):
        return BadRequest(_fault_text(exc), error_type=type(exc).__name__, node=node, what=what)
    if isinstance(exc, vmodl.MethodFault):
        return PermanentError(_fault_text(exc), node=node, what=what)
    if isinstance(exc, (ParseError, ExpatError)):  # an HTML page, truncated or non-SOAP XML with a 200
        return BadAnswer(f"answer is not the SOAP/XML of the vSphere API ({exc})", node=node,
                         what=what if what.endswith("/sdk") else f"{what} /sdk")
    return classify(exc, node=node, what=what)


def supported_api_version(document: bytes) -> str | None:
    """The first of pyVmomi's vim25 versions (newest first) that a `vimServiceVersions.xml` lists, as
    pyVim.connect's private `__VersionIsSupported` decides; None for a document of something else."""
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError:
        return None
    if root.tag != "namespaces" or root.get("version") != "1.0":
        return None
    listed = {(v.text or "").strip() for ns in root.findall("namespace")
              for v in (*ns.findall("version"), *ns.findall("priorVersions/version"))}
    return next((v for v in GetServiceVersions("vim25") if versionIdMap.get(v) in listed), None)


def _register_session(stub: Any) -> None:
    """Register the bare SOAP session id for scrubbing (the cookie value, not the whole `Set-Cookie` line:
    registering `"<id>"; Path=/; HttpOnly` matched nothing, so ids reached the cassettes)."""
    session_id = stub.GetSessionId() if hasattr(stub, "GetSessionId") else ""
    if session_id:
        Secret(session_id)


class VSphereClient:
    """One vim25 endpoint (a vCenter of the domain, or a management vCenter)."""

    def __init__(self, host: str, port: int, user: str, password: Secret | str, *, scheme: str = "https",
                 verify: bool | str = True, thumbprint: str | None = None, node: str = "",
                 timeout: float = 60.0, retry_policy: RetryPolicy | None = None, total_timeout: float = 300.0
                 ) -> None:
        self.host = host
        self.port = int(port)
        self.user = user
        self._password = as_secret(password)
        self.scheme = scheme
        self.node = node or host
        tls.check_scheme(scheme, host, node=self.node)
        self.verify = verify
        self.thumbprint = thumbprint
        self.timeout = timeout
        self.total_timeout = total_timeout  # per SOAP request; WaitForUpdatesEx long-polls up to 60 s
        self.retry_policy = retry_policy
        self._si: Any = None
        self._content: Any = None
        self._content_fresh = False  # `_content` was read by the last connect or login and not yet used by about()
        self.round_trips = 0
        self._log = get_logger("vcwave.vsphere")

    # -- connection ------------------------------------------------------------------------------------
    def _count(self, req: Any) -> Any:
        self.round_trips += 1
        return req

    def _smart_connect(self) -> Any:
        """pyVmomi's `SmartConnect`, done here so that every answer of the login is bounded too: SmartConnect
        reads `vimServiceVersions.xml` over a connection with no timeout and parses it whole, and runs
        `RetrieveServiceContent` and `Login` before a caller can reach its stub. Here the version document
        is read through the bounded reader, and the stub gets the bounded connection class before its first
        request; an answer that is too big, too slow or not SOAP names the node and the call."""
        ctx = (tls.ssl_context(self.verify, self.thumbprint, host=self.host, node=self.node, client="vsphere")
               if self.scheme == "https" else None)
        call = "GET /sdk/vimServiceVersions.xml"
        conn = None
        try:
            version, conn = self._api_version(ctx)
            stub = SoapStubAdapter(host=self.host, port=self.port if ctx else -self.port, version=version,
                                   path="/sdk", sslContext=ctx, httpConnectionTimeout=self.timeout,
                                   acceptCompressedResponses=False)  # a gzip body would escape the size cap
            self._bound_answers(stub)
            self._pool(stub, conn)
            conn = None
            si = vim.ServiceInstance("ServiceInstance", stub)
            call = "RetrieveServiceContent /sdk"
            content = si.RetrieveContent()
            call = "Login /sdk"
            content.sessionManager.Login(self.user, self._password.reveal(), None)
        except vim.fault.InvalidLogin as exc:
            raise Unauthorized(f"login refused for user {self.user}: {_fault_text(exc)}", node=self.node,
                               what="connect") from exc
        except BadAnswer as exc:  # the bounded reader knows the endpoint; the call is known here
            raise BadAnswer(exc.message, node=self.node, what=f"connect {call}") from exc
        except ClientError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyVmomi's deserializer fails on garbage with any error
            mapped = map_fault(exc, node=self.node, what=f"connect {call}")
            if mapped is exc:  # not a transport fault: an answer pyVmomi could not read as the call's result
                raise BadAnswer(f"answer is not the vSphere API's ({type(exc).__name__}: {exc})", node=self.node,
                                what=f"connect {call}") from exc
            raise mapped from exc
        finally:
            if conn is not None:
                conn.close()
        self._content = content  # si.content would cost a round trip on every access
        self._content_fresh = True
        stub.requestModifierList.append(self._count)
        _register_session(stub)
        return si

    def _api_version(self, ctx: ssl.SSLContext | None) -> tuple[str, http.client.HTTPConnection]:
        """The newest vim25 version both pyVmomi and the server speak, from the server's
        `/sdk/vimServiceVersions.xml`, read within the size cap and the deadline; and the connection it came
        on, open (the caller closes it, or gives it to the stub: `_pool`)."""
        path = "/sdk/vimServiceVersions.xml"
        conn = (http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=ctx) if ctx
                else http.client.HTTPConnection(self.host, self.port, timeout=self.timeout))
        conn.response_class = self._bounded(f"GET {path}", VERSIONS_MAX_BODY)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            status, body = resp.status, resp.read()
            version = supported_api_version(body) if status == 200 else None
            if version is None:
                raise BadAnswer(f"answer is not the vSphere API's (HTTP {status}, no vim25 version pyVmomi "
                                f"speaks)", node=self.node, what=f"connect GET {path}")
        except BaseException:
            conn.close()
            raise
        return version, conn

    def _pool(self, stub: Any, conn: http.client.HTTPConnection) -> None:
        """The version document's connection carries the login and the calls after it (pyVmomi's pool), so a
        connect costs one TLS handshake, not two; unless the server closed it (`Connection: close`) or left
        bytes on it, which a fresh connection then replaces."""
        bounded = getattr(stub.scheme, "response_class", None)  # every SOAP answer bounded (`_bound_answers`)
        if bounded is None or dropped(conn.sock):
            conn.close()
            return
        conn.response_class = bounded
        stub.ReturnConnection(conn)

    def _bounded(self, where: str, max_body: int) -> type:
        return bounded_response(self.node, where, max_body=max_body, total=self.total_timeout,
                                per_read=self.timeout)

    def _bound_answers(self, stub: Any) -> None:
        """Every SOAP answer is read within a size cap and a deadline (orchestrator.clients.answers):
        pyVmomi builds its connections from `stub.scheme`, so a subclass with a bounded response class is
        swapped in and the pooled connections dropped."""
        scheme = getattr(stub, "scheme", None)
        if isinstance(scheme, type) and issubclass(scheme, http.client.HTTPConnection):
            stub.scheme = type(scheme.__name__, (scheme,), {"response_class": self._bounded("/sdk", MAX_BODY)})
            stub.DropConnections()

    def connect(self) -> "VSphereClient":
        if self._si is None:
            self._si = call_with_retry(self._smart_connect, what="connect", node=self.node,
                                       policy=self.retry_policy)
            self._log.debug("vsphere.connected", node=self.node, host=self.host)
        return self

    def _relogin(self) -> None:
        """A lost session means the vCenter restarted (a reboot, a snapshot revert, the installer's address
        swap): its service content - `about` with version, build and instance UUID - is read again, never
        kept from before the restart."""
        self._content = content = self._si.RetrieveContent()
        self._content_fresh = True
        content.sessionManager.Login(userName=self.user, password=self._password.reveal())
        _register_session(self._si._stub)
        self._log.info("vsphere.relogged_in", node=self.node)

    def disconnect(self) -> None:
        """Log out (best effort) and drop the connections. Not pyVim's `Disconnect`: it reads the whole
        service content again only to reach the session manager this client already holds."""
        if self._si is not None:
            try:
                self._content.sessionManager.Logout()
            except Exception:  # noqa: BLE001 - best effort: a restarted vCenter has forgotten the session anyway
                pass
            self._si._stub.DropConnections()
            self._si = None
            self._content = None

    def __enter__(self) -> "VSphereClient":
        return self.connect()

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()

    @property
    def content(self) -> Any:
        if self._si is None:
            self.connect()
        return self._content

    def _call(self, fn: Callable[[], T], what: str, idempotent: bool = True) -> T:
        self.connect()

        def once() -> T:
            try:
                return fn()
            except BaseException as exc:  # noqa: BLE001
                mapped = map_fault(exc, node=self.node, what=what)
                if mapped is exc:
                    raise
                raise mapped from exc
        return call_with_retry(once, what=what, node=self.node, idempotent=idempotent, relogin=self._relogin,
                               policy=self.retry_policy)

    # -- facts ----------------------------------------------------------------------------------------------
    def about(self) -> About:
        """The vCenter's `about` (version, build, instance UUID) as it answers now: the service content read
        by this connect or login, else read again. A client is kept across a command's looks and steps, and a
        restarted vCenter (an upgrade, a revert) must never be reported with the version or instance UUID it
        had before: the session may not have been refused yet when this is asked."""
        self.connect()
        if self._content_fresh:
            self._content_fresh = False
        else:
            self._content = self._call(lambda: self._si.RetrieveContent(), "about")
        a = self._content.about
        return About(str(a.version), str(a.build), str(a.apiVersion), str(a.instanceUuid or ""), str(a.fullName))

    def sso_psc(self) -> PscPointer | None:
        """The PSC this vCenter uses, from `config.vpxd.sso.*` (None if the settings are absent)."""
        def q() -> dict[str, str]:
            try:
                opts = self.content.setting.QueryOptions(name="config.vpxd.sso.")
            except vim.fault.InvalidName:
                opts = []
            return {o.key: str(o.value) for o in opts or () if o.key in SSO_KEYS}
        values = self._call(q, "sso_psc")
        admin = values.get(SSO_KEYS[0], "")
        if not admin:
            return None
        return PscPointer(admin, values.get(SSO_KEYS[1], ""), (urlsplit(admin).hostname or "").lower(),
                          values.get(SSO_KEYS[2], ""))

    def _retrieve(self, types: Iterable[type], paths: Iterable[str]) -> list[tuple[Any, dict[str, Any]]]:
        """ONE RetrievePropertiesEx (plus continuation pages) over a ContainerView of `types`."""
        content = self.content
        types = list(types)
        paths = list(paths)
        view = content.viewManager.CreateContainerView(content.rootFolder, types, True)
        try:
            pc = content.propertyCollector
            traversal = vmodl.query.PropertyCollector.TraversalSpec(
                name="traverseView", path="view", skip=False, type=vim.view.ContainerView)
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
                propSet=[vmodl.query.PropertyCollector.PropertySpec(type=t, pathSet=paths) for t in types])
            out: list[tuple[Any, dict[str, Any]]] = []
            result = pc.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
            while result is not None:
                for oc in result.objects or ():
                    out.append((oc.obj, {p.name: p.val for p in oc.propSet or ()}))
                if not result.token:
                    break
                result = pc.ContinueRetrievePropertiesEx(result.token)
            return out
        finally:
            try:
                view.DestroyView()
            except Exception:  # noqa: BLE001 - the view dies with the session anyway
                pass

    def _props(self, obj: Any, paths: Iterable[str]) -> dict[str, Any]:
        """Properties of ONE object in one RetrievePropertiesEx (unset properties are absent, not an error)."""
        pcm = vmodl.query.PropertyCollector
        spec = pcm.FilterSpec(objectSet=[pcm.ObjectSpec(obj=obj, skip=False)],
                              propSet=[pcm.PropertySpec(type=type(obj), pathSet=list(paths))])
        result = self.content.propertyCollector.RetrievePropertiesEx([spec], pcm.RetrieveOptions())
        out: dict[str, Any] = {}
        for oc in (result.objects if result else None) or ():
            out.update({p.name: p.val for p in oc.propSet or ()})
        return out

    def fingerprint(self) -> InventoryFingerprint:
        """Hosts, VMs and datastores by moref, in a constant number of round trips."""
        def run() -> InventoryFingerprint:
            objs = self._retrieve([vim.HostSystem, vim.VirtualMachine, vim.Datastore], ["name"])
            kinds: dict[str, list[str]] = {"hosts": [], "vms": [], "datastores": []}
            names = []
            for obj, props in objs:
                kind = ("hosts" if isinstance(obj, vim.HostSystem) else
                        "vms" if isinstance(obj, vim.VirtualMachine) else "datastores")
                kinds[kind].append(obj._moId)
                names.append((obj._moId, str(props.get("name", ""))))
            return InventoryFingerprint(tuple(sorted(kinds["hosts"])), tuple(sorted(kinds["vms"])),
                                        tuple(sorted(kinds["datastores"])),
                                        tuple((k, len(v)) for k, v in kinds.items()), tuple(sorted(names)))
        return self._call(run, "fingerprint")

    # -- appliance VMs (management vCenter) -------------------------------------------------------------------
    def vm_power_states(self, names: Iterable[str] | None = None) -> dict[str, str]:
        """name -> poweredOn|poweredOff|suspended, for the given VM names (all if None), one retrieval."""
        wanted = None if names is None else set(names)

        def run() -> dict[str, str]:
            out = {}
            for _obj, props in self._retrieve([vim.VirtualMachine], ["name", "runtime.powerState"]):
                n = str(props.get("name", ""))
                if wanted is None or n in wanted:
                    out[n] = str(props.get("runtime.powerState", ""))
            return out
        return self._call(run, "vm_power_states")

    def vm_by_name(self, name: str) -> Any:
        def run() -> Any:
            hits = [o for o, p in self._retrieve([vim.VirtualMachine], ["name"]) if p.get("name") == name]
            if not hits:
                raise NotFound(f"no VM named {name!r} in this vCenter", node=self.node, what="vm_by_name")
            if len(hits) > 1:
                raise BadRequest(f"{len(hits)} VMs are named {name!r}; cannot choose", node=self.node,
                                 what="vm_by_name")
            return hits[0]
        return self._call(run, "vm_by_name")

    def _vm(self, vm: Any) -> Any:
        return self.vm_by_name(vm) if isinstance(vm, str) else vm

    def wait_task(self, task: Any, *, deadline: float = 3600.0, what: str = "task") -> Any:
        """Wait for a task with WaitForUpdatesEx on a private PropertyCollector; returns info.result."""
        pcm = vmodl.query.PropertyCollector
        collector = self.content.propertyCollector.CreatePropertyCollector()
        try:
            collector.CreateFilter(pcm.FilterSpec(
                objectSet=[pcm.ObjectSpec(obj=task)],
                propSet=[pcm.PropertySpec(type=vim.Task, pathSet=["info.state", "info.error", "info.result",
                                                                  "info.progress"])]), partialUpdates=False)
            start = time.monotonic()
            version, state, error, result = "", None, None, None
            while True:
                remaining = deadline - (time.monotonic() - start)
                if remaining <= 0:
                    raise DeadlineExceeded(f"{what} not finished after {deadline:.0f}s", node=self.node, what=what)
                upd = collector.WaitForUpdatesEx(version, pcm.WaitOptions(maxWaitSeconds=max(1, min(int(remaining), 60))))
                if upd is None:
                    continue
                version = upd.version
                for fs in upd.filterSet or ():
                    for os_ in fs.objectSet or ():
                        for ch in os_.changeSet or ():
                            if ch.name == "info.state":
                                state = ch.val
                            elif ch.name == "info.error":
                                error = ch.val
                            elif ch.name == "info.result":
                                result = ch.val
                            elif ch.name == "info" and ch.val is not None:
                                state, error, result = ch.val.state, ch.val.error, ch.val.result
                if state in (vim.TaskInfo.State.success, "success"):
                    return result
                if state in (vim.TaskInfo.State.error, "error"):
                    raise PermanentError(f"{what} failed: {_fault_text(error) if error else 'unknown error'}",
                                         node=self.node, what=what)
        finally:
            try:
                collector.DestroyPropertyCollector()
            except Exception:  # noqa: BLE001
                pass

    def _snapshots(self, vm: Any) -> list[Any]:
        snap = self._props(vm, ["snapshot"]).get("snapshot")
        out: list[Any] = []

        def walk(trees: Any) -> None:
            for t in trees or ():
                out.append(t)
                walk(t.childSnapshotList)
        walk(snap.rootSnapshotList if snap else ())
        return out

    def snapshots(self, vm: Any) -> tuple[SnapshotInfo, ...]:
        def conv(t: Any) -> SnapshotInfo:
            return SnapshotInfo(t.name, t.description or "", t.snapshot._moId, str(t.createTime),
                                tuple(conv(c) for c in t.childSnapshotList or ()))
        v = self._vm(vm)

        def run() -> tuple[SnapshotInfo, ...]:
            snap = self._props(v, ["snapshot"]).get("snapshot")
            return tuple(conv(t) for t in (snap.rootSnapshotList if snap else ()))
        return self._call(run, "snapshots")

    def _find_snapshot(self, vm: Any, name: str) -> Any:
        hits = [t for t in self._snapshots(vm) if t.name == name]
        if not hits:
            raise NotFound(f"VM {vm._moId} has no snapshot named {name!r}", node=self.node, what="snapshot")
        if len(hits) > 1:
            raise BadRequest(f"VM {vm._moId} has {len(hits)} snapshots named {name!r}", node=self.node,
                             what="snapshot")
        return hits[0].snapshot

    def create_snapshot(self, vm: Any, name: str, description: str = "", *, memory: bool = False,
                        quiesce: bool = False, deadline: float = 3600.0) -> str:
        """Snapshot a VM (cold or hot); returns the snapshot moref id."""
        v = self._vm(vm)
        task = self._call(lambda: v.CreateSnapshot_Task(name=name, description=description, memory=memory,
                                                        quiesce=quiesce), "snapshot.create", idempotent=False)
        snap = self._call(lambda: self.wait_task(task, deadline=deadline, what="snapshot.create"), "snapshot.wait")
        return snap._moId if snap is not None else ""

    def revert_snapshot(self, vm: Any, snapshot_name: str, *, deadline: float = 3600.0) -> None:
        v = self._vm(vm)
        snap = self._call(lambda: self._find_snapshot(v, snapshot_name), "snapshot.find")
        task = self._call(lambda: snap.RevertToSnapshot_Task(), "snapshot.revert", idempotent=False)
        self._call(lambda: self.wait_task(task, deadline=deadline, what="snapshot.revert"), "snapshot.wait")

    def remove_snapshot(self, vm: Any, snapshot_name: str, *, remove_children: bool = False,
                        deadline: float = 3600.0) -> None:
        v = self._vm(vm)
        snap = self._call(lambda: self._find_snapshot(v, snapshot_name), "snapshot.find")
        task = self._call(lambda: snap.RemoveSnapshot_Task(removeChildren=remove_children), "snapshot.remove",
                          idempotent=False)
        self._call(lambda: self.wait_task(task, deadline=deadline, what="snapshot.remove"), "snapshot.wait")

    def _power(self, vm: Any, want: str, method: str, deadline: float) -> None:
        v = self._vm(vm)
        if self._call(lambda: str(self._props(v, ["runtime.powerState"]).get("runtime.powerState")),
                      "vm.power_state") == want:
            return

        def start() -> Any:
            try:
                return getattr(v, method)()
            except vim.fault.InvalidPowerState:
                return None  # already there (raced)
        task = self._call(start, f"vm.{method}", idempotent=False)
        if task is not None:
            self._call(lambda: self.wait_task(task, deadline=deadline, what=f"vm.{method}"), "vm.power_wait")

    def power_on(self, vm: Any, *, deadline: float = 1800.0) -> None:
        self._power(vm, "poweredOn", "PowerOnVM_Task", deadline)

    def power_off(self, vm: Any, *, deadline: float = 1800.0) -> None:
        self._power(vm, "poweredOff", "PowerOffVM_Task", deadline)

    def destroy_vm(self, vm: Any, *, deadline: float = 1800.0) -> None:
        """Delete a powered-off VM and its files (`Destroy_Task`). Not retried blindly: a lost reply is
        answered by asking again whether the VM is still there."""
        v = self._vm(vm)
        task = self._call(lambda: v.Destroy_Task(), "vm.destroy", idempotent=False)
        self._call(lambda: self.wait_task(task, deadline=deadline, what="vm.destroy"), "vm.destroy_wait")


__all__ = ["About", "PscPointer", "InventoryFingerprint", "SnapshotInfo", "VSphereClient", "map_fault"]

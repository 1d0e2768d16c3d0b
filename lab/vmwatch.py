"""The lab follows what happens to the appliance VMs in the management vCenter, as real appliances would.

A real node *is* its appliance VM: powered off, it is down; reverted to a snapshot, it is back at the
version, identity and data it had when the snapshot was taken; when the installer's new appliance is
off and the kept source is on, the source answers again. vcwave drives these through vim25 only, so the
twin must notice them there: this watcher reads the management vcsim's TaskManager.recentTask (what a
vCenter's own "Recent Tasks" shows) and applies finished CreateSnapshot/RevertToSnapshot/PowerOn/PowerOff
tasks to the lab state. Polling is fine here: this is the lab, not the product; but an idle lab polling
10 times a second (two SOAP calls each) cost ~30 ms of CPU a second in the daemon and ~10 in the management
vcsim, more than everything else an idle lab does. So between tasks the watcher blocks in the property
collector's WaitForUpdatesEx on `recentTask` (its own session; it returns when a task is added, or after
MAX_WAIT s) and polls only then, and every `interval` while a task it saw is still running. The poll after
an empty wait is load-bearing: vcsim's WaitForUpdatesEx on `recentTask` does not report every task (polling
only after a reported change missed snapshot reverts: rollbacks found a node still at its new version), so
MAX_WAIT stays short.
"""
from __future__ import annotations

import copy
import threading
from typing import Any

from pyVmomi import vim, vmodl

# `psc`: a converged vCenter embeds SSO (None); reverted to a pre-converge snapshot it uses its PSC again.
PERSONA_KEYS = ("version", "build", "instance_uuid", "moref_salt", "install_time", "patched", "data", "broken", "psc")


def persona_of(node: dict, which: str) -> dict | None:
    """The identity carried by the node's current VM ('current') or its kept installer source ('previous')."""
    if which == "current":
        return {k: copy.deepcopy(node.get(k)) for k in PERSONA_KEYS}
    prev = node.get("previous")
    return {k: copy.deepcopy(prev.get(k)) for k in PERSONA_KEYS} if prev else None


def which_vm(node: dict, vm_name: str) -> str | None:
    if node.get("vm", {}).get("name") == vm_name:
        return "current"
    prev = node.get("previous") or {}
    if prev.get("vm", {}).get("name") == vm_name:
        return "previous"
    return None


MAX_WAIT = 1  # seconds a WaitForUpdatesEx may block: the longest a stopped lab's watcher lingers


class VmWatcher:
    """One thread per management vcsim."""

    def __init__(self, lab: Any, mgmt_name: str, interval: float = 0.1) -> None:
        self.lab, self.mgmt, self.interval = lab, mgmt_name, interval
        self._parked = threading.Event()
        self._collector: Any = None  # the thread's own property collector, filtering taskManager.recentTask
        self.seen: set[str] = set()
        self.snapshots: dict[str, tuple[str, dict]] = {}  # snapshot moref -> (vm name, persona)
        self._polling = threading.Lock()  # one poll at a time: a task is applied once, in the order it ran
        self._thread = threading.Thread(target=self._loop, name=f"lab-vmwatch-{mgmt_name}", daemon=True)

    def start(self) -> "VmWatcher":
        self._prime()
        self._thread.start()
        return self

    def _si(self):
        return self.lab._mgmt(self.mgmt)[1]

    def _prime(self) -> None:
        with self.lab._mgmt_lock:
            tm = self._si().content.taskManager
            self.seen = {t._moId for t in tm.recentTask or ()}
        self.snapshots.update(self.lab.state.data.setdefault("snapshot_personas", {}).get(self.mgmt, {}))

    def park(self) -> None:
        """Stop the thread's own polls (a test then runs poll() exactly where it wants it)."""
        self._parked.set()

    def _loop(self) -> None:
        version: str | None = None
        while not self.lab._stop.is_set():
            try:
                if self._parked.is_set() or self.poll():
                    self.lab._stop.wait(self.interval)  # parked, or a task still running: look again shortly
                else:
                    version = self._wait_for_tasks(version)
            except Exception as exc:  # keep watching; the daemon log says what went wrong
                self._collector, version = None, None
                if not self.lab._stop.is_set():  # a stopping lab's vcsim going away is no news
                    self.lab.log(f"vmwatch {self.mgmt}: {type(exc).__name__}: {exc}")
                self.lab._stop.wait(self.interval)

    def _wait_for_tasks(self, version: str | None) -> str:
        """Block until the management vCenter's recentTask changes after `version` (at most MAX_WAIT s); the
        version to wait from next. The first call only reads the version: the poll that follows it sees what
        happened before, a wait from it returns at once for what happens after (no task is missed)."""
        if self._collector is None or version is None:
            content = self.lab.mgmt_session(self.mgmt).RetrieveContent()
            self._collector = content.propertyCollector.CreatePropertyCollector()
            self._collector.CreateFilter(vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=content.taskManager, skip=False)],
                propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.TaskManager, pathSet=["recentTask"])]),
                True)
            version = ""
        res = self._collector.WaitForUpdatesEx(version, vmodl.query.PropertyCollector.WaitOptions(
            maxWaitSeconds=MAX_WAIT))
        return res.version if res is not None else version

    def poll(self) -> bool:
        """Apply every finished task not seen yet; True when a task it saw is still running. Also called by the
        lab itself (see Lab.follow_vms), so that a control operation answers only once its own power
        operations have reached the node."""
        with self._polling:
            return self._poll()

    def _poll(self) -> bool:
        with self.lab._mgmt_lock:
            si = self._si()
            tm = si.content.taskManager
            fresh = [t for t in (tm.recentTask or ()) if t._moId not in self.seen]
            if not fresh:
                return False
            infos = self._task_infos(si, fresh)
            vm_names = {vm._moId: vm.name for vm in self._vms(si)} if infos else {}
        running = False
        for moid, info in infos:
            if info.get("info.state") not in ("success", "error"):
                running = True
                continue
            self.seen.add(moid)
            if info.get("info.state") == "success":
                entity = str(info.get("info.entityName", ""))
                self.apply(str(info.get("info.descriptionId", "")), entity, info.get("info.result"),
                           vm_names.get(entity))
        return running

    @staticmethod
    def _task_infos(si: Any, tasks: list) -> list[tuple[str, dict]]:
        """Task fields by property path: the task's `info.entity` of a snapshot task is a snapshot, which
        pyVmomi refuses to read as a ManagedEntity, so the entity is read by name (its moref value)."""
        pc = si.content.propertyCollector
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=t, skip=False) for t in tasks],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(
                type=vim.Task, pathSet=["info.descriptionId", "info.state", "info.entityName", "info.result"])])
        out = []
        res = pc.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
        for oc in (res.objects if res else None) or ():
            out.append((oc.obj._moId, {p.name: p.val for p in oc.propSet or ()}))
        return out

    @staticmethod
    def _vms(si: Any) -> list:
        view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
        try:
            return list(view.view)
        finally:
            view.DestroyView()

    def apply(self, desc: str, entity: str, result: Any, vm_name: str | None) -> None:
        d = desc.lower()
        state = self.lab.state
        if "createsnapshot" in d and vm_name and result is not None:
            node = self._node_of(vm_name)
            if node is not None:
                persona = persona_of(state.nodes[node[0]], node[1])
                self.snapshots[result._moId] = (vm_name, persona)  # keyed by the snapshot's moref value
                with state.lock:
                    state.data.setdefault("snapshot_personas", {}).setdefault(self.mgmt, {})[result._moId] = [
                        vm_name, persona]
                    state.save()
                self.lab.log(f"vmwatch: snapshot {result._moId} of {vm_name} keeps {node[0]} at "
                             f"{persona['version'] if persona else '?'}")
                state.record(node[0], "snapshot", vm=vm_name, which=node[1])
        elif "reverttosnapshot" in d and entity:
            vm, persona = self.snapshots.get(entity, (None, None))
            node = self._node_of(vm) if vm else None
            if node and persona:
                state.apply_persona(node[0], node[1], persona)
                self.lab.log(f"vmwatch: {vm} reverted: {node[0]} back to {persona['version']}")
        elif ("poweron" in d or "poweroff" in d) and vm_name:
            node = self._node_of(vm_name)
            if node:
                self.lab.follow_power(node[0])

    def _node_of(self, vm_name: str) -> tuple[str, str] | None:
        for name, node in self.lab.state.nodes.items():
            if node.get("vm", {}).get("vcenter") != self.mgmt and not node.get("previous"):
                continue
            w = which_vm(node, vm_name)
            if w:
                return name, w
        return None

"""pyVmomi operations the lab daemon needs on the management vCenter (a vcsim).

The management vCenter holds the appliance VMs (psc-a, vc-a, ...). Lookups go through a container
view + PropertyCollector (one round trip, no lazy inventory walking); tasks are awaited with
WaitForUpdatesEx on a private PropertyCollector (no busy polling).
"""

from __future__ import annotations

import ssl
import time
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl


class TaskFailed(RuntimeError):
    """A vSphere task ended in error; .fault holds the vmodl fault."""

    def __init__(self, message: str, fault: object | None = None):
        super().__init__(message)
        self.fault = fault


def connect(url: str, user: str, password: str, ssl_context: ssl.SSLContext | None = None):
    """Log in to the vim25 endpoint at `url` (e.g. https://127.0.0.1:PORT/sdk); returns the ServiceInstance.
    https is verified with `ssl_context` (the lab CA's)."""
    parts = urlsplit(url)
    scheme = parts.scheme or "https"
    port = parts.port or (443 if scheme == "https" else 80)
    return SmartConnect(
        protocol=scheme, host=parts.hostname, port=port, path=parts.path or "/sdk",
        user=user, pwd=password, sslContext=ssl_context if scheme == "https" else None,
    )


def disconnect(si) -> None:
    try:
        Disconnect(si)
    except Exception:  # noqa: BLE001 - best effort on teardown
        pass


def _vm_properties(si, props: list[str]) -> list[tuple[vim.VirtualMachine, dict]]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        traversal = vmodl.query.PropertyCollector.TraversalSpec(
            name="view", path="view", skip=False, type=vim.view.ContainerView
        )
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=props)],
        )
        pc = content.propertyCollector
        out: list[tuple[vim.VirtualMachine, dict]] = []
        result = pc.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
        while result is not None:
            for oc in result.objects:
                out.append((oc.obj, {p.name: p.val for p in (oc.propSet or [])}))
            result = pc.ContinueRetrievePropertiesEx(result.token) if result.token else None
        return out
    finally:
        view.Destroy()


def find_vm(si, name: str) -> vim.VirtualMachine | None:
    """The VM called `name`, or None."""
    for vm, props in _vm_properties(si, ["name"]):
        if props.get("name") == name:
            return vm
    return None


def _require_vm(si, name: str) -> vim.VirtualMachine:
    vm = find_vm(si, name)
    if vm is None:
        raise LookupError(f"no VM named {name!r} on the management vCenter")
    return vm


def vm_power_states(si) -> dict[str, str]:
    """{vm name: 'poweredOn' | 'poweredOff' | 'suspended'} for every VM."""
    return {
        str(props.get("name")): str(props.get("runtime.powerState"))
        for _, props in _vm_properties(si, ["name", "runtime.powerState"])
    }


def wait_task(si, task: vim.Task, timeout: float | None = 300.0):
    """Wait for `task` with WaitForUpdatesEx; return info.result or raise TaskFailed / TimeoutError."""
    content = si.RetrieveContent()
    pc = content.propertyCollector.CreatePropertyCollector()  # private: no crosstalk with other waiters
    try:
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=task, skip=False)],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.Task, pathSet=["info.state", "info.error", "info.result"])],
        )
        pc.CreateFilter(spec, True)
        deadline = None if timeout is None else time.monotonic() + timeout
        version = ""
        state = None
        info: dict = {}
        while True:
            wait = 30
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"task {task._moId} still {state} after {timeout}s")
                wait = max(1, min(30, int(left + 0.999)))
            update = pc.WaitForUpdatesEx(version, vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=wait))
            if update is None:
                continue
            version = update.version
            for fs in update.filterSet or []:
                for obj in fs.objectSet or []:
                    for change in obj.changeSet or []:
                        info[change.name] = change.val
            state = info.get("info.state")
            if state == vim.TaskInfo.State.success:
                return info.get("info.result")
            if state == vim.TaskInfo.State.error:
                fault = info.get("info.error")
                msg = getattr(fault, "msg", None) or getattr(fault, "localizedMessage", None) or repr(fault)
                raise TaskFailed(f"task {task._moId} failed: {msg}", fault)
    finally:
        pc.Destroy()


def power_off(si, name: str) -> None:
    """Power the VM off (no-op when it is already off)."""
    vm = _require_vm(si, name)
    if vm.runtime.powerState != vim.VirtualMachine.PowerState.poweredOff:
        wait_task(si, vm.PowerOffVM_Task())


def power_on(si, name: str) -> None:
    """Power the VM on (no-op when it is already on)."""
    vm = _require_vm(si, name)
    if vm.runtime.powerState != vim.VirtualMachine.PowerState.poweredOn:
        wait_task(si, vm.PowerOnVM_Task())


def create_vm(si, name: str, like: str | None = None, power_on: bool = True) -> vim.VirtualMachine:
    """Create VM `name` in the folder/pool/datastore of VM `like`, powered on unless power_on=False
    (the installer's new appliance comes up running).

    Without `like`: the first datacenter's VM folder, the first compute resource's root pool and
    its first datastore. Raises FileExistsError when a VM with that name already exists.
    """
    if find_vm(si, name) is not None:
        raise FileExistsError(f"a VM named {name!r} already exists")
    content = si.RetrieveContent()
    cpus, mem_mb, guest = 2, 10240, "otherGuest"
    if like is not None:
        ref = _require_vm(si, like)
        folder, pool = ref.parent, ref.resourcePool
        vmx = ref.config.files.vmPathName or ""
        datastore = vmx.split("]", 1)[0].lstrip("[") if vmx.startswith("[") else ref.datastore[0].name
        cpus = ref.config.hardware.numCPU or cpus
        mem_mb = ref.config.hardware.memoryMB or mem_mb
        guest = ref.config.guestId or guest
    else:
        dc = next(e for e in content.rootFolder.childEntity if isinstance(e, vim.Datacenter))
        folder = dc.vmFolder
        view = content.viewManager.CreateContainerView(dc.hostFolder, [vim.ComputeResource], True)
        try:
            cr = view.view[0]
        finally:
            view.Destroy()
        pool = cr.resourcePool
        datastore = cr.datastore[0].name
    spec = vim.vm.ConfigSpec(
        name=name, guestId=guest, numCPUs=cpus, memoryMB=mem_mb,
        files=vim.vm.FileInfo(vmPathName=f"[{datastore}]"),
    )
    vm = wait_task(si, folder.CreateVM_Task(config=spec, pool=pool))
    if power_on:
        wait_task(si, vm.PowerOnVM_Task())
    return vm


def destroy_vm(si, name: str) -> bool:
    """Power off and delete VM `name`; False when there is no such VM."""
    vm = find_vm(si, name)
    if vm is None:
        return False
    if vm.runtime.powerState != vim.VirtualMachine.PowerState.poweredOff:
        wait_task(si, vm.PowerOffVM_Task())
    wait_task(si, vm.Destroy_Task())
    return True

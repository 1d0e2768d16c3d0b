"""The lab daemon: a local twin of a whole SSO domain, in the foreground.

    python -m lab.daemon --inventory FILE --dir DIR [--time-scale F] [--faults FILE] [--session-timeout S]

Starts, all on 127.0.0.1: one vcsim per vCenter (vim25; 5.5/6.0 vCenters too), one management vcsim per
`management` entry holding the appliance VMs, one appliance REST twin per node, and the control API
(lab/control.py). Writes DIR/lab.json, DIR/lab-inventory.yml (same schema as the input, pointing at the twin over https,
the lab CA of DIR/tls/ named as its `tls.ca_bundle`,
credentials in 0600 files under DIR/secrets/), DIR/state.json (lab/state.py) and DIR/daemon.log.
SIGTERM/SIGINT stop everything it started. A lab started again on the same DIR keeps its domain state
(versions, uuids, backups, jobs) and tries to keep its ports.

Why vcsims start in parallel: a 10-PSC + 15-vCenter domain must be up in seconds on two cores.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import secrets
import signal
import string
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from orchestrator.core.inventory import parse_inventory
from orchestrator.core.yamlsrc import dump_plain, load_yaml
from orchestrator.core.versions import Version, catalogue, parse_version

from .appliance import ApplianceServer
from .control import ControlServer
from .faults import Faults
from .ports import PortBook
from . import vmevents
from .state import LabError, LabState, atomic_write, version_of
from .tlsca import ensure_lab_tls

MGMT_VERSION = "6.7 U3"  # the management vCenter(s) holding the appliance VMs


def api_version(v: Version) -> str:
    """about.apiVersion as vCenter reports it: 6.5, 6.7.1..6.7.3, 7.0.0.0.."""
    if v.major >= 7:
        return f"{v.major}.{v.minor}.{v.update}.0"
    if (v.major, v.minor) == (6, 7) and v.update:
        return f"6.7.{v.update}"
    return f"{v.major}.{v.minor}"


def gen_password() -> str:
    """Meets SSO and backup-password complexity: upper, lower, digit, special; 16 chars."""
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(12))
    return "Lb" + core + "7!"


class Lab:
    def __init__(self, inventory: str | Path, lab_dir: str | Path, time_scale: float = 1.0,
                 faults: dict | list | str | Path | None = None, session_timeout: float = 1800.0,
                 use_vcsim: bool = True, vcsim_binary: str | Path | None = None, workers: int = 16) -> None:
        self.inventory_path = Path(inventory)
        self.dir = Path(lab_dir).resolve()  # absolute: vcsim, the certificates and the lab inventory are read from other folders
        self.time_scale = float(time_scale)
        self.session_timeout = float(session_timeout)
        self.use_vcsim = use_vcsim
        self.vcsim_binary = Path(vcsim_binary) if vcsim_binary else None
        self.workers = workers
        if isinstance(faults, (str, Path)):
            self.faults = Faults.from_file(faults)
        else:
            self.faults = Faults(faults)
        self.servers: dict[str, ApplianceServer] = {}
        self.vcsims: dict[str, Any] = {}      # node or mgmt name -> VcsimProcess
        self.mgmt_si: dict[str, Any] = {}
        self.control: ControlServer | None = None
        self.state: LabState | None = None
        self.ports = PortBook()  # every node's REST and vim port, kept while the node is down (lab/ports.py)
        self._stop = threading.Event()
        self._stopped = False
        self._node_locks: dict[str, threading.Lock] = {}
        self._mgmt_lock = threading.Lock()
        self._queue: list[str] = []
        self._qcond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._logf = None
        self.started_at = 0.0
        self.startup_seconds = 0.0
        self.resumed = False

    # -- logging -----------------------------------------------------------------------------------
    def log(self, text: str) -> None:
        line = time.strftime("%Y-%m-%dT%H:%M:%S") + f" {text}\n"
        if self._logf:
            try:
                self._logf.write(line)
                self._logf.flush()
            except ValueError:
                pass

    # -- start -------------------------------------------------------------------------------------
    def start(self) -> "Lab":
        t0 = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._logf = open(self.dir / "daemon.log", "a", buffering=1)
        self.log(f"starting lab from {self.inventory_path} (time_scale={self.time_scale})")
        # parsed once (pure-Python YAML is ~40 % of a REST lab's start): the validated inventory and its mapping
        self.raw = load_yaml(self.inventory_path, "inventory")
        self.inv = parse_inventory(self.raw, str(self.inventory_path))
        prev = self._previous_ports()
        passwords = self._secrets()
        state_path = self.dir / "state.json"
        kw = {"time_scale": self.time_scale, "faults": self.faults}
        sso = self.inv.credential("sso")
        if state_path.exists():
            self.state = LabState.load(state_path, **kw)
            self.resumed = True  # said by `invoke lab.up`: the nodes are where the last lab left them
            self.log("resumed state.json")
        else:
            self.state = LabState.create(state_path, self.raw, sso.user, passwords["sso"], passwords["root"], **kw)
        passwords["sso"] = self.state.data["sso_password"]
        passwords["root"] = self.state.data["root_password"]
        self._write_secrets(passwords)
        self.passwords = passwords
        self.tls = ensure_lab_tls(self.dir / "tls")
        server_tls = self.tls.server_context()
        self.state.on_node_changed(self._enqueue)
        try:
            for name in self.state.nodes:
                srv = ApplianceServer(self.state, name, self.session_timeout,
                                      port=self.ports.reserve(prev.get("nodes", {}).get(name, {}).get("rest_port", 0)),
                                      tls=server_tls,
                                      session_log=self.issued("rest", name))
                self.servers[name] = srv
                srv.resolve, srv.address_of = self._node_at, self._address_of
                srv.start()
            # before the vcsims: a management vCenter tells the lab of every VM change (Lab.vm_changed)
            self.control = ControlServer(self, prev.get("control_port", 0)).start()
            if self.use_vcsim:
                self._start_vcsims(prev)
            for target, name in ((self._ticker, "lab-ticker"), (self._worker, "lab-worker")):
                t = threading.Thread(target=target, name=name, daemon=True)
                t.start()
                self._threads.append(t)
            self.startup_seconds = time.monotonic() - t0
            self.started_at = time.time()
            self._write_lab_json()
            self._write_lab_inventory()
        except BaseException:
            self.stop()
            raise
        self.log(f"lab up in {self.startup_seconds:.2f}s: control {self.control.url}")
        return self

    def _previous_ports(self) -> dict:
        p = self.dir / "lab.json"
        if not p.exists():
            return {}
        try:
            d = json.loads(p.read_text())
        except ValueError:
            return {}
        out: dict = {"nodes": {}, "mgmt": {}}
        for n, e in (d.get("nodes") or {}).items():
            out["nodes"][n] = {"rest_port": e.get("rest_port", 0), "sdk_port": e.get("sdk_port", 0)}
        for n, e in (d.get("management") or {}).items():
            out["mgmt"][n] = {"sdk_port": e.get("sdk_port", 0)}
        out["control_port"] = d.get("control_port", 0)
        return out

    def _secrets(self) -> dict[str, str]:
        sdir = self.dir / "secrets"
        sdir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(sdir, 0o700)
        out = {}
        names = [c.name for c in self.inv.credentials] + ["root"]
        for name in names:
            f = sdir / name
            out[name] = f.read_text().strip() if f.exists() else gen_password()
        return out

    def _write_secrets(self, passwords: dict[str, str]) -> None:
        sdir = self.dir / "secrets"
        for name, pw in passwords.items():
            f = sdir / name
            if not f.exists() or f.read_text().strip() != pw:
                atomic_write(f, pw + "\n", 0o600)
            os.chmod(f, 0o600)

    # -- vcsim -------------------------------------------------------------------------------------
    def _vcsim_mod(self):
        from . import vcsim  # written alongside; imported lazily so the REST twin works without it
        return vcsim

    def spec_for(self, name: str):
        vcsim = self._vcsim_mod()
        node = self.state.nodes[name]
        v = version_of(node)
        psc = self.state.nodes.get(node.get("psc") or "")
        psc_host = f"127.0.0.1:{self.servers[psc['name']].port}" if psc else ""
        return vcsim.VcsimSpec(
            name=name, version=f"{v.major}.{v.minor}.0", build=v.build, api_version=api_version(v),
            full_name=f"VMware vCenter Server {v.major}.{v.minor}.0 build-{v.build}",
            instance_uuid=node["instance_uuid"], psc_host=psc_host, user=self.state.data["sso_user"],
            password=self.state.data["sso_password"], moref_salt=int(node.get("moref_salt") or 0), tls=self.tls,
            session_log=self.issued("soap", name))

    def mgmt_spec_for(self, m):
        vcsim = self._vcsim_mod()
        v = catalogue().resolve(parse_version(MGMT_VERSION))
        cred = self.inv.credential(m.credentials)
        vms = tuple(sorted(self.state.data["vms"].get(m.name, {})))
        return vcsim.VcsimSpec(
            name=m.name, version=f"{v.major}.{v.minor}.0", build=v.build, api_version=api_version(v),
            full_name=f"VMware vCenter Server {v.major}.{v.minor}.0 build-{v.build}",
            instance_uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{self.inv.domain}/mgmt/{m.name}")),
            psc_host="", user=cred.user, password=self.passwords[m.credentials], appliance_vms=vms, tls=self.tls,
            session_log=self.issued("soap", m.name), vm_hook=f"{self.control.url}/lab/vm-event/{m.name}")

    def issued(self, kind: str, name: str) -> Path:
        """Where the lab records the session ids it issues (`soap` by vcsim, `rest` by the REST twin), one per
        line, 0600 in a 0700 folder: `sessions/<kind>-<name>.txt`. They are secrets like the passwords: a
        test reads them to prove that no file vcwave wrote holds one."""
        d = self.dir / "sessions"
        d.mkdir(mode=0o700, exist_ok=True)
        return d / f"{kind}-{name}.txt"

    def _start_vcsims(self, prev: dict) -> None:
        vcsim = self._vcsim_mod()
        binary = self.vcsim_binary or vcsim.ensure_vcsim_binary()
        self.binary = binary
        logs = self.dir / "logs"
        logs.mkdir(exist_ok=True)
        jobs: list[tuple[str, Any, int]] = []
        for m in self.inv.management:
            jobs.append((m.name, self.mgmt_spec_for(m),
                         self.ports.reserve(prev.get("mgmt", {}).get(m.name, {}).get("sdk_port", 0))))
        for name, node in self.state.nodes.items():
            if node["role"] == "vcenter" and self.state.vim_answers(name):
                jobs.append((name, self.spec_for(name),
                             self.ports.reserve(prev.get("nodes", {}).get(name, {}).get("sdk_port", 0))))
        self._vcsim_ports: dict[str, int] = {}

        def launch(item):
            name, spec, port = item
            log = logs / f"vcsim-{name}.log"
            try:
                return name, vcsim.VcsimProcess(spec, binary, log_path=log, port=port).start()
            except Exception:
                if not port:
                    raise
                return name, vcsim.VcsimProcess(spec, binary, log_path=log, port=0).start()

        with cf.ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(jobs)))) as ex:
            futs = [ex.submit(launch, j) for j in jobs]
            errors = []
            for f in futs:
                try:
                    name, proc = f.result()
                    self.vcsims[name] = proc
                    self._vcsim_ports[name] = proc.port
                except Exception as e:
                    errors.append(e)
            if errors:
                raise errors[0]
        # power state of appliance VMs recorded as off (e.g. installer sources)
        for m in self.inv.management:
            off = [vm for vm, st in self.state.data["vms"].get(m.name, {}).items() if st == "poweredOff"]
            for vm in off:
                self._mgmt_call(m.name, "power_off", vm)

    def _mgmt(self, name: str):
        """The lab's vim25 session on the management vcsim `name` (used under _mgmt_lock)."""
        from . import mgmt
        if name not in self.mgmt_si:
            m = self.inv.management_vc(name)
            self.mgmt_si[name] = mgmt.connect(self.vcsims[name].url, self.inv.credential(m.credentials).user,
                                              self.passwords[m.credentials], self.tls.client_context())
        return mgmt, self.mgmt_si[name]

    def _mgmt_call(self, mgmt_name: str, op: str, *args: Any) -> Any:
        if not self.use_vcsim or mgmt_name not in self.vcsims:
            return None
        with self._mgmt_lock:
            for attempt in (0, 1):
                mod, si = self._mgmt(mgmt_name)
                try:
                    return getattr(mod, op)(si, *args)
                except Exception:
                    if attempt:
                        raise
                    self.mgmt_si.pop(mgmt_name, None)  # stale session: reconnect once

    # -- reacting to state changes ------------------------------------------------------------------
    def _enqueue(self, name: str) -> None:
        with self._qcond:
            self._queue.append(name)
            self._qcond.notify()

    def _worker(self) -> None:
        while not self._stop.is_set():
            with self._qcond:
                while not self._queue and not self._stop.is_set():
                    self._qcond.wait()  # woken by _enqueue, and by stop() (which sets _stop first)
                names, self._queue = list(dict.fromkeys(self._queue)), []
            for n in names:
                try:
                    self.reconcile(n)
                except Exception as e:
                    self.log(f"reconcile {n} failed: {type(e).__name__}: {e}")

    def _ticker(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.state.tick()
            except Exception as e:  # pragma: no cover
                self.log(f"tick failed: {type(e).__name__}: {e}")

    def reconcile(self, name: str) -> None:
        """Make the processes match the node: REST listener up/down; a deleted node's VM gone from the
        management vCenter; vcsim stopped (down, rebooting, vpxd stopped), or (re)started with the node's
        version/build/uuid/psc/moref salt (same uuid unless the node was rebuilt)."""
        lock = self._node_locks.setdefault(name, threading.Lock())
        with lock:
            if self._stopped:
                return
            node = self.state.nodes[name]
            self.servers[name].sync()
            if node.get("deleted") and node["vm"]["vcenter"]:
                if self._mgmt_call(node["vm"]["vcenter"], "destroy_vm", node["vm"]["name"]):
                    self.log(f"{name}: appliance VM {node['vm']['name']} deleted")
            if node.get("decommissioned") and node["vm"]["vcenter"]:  # the decommission shut the PSC down
                self._mgmt_call(node["vm"]["vcenter"], "power_off", node["vm"]["name"])
            if not self.use_vcsim or node["role"] != "vcenter":
                return
            vcsim = self._vcsim_mod()
            proc = self.vcsims.get(name)
            if not self.state.vim_answers(name):
                if proc is not None:
                    proc.stop()
                    self.vcsims.pop(name, None)
                    self.log(f"vcsim of {name} stopped (node {self.state.reachability(name)}, "
                             f"vpxd {node['services'].get('vpxd')})")
                return
            spec = self.spec_for(name)
            if proc is None:
                port = self._vcsim_ports.get(name) or self.ports.reserve()
                try:
                    proc = vcsim.VcsimProcess(spec, self.binary, log_path=self.dir / "logs" / f"vcsim-{name}.log",
                                              port=port).start()
                except Exception:
                    proc = vcsim.VcsimProcess(spec, self.binary, log_path=self.dir / "logs" / f"vcsim-{name}.log",
                                              port=0).start()
                self.vcsims[name] = proc
                self._vcsim_ports[name] = proc.port
                self.log(f"vcsim of {name} started at {proc.url} ({node['version']} build {node['build']})")
            elif getattr(proc, "spec", None) != spec:
                proc.restart(spec)
                self._vcsim_ports[name] = proc.port
                self.log(f"vcsim of {name} restarted ({node['version']} build {node['build']}, "
                         f"uuid {node['instance_uuid']})")
            self._write_lab_json()

    # -- control operations ---------------------------------------------------------------------------
    def describe(self) -> dict:
        snap = self.state.snapshot()
        for name, n in snap["nodes"].items():
            srv = self.servers.get(name)
            n["rest_url"] = srv.url if srv else None
            n["listening"] = bool(srv and srv.listening)
            proc = self.vcsims.get(name)
            n["sdk_url"] = proc.url if proc else None
            n["reachability"] = self.state.reachability(name)
        snap["faults"] = self.faults.to_dict()
        snap["time_scale"] = self.time_scale
        return snap

    def restore_mode(self, name: str, version: str | None, build: int | None) -> dict:
        node = self.state.set_restore_mode(name, version, build)
        mgmt_name, vm = node["vm"]["vcenter"], node["vm"]["name"]
        if mgmt_name and self.use_vcsim and vm not in (self._mgmt_call(mgmt_name, "vm_power_states") or {}):
            self._mgmt_call(mgmt_name, "create_vm", vm)  # a deleted node: the new appliance VM
        self.reconcile(name)
        return {"node": name, "restore_mode": True, "version": node["version"], "build": node["build"]}

    def fail(self, name: str, reason: str) -> dict:
        self.state.set_down(name, True, reason)
        self.reconcile(name)
        return {"node": name, "down": True}

    def break_node(self, name: str, kind: str, reason: str) -> dict:
        """corrupt / delete (and down) from the control API, as the fault kinds of lab/faults.py."""
        node = self.state.break_node(name, kind, reason)
        self.reconcile(name)
        return {"node": name, kind: True, "health": node["health"], "down": node["down"]}

    def revive(self, name: str) -> dict:
        self.state.set_down(name, False)
        self.reconcile(name)
        n = self.state.nodes[name]
        return {"node": name, "down": False, "version": n["version"], "build": n["build"]}

    def _node_at(self, hostname: str) -> str | None:
        """The node a client names by address (every twin listens on 127.0.0.1, told apart by its port)."""
        return next((n for n, s in self.servers.items() if hostname == f"127.0.0.1:{s.port}"), None)

    def _address_of(self, name: str) -> str:
        return f"127.0.0.1:{self.servers[name].port}"

    def repoint(self, vcenter: str, psc: str) -> dict:
        self.state.repoint(vcenter, psc)
        self.reconcile(vcenter)
        return {"vcenter": vcenter, "psc": psc}

    def installer_upgrade(self, source: str, target_version: str, target_build: Any, new_vm_name: str | None,
                          rebuild: bool, sso: dict | None = None) -> dict:
        try:
            target = catalogue().resolve(parse_version(str(target_version), target_build))
        except ValueError as e:
            raise LabError(str(e)) from None
        if not target.build:
            raise LabError(f"unknown build for {target_version}: give target_build")
        with self.state.lock:
            self.state.check_major_upgrade(source, target, sso)
            node = self.state.node(source)
            old_vm = node["vm"]["name"]
            mgmt_name = node["vm"]["vcenter"]
            converge = node["role"] == "vcenter" and self.state.converges(source, target)
            if converge:
                self.state.converging.add(source)
        new_vm = new_vm_name or f"{old_vm}-{target.major}{target.minor}"
        dur = self.state.duration(source, "upgrade")
        self.log(f"installer: upgrading {source} to {target}{' (converge)' if converge else ''} ({dur:.2f}s)")
        self.state.record(source, "install_started", method="installer", version=target.release)
        try:
            time.sleep(dur)
            fail = self.state.faults.step_failure(source, "install")  # stage 2 fails: the source stays as it was
            if fail:
                raise LabError(f"{source}: {fail}", "internal_server_error", 500)
            # The identity moves first, then the VMs: the VM hook then reports the old VM as the kept source.
            n = self.state.apply_major_upgrade(source, target, new_vm, rebuild, sso)
        finally:
            self.state.converging.discard(source)
        if mgmt_name:
            self._mgmt_call(mgmt_name, "create_vm", new_vm, old_vm)
            self._mgmt_call(mgmt_name, "power_off", old_vm)
        self.reconcile(source)
        lost = self.state.faults.lost_reply(source, "installer")
        if lost is not None:
            self.state.record(source, "lost_reply", action="installer", mode=lost.mode)
        return {"node": source, "version": n["version"], "build": n["build"], "instance_uuid": n["instance_uuid"],
                "lost_reply": lost is not None, "moref_salt": n["moref_salt"], "vm": n["vm"], "source_vm": {"name": old_vm, "power": "poweredOff"},
                "rebuild": rebuild, "rest_url": self.servers[source].url,
                "sdk_url": self.vcsims[source].url if source in self.vcsims else None, "seconds": dur}

    def vm_changed(self, mgmt_name: str, change: dict) -> dict:
        """A management vCenter's VM changed power or current snapshot (its vm hook calls this while the
        task still runs; lab/vmevents.py): the node follows its VM now. Its REST listener follows here, its
        vcsim on the lab's worker (state changes queue it): the management vcsim holds the VM's lock until
        this answers, and nothing here calls it back."""
        if mgmt_name not in {m.name for m in self.inv.management}:
            raise LabError(f"no management vCenter {mgmt_name!r} in the lab", "not_found", 404)
        name, line = vmevents.follow(self.state, mgmt_name, change)
        self.log(line)
        if name is not None:
            self.servers[name].sync()
        return {"node": name}

    def installer_rollback(self, source: str) -> dict:
        n = self.state.apply_rollback(source)
        mgmt_name = n["vm"]["vcenter"]
        if mgmt_name:
            self._mgmt_call(mgmt_name, "power_off", n["new_vm"])
            self._mgmt_call(mgmt_name, "power_on", n["vm"]["name"])
        self.reconcile(source)
        return {"node": source, "version": n["version"], "build": n["build"], "instance_uuid": n["instance_uuid"],
                "vm": n["vm"], "new_vm": {"name": n["new_vm"], "power": "poweredOff"}}

    # -- files -------------------------------------------------------------------------------------
    def _write_lab_json(self) -> None:
        d: dict[str, Any] = {
            "pid": os.getpid(), "running": not self._stopped,
            "control_url": self.control.url if self.control else None,
            "control_port": self.control.port if self.control else None,
            "started_at": self.started_at, "startup_seconds": round(self.startup_seconds, 3),
            "resumed": self.resumed,
            "time_scale": self.time_scale, "inventory": str(self.dir / "lab-inventory.yml"),
            "source_inventory": str(self.inventory_path.resolve()), "nodes": {}, "management": {},
            "ca_bundle": str(self.tls.ca.resolve()) if getattr(self, "tls", None) else None,
        }
        for name, srv in self.servers.items():
            proc = self.vcsims.get(name)
            d["nodes"][name] = {"rest_url": srv.url, "rest_port": srv.port,
                                "sdk_url": proc.url if proc else None,
                                "sdk_port": proc.port if proc else self._port_of(name),
                                "vcsim_pid": proc.pid if proc else None}
        for m in getattr(self, "inv", None).management if getattr(self, "inv", None) else ():
            proc = self.vcsims.get(m.name)
            d["management"][m.name] = {"sdk_url": proc.url if proc else None,
                                       "sdk_port": proc.port if proc else None,
                                       "vcsim_pid": proc.pid if proc else None}
        atomic_write(self.dir / "lab.json", json.dumps(d, indent=1) + "\n")

    def _port_of(self, name: str) -> int | None:
        return getattr(self, "_vcsim_ports", {}).get(name)

    def _write_lab_inventory(self) -> None:
        raw = json.loads(json.dumps(self.raw, default=str))
        sdir = (self.dir / "secrets").resolve()
        raw["credentials"] = {c.name: {"user": c.user, "password_file": str(sdir / c.name)}
                              for c in self.inv.credentials}
        raw["tls"] = {"ca_bundle": str(self.tls.ca.resolve())}  # the twins serve https, signed by the lab CA
        for m in raw.get("management") or []:
            proc = self.vcsims.get(m["name"])
            port = proc.port if proc else 1
            m.update(host="127.0.0.1", port=port, sdk_port=port, scheme="https")
            m.pop("tls", None)  # a pin of the real vCenter: the twin has its own certificate
        for n in raw.get("nodes") or []:
            node = self.state.nodes[n["name"]]
            srv = self.servers[n["name"]]
            proc = self.vcsims.get(n["name"])
            n.update(host="127.0.0.1", port=srv.port, scheme="https", version=node["version"],
                     build=node["build"], instance_uuid=node["instance_uuid"])
            n.pop("tls", None)
            if node["role"] == "vcenter" and (proc or self._port_of(n["name"])):
                n["sdk_port"] = proc.port if proc else self._port_of(n["name"])
            else:
                n.pop("sdk_port", None)
            if node["role"] == "vcenter" and node.get("psc"):
                n["psc"] = node["psc"]
            if node["vm"]["vcenter"]:
                n["vm"] = dict(node["vm"])
        header = ("# Written by the vcwave lab daemon: the lab's twin of "
                  f"{self.inventory_path.name}. Hosts are loopback, ports are the twin's.\n")
        atomic_write(self.dir / "lab-inventory.yml", header + dump_plain(raw, sort_keys=False))

    # -- stop --------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    def wait(self) -> None:
        """Until request_stop: from the control API's thread, or from a signal handler, which runs in this (the
        main) thread while its wait is interrupted; no timeout, so an idle daemon's main thread never wakes."""
        self._stop.wait()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        with self._qcond:
            self._qcond.notify_all()
        if self.control:
            self.control.stop()
        for srv in self.servers.values():
            try:
                srv.close()
            except Exception:
                pass
        procs = list(self.vcsims.values())
        if procs:
            with cf.ThreadPoolExecutor(max_workers=min(16, len(procs))) as ex:
                list(ex.map(_stop_quietly, procs))
        if self.state:
            try:
                self.state.save()
            except Exception:
                pass
        try:
            if self.control is not None:
                self._write_lab_json()
        except Exception:
            pass
        self.vcsims.clear()
        self.ports.close()
        self.log("lab stopped")
        if self._logf:
            self._logf.close()
            self._logf = None


def _stop_quietly(proc: Any) -> None:
    try:
        proc.stop()
    except Exception:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.daemon", description=__doc__.splitlines()[0])
    ap.add_argument("--inventory", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--faults")
    ap.add_argument("--session-timeout", type=float, default=1800.0)
    ap.add_argument("--no-vcsim", action="store_true", help="REST twin only (no vim25)")
    args = ap.parse_args(argv)
    lab = Lab(args.inventory, args.dir, args.time_scale, args.faults, args.session_timeout,
              use_vcsim=not args.no_vcsim)
    stop = threading.Event()

    def on_signal(signum, frame):
        lab.request_stop()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        lab.start()
    except Exception as e:
        print(f"lab: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"control_url": lab.control.url, "lab_json": str(lab.dir / "lab.json"),
                      "startup_seconds": round(lab.startup_seconds, 3)}), flush=True)
    try:
        lab.wait()
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Persisted state of the lab's SSO domain, its jobs, and the rules the real products enforce.

Why here and not in the HTTP layer: the REST twin, the control API and the installer stand-in all change the
same domain (versions, backups, jobs), and the rules (a vCenter never newer than its PSC, a pre-upgrade vCenter
backup unusable once the PSCs moved, repoint only to a same-version same-site PSC) must bite the same way
whichever door the change comes through. Jobs progress by wall clock (start epoch + scaled duration) so a lab
stopped and started again finds them where time says they are.

State is one JSON document, written atomically (tmp + fsync + rename) to DIR/state.json.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from orchestrator.core.versions import Version, catalogue, parse_version

from . import boot, decommission, ledger
from .converge import EXTERNAL_PSC_LINES, converge_problem, version_of
from .faults import Fault, Faults

# Realistic durations in seconds; multiplied by time_scale (and a `slow` fault factor).
DURATIONS = {
    "backup": 600.0,
    "stage": 300.0,
    "install": boot.INSTALL_SECONDS,  # of which the last boot.INSTALL_REBOOT_SECONDS reboot (lab/boot.py)
    "restore": 1800.0,
    "upgrade": 3600.0,   # installer major upgrade (stage 1 + stage 2)
    "rollback": 600.0,   # installer rollback (power operations)
    "power_on": boot.POWER_ON_SECONDS,
    "decommission": decommission.SECONDS,
}
POWERED_OFF = "appliance VM powered off"
# What a corrupted appliance no longer runs (it answers, health red): vCenter's vpxd, a PSC's directory + STS.
CORRUPT_SERVICES = {"vcenter": ("vpxd",), "psc": ("vmdird", "vmware-stsd")}
LOCATION_TYPES = ("FTP", "HTTP", "FTPS", "HTTPS", "SCP", "SFTP")
LOCATION_TYPES_67U2 = ("NFS", "SMB")
BACKUP_PARTS = ("common", "seat")

VC_SERVICES = ("vpxd", "vmware-vpostgres", "vsphere-client", "vsphere-ui", "vmware-vapi-endpoint",
               "content-library", "vmware-updatemgr", "applmgmt")
PSC_SERVICES = ("vmdird", "vmafdd", "vmcad", "vmware-stsd", "vmware-sts-idmd", "lookupsvc",
                "vmware-cis-license", "applmgmt")

# Direct major-upgrade paths (target line -> allowed source lines), see vsphere-facts.md.
UPGRADE_PATHS = {
    (6, 5): {(5, 5), (6, 0)},
    (6, 7): {(6, 0), (6, 5)},
    (7, 0): {(6, 5), (6, 7)},
    (8, 0): {(6, 7), (7, 0)},
}


class LabError(Exception):
    """A refusal or bad request; `kind` maps to a vapi error type, `status` to the HTTP status."""

    def __init__(self, message: str, kind: str = "invalid_argument", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def release_key(v: Version) -> tuple:
    return (v.major, v.minor, v.update, v.letter)


def has_rest(node: dict) -> bool:
    """5.5/6.0 nodes (and Windows nodes) have no appliance REST API at all."""
    v = version_of(node)
    return node.get("platform", "appliance") == "appliance" and (v.major, v.minor) >= (6, 5)


def has_api_style(node: dict) -> bool:
    """The `/api` URL style (unwrapped results, `POST /api/session`) is served from 7.0 U2 on, beside `/rest`."""
    return has_rest(node) and version_of(node).without_build() >= Version(7, 0, 2)


def linked(node: dict) -> bool:
    """A vCenter that carries SSO itself (7.0+, embedded) and replicates vmdir with the other such vCenters
    of its domain (Enhanced Linked Mode)."""
    return (node["role"] == "vcenter" and not node.get("psc") and version_of(node).line not in EXTERNAL_PSC_LINES
            and not node.get("deleted"))


def has_update_api(node: dict) -> bool:
    v = version_of(node)
    return has_rest(node) and (v.major, v.minor) >= (6, 7)


def atomic_write(path: Path, text: str, mode: int | None = None) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode if mode is not None else 0o644)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def node_from_inventory(domain: str, raw: dict) -> dict:
    """A state node from one raw inventory `nodes` entry."""
    name = raw["name"]
    v = catalogue().resolve(parse_version(str(raw["version"]), raw.get("build") or None))
    vm = raw.get("vm") or {}
    node = {
        "name": name,
        "role": raw["role"],
        "site": raw.get("site", ""),
        "psc": raw.get("psc"),
        "platform": raw.get("platform", "appliance"),
        "version": v.release,
        "build": v.build,
        "instance_uuid": raw.get("instance_uuid") or str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{domain}/{name}")),
        "moref_salt": 0,
        "install_time": time.time() - 86400 * 200,
        "patched": False,
        "health": "green",
        "services": {s: "STARTED" for s in (VC_SERVICES if raw["role"] == "vcenter" else PSC_SERVICES)},
        "down": False,
        "down_reason": "",
        "restore_mode": False,
        "boot": 0,
        "data": {"generation": 1},
        "vm": {"vcenter": vm.get("vcenter", ""), "name": vm.get("name", name)},
        "previous": None,
        "backup_jobs": {},
        "restore_job": None,
        "update": {"staged": None, "task": None, "failed": None, "latest_query_time": None},
        "broken": "",
        "booting": None,
        "deleted": False,
    }
    return node


class LabState:
    """The domain. Every public method takes the lock; hooks run after it is released."""

    def __init__(self, path: Path, data: dict, time_scale: float = 1.0, faults: Faults | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.data = data
        self.time_scale = float(time_scale)
        self.faults = faults or Faults()
        self.clock = clock
        self.lock = threading.RLock()
        self._hooks: list[Callable[[str], None]] = []
        self._pending: set[str] = set()
        self.converging: set[str] = set()  # vCenters the installer is converging right now (not persisted)

    # -- construction / persistence -----------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, raw_inventory: dict, sso_user: str, sso_password: str,
               root_password: str, **kw: Any) -> "LabState":
        domain = raw_inventory.get("domain", "vsphere.local")
        nodes = {n["name"]: node_from_inventory(domain, n) for n in raw_inventory.get("nodes", [])}
        data = {
            "format": 1,
            "domain": domain,
            "sso_user": sso_user,
            "sso_password": sso_password,
            "root_password": root_password,
            "nodes": nodes,
            "backups": {},
            "repository": None,
            "vms": {},  # mgmt vcenter -> {vm name: "poweredOn"|"poweredOff"}
            "ledger": [],  # lab/ledger.py: what happened to each node, whichever door it came through
        }
        for n in nodes.values():
            if n["vm"]["vcenter"]:
                data["vms"].setdefault(n["vm"]["vcenter"], {})[n["vm"]["name"]] = "poweredOn"
        st = cls(path, data, **kw)
        st.save()
        return st

    @classmethod
    def load(cls, path: Path, **kw: Any) -> "LabState":
        return cls(path, json.loads(Path(path).read_text()), **kw)

    def save(self) -> None:
        with self.lock:
            # no indent: an indented dump runs Python's pure encoder (the C one only writes compact JSON), and
            # the state is saved on every change the twin makes: 1.5 ms per save once its ledger has grown,
            # a third of a lab daemon's own CPU in a crash-point run; compact, it is 5x cheaper.
            text = json.dumps(self.data, sort_keys=True, separators=(",", ":"))
            atomic_write(self.path, text, 0o600)

    def on_node_changed(self, hook: Callable[[str], None]) -> None:
        """Register hook(name): called (outside the lock) when a node's version/build/uuid/psc/up-ness changes."""
        self._hooks.append(hook)

    def _changed(self, name: str) -> None:
        self._pending.add(name)

    def _fire(self) -> None:
        with self.lock:
            names, self._pending = sorted(self._pending), set()
        for n in names:
            for h in self._hooks:
                try:
                    h(n)
                except Exception:  # a hook must never break the REST twin
                    pass

    # -- accessors ----------------------------------------------------------------------------------
    def node(self, name: str) -> dict:
        try:
            return self.data["nodes"][name]
        except KeyError:
            raise LabError(f"no node named {name!r} in the lab", "not_found", 404) from None

    @property
    def nodes(self) -> dict[str, dict]:
        return self.data["nodes"]

    def pscs(self) -> list[dict]:
        """The external PSCs still in the SSO domain (a decommissioned one left it)."""
        return [n for n in self.nodes.values() if n["role"] == "psc" and not n.get("decommissioned")]

    def now(self) -> float:
        return self.clock()

    def duration(self, node: str, kind: str) -> float:
        return DURATIONS[kind] * self.time_scale * self.faults.slow_factor(node, kind)

    def snapshot(self) -> dict:
        with self.lock:
            self._advance_all()
            out = copy.deepcopy(self.data)
        self._fire()
        for k in ("sso_password", "root_password"):
            out.pop(k, None)
        return out

    # -- wall-clock jobs ----------------------------------------------------------------------------
    def tick(self) -> None:
        """Finalise due jobs (called by the daemon's ticker and before every read)."""
        with self.lock:
            changed = self._advance_all()
            if changed:
                self.save()
        self._fire()

    def settle(self, name: str) -> None:
        """Bring one node up to now before answering for it (a call that lands as its reboot begins gets
        no answer, as on the appliance)."""
        with self.lock:
            if self._advance(name):
                self.save()
        self._fire()

    def _advance_all(self) -> bool:
        changed = self._apply_due_faults()
        for name in list(self.nodes):
            changed |= self._advance(name)
        return self._advance_decommissions() or changed

    def _progress(self, job: dict) -> tuple[float, int]:
        elapsed = self.now() - job["start"]
        frac = 1.0 if job["duration"] <= 0 else max(0.0, elapsed / job["duration"])
        return frac, min(99, int(frac * 100))

    def _advance(self, name: str) -> bool:
        node = self.nodes[name]
        changed = False
        for job in node["backup_jobs"].values():
            if job["state"] == "INPROGRESS":
                changed |= self._advance_backup(node, job)
        job = node["restore_job"]
        if job and job["state"] == "INPROGRESS":
            changed |= self._advance_restore(node, job)
        task = node["update"]["task"]
        if task and task["status"] == "RUNNING":
            changed |= self._advance_update(node, task)
        if node.get("booting"):
            changed |= self._advance_boot(node)
        return changed

    def _finish(self, job: dict, ok: bool, message: str, state_key: str = "state") -> None:
        if state_key == "state":
            job["state"] = "SUCCEEDED" if ok else "FAILED"
        else:
            job["status"] = "SUCCEEDED" if ok else "FAILED"
            if not ok:
                job["error"] = message
        job["progress"] = 100 if ok else job.get("progress", 0)
        job["end"] = self.now()
        job["messages"].append(message)

    def _advance_backup(self, node: dict, job: dict) -> bool:
        frac, pct = self._progress(job)
        if job.get("fail") and frac >= 0.5:
            job["progress"] = 50
            self._finish(job, False, job["fail"])
            return True
        if frac >= 1.0:
            rec = job["record"]
            rec["timestamp"] = self.now()
            self.data["backups"][f"{node['name']}/{job['id']}"] = rec
            self._finish(job, True, "Backup job completed successfully.")
            self._record(node["name"], "backup_completed", id=job["id"])
            return True
        job["progress"] = pct
        return False

    def _advance_restore(self, node: dict, job: dict) -> bool:
        frac, pct = self._progress(job)
        if job.get("fail") and frac >= 0.5:
            job["progress"] = 50
            self._finish(job, False, job["fail"])
            return True
        if frac < 1.0:
            job["progress"] = pct
            return False
        rec = self.data["backups"][job["backup"]]
        # The appliance comes back as the backed-up node: version, build, uuid, morefs, data.
        node.update(version=rec["version"], build=rec["build"], instance_uuid=rec["instance_uuid"],
                    moref_salt=rec["moref_salt"], data=copy.deepcopy(rec["data"]), restore_mode=False,
                    psc=rec.get("psc", node.get("psc")))
        node["boot"] += 1
        node["update"] = {"staged": None, "task": None, "failed": None, "latest_query_time": None}
        self._changed(node["name"])
        problem = self._restore_domain_problem(node, rec)
        if problem:
            node["health"] = "red"
            node["broken"] = problem
            node["services"]["vpxd"] = "STOPPED"
            self._finish(job, False, problem)
            self._record(node["name"], "restore_failed", backup=job["backup"])
            return True
        node["health"] = "green"
        node["broken"] = ""
        node["services"] = {s: "STARTED" for s in node["services"]}
        self._finish(job, True, "Restore job completed successfully.")
        self._record(node["name"], "restore_completed", backup=job["backup"])
        return True

    def _restore_domain_problem(self, node: dict, rec: dict) -> str:
        if node["role"] != "vcenter":
            return ""
        now = {p["name"]: f"{p['version']} build {p['build']}" for p in self.pscs()}
        then = rec.get("domain_versions") or {}
        diffs = [f"{p}: backup {then.get(p, 'absent')}, now {now.get(p, 'absent')}"
                 for p in sorted(set(now) | set(then)) if now.get(p) != then.get(p)]
        if diffs:
            return ("vCenter Server failed to come up after restore: the backup was taken against a different "
                    "SSO domain version (" + "; ".join(diffs) + "). A pre-upgrade vCenter backup cannot be "
                    "used once the PSCs are upgraded; roll back the whole domain or rebuild the vCenter.")
        return ""

    def _advance_update(self, node: dict, task: dict) -> bool:
        frac, pct = self._progress(task)
        op = task["operation"]
        if op == "stage":
            if task.get("fail") and frac >= 0.5:
                task["progress"] = 50
                self._finish(task, False, task["fail"], "status")
                return True
            if frac >= 1.0:
                node["update"]["staged"] = task["version"]
                self._finish(task, True, "Staging completed.", "status")
                return True
            task["progress"] = pct
            return False
        # install / stage-and-install
        if task.get("fail") and frac >= 0.5:
            task["progress"] = 50
            self._finish(task, False, task["fail"], "status")
            node["update"]["failed"] = task["version"]
            self._record(node["name"], "install_failed", version=task["version"], error=task["fail"])
            if task.get("down"):
                node["down"] = True
                node["down_reason"] = "appliance went down during the update install"
                node["health"] = "gray"
                self._changed(node["name"])
            return True
        reboot_at = _reboot_at(task)
        if frac < reboot_at:
            task["progress"] = pct
            return False
        target = parse_version(task["release"], task["build"])
        problem = self._update_rule_problem(node, target)
        if problem:
            self._finish(task, False, problem, "status")
            node["update"]["failed"] = task["version"]
            self._record(node["name"], "install_failed", version=task["version"], error=problem)
            return True
        # The packages are in: the appliance reboots into the new version and answers again only at the end.
        node["version"], node["build"] = target.release, target.build
        node["patched"] = True
        self._replicate()
        node["update"]["staged"] = None
        node["update"]["failed"] = None
        self._finish(task, True, "Installation completed.", "status")
        self._record(node["name"], "reboot_started", version=task["version"])
        self._start_boot(node, task["duration"] * (1.0 - reboot_at) * self.faults.reboot_factor(node["name"]),
                         "install")
        return True

    # -- vmdir replication of linked vCenters (VMware KB 313886) ------------------------------------------
    def _replicate(self) -> None:
        """A change on a linked vCenter (an update, an installer upgrade) replicates to every linked vCenter of
        the domain (vmdir, every 30 s): they all carry one new vmdir generation, in their data (what a
        snapshot keeps and a revert brings back)."""
        nodes = [n for n in self.nodes.values() if linked(n)]
        if len(nodes) < 2:
            return
        gen = max(n["data"].get("vmdir", 0) for n in nodes) + 1
        for n in nodes:
            n["data"]["vmdir"] = gen

    def _replication_check(self, node: dict) -> None:
        """KB 313886: "reverting one [linked node] alone leaves the vmdir instances unable to replicate". A
        linked vCenter that boots with another vmdir generation than its partners (it was reverted, they were
        not, or the other way round) comes up broken; a whole set reverted before any power-on does not."""
        peers = [n["name"] for n in self.nodes.values() if linked(n) and n is not node
                 and n["data"].get("vmdir", 0) != node["data"].get("vmdir", 0)]
        if not linked(node) or not peers:
            return
        node.update(health="red", broken=f"vmdir replication with {', '.join(sorted(peers))} fails: linked vCenters "
                                         f"must be reverted together, all before any is powered on (KB 313886)")
        self._record(node["name"], "corrupt", reason="vmdir replication")

    # -- reboots and power-ons (lab/boot.py) --------------------------------------------------------
    def _start_boot(self, node: dict, seconds: float, why: str) -> None:
        node["booting"] = {**boot.start(self.now(), seconds, why), "phase": "os"}
        node["boot"] += 1  # sessions do not survive a reboot
        self._record(node["name"], "boot_started", why=why, seconds=seconds)
        self._changed(node["name"])

    def _advance_boot(self, node: dict) -> bool:
        b = node["booting"]
        ph = boot.phase(b, self.now())
        if ph == b.get("phase"):
            return False
        self._changed(node["name"])
        if ph is not None:
            b["phase"] = ph  # the OS is up: the reverse proxy listens and answers 503
            return True
        node["booting"] = None
        if b["why"] == "power_on":
            self._replication_check(node)
        self._record(node["name"], "boot_completed", why=b["why"])
        if b["why"] == "install":
            self._record(node["name"], "install_completed", version=node["version"], build=node["build"])
        return True

    def reachability(self, name: str) -> str:
        """'refused' (down, or rebooting: nothing listens), 'starting' (services start: 503) or 'up'."""
        node = self.nodes[name]
        if node["down"]:
            return "refused"
        return {"os": "refused", "services": "starting"}.get(boot.phase(node.get("booting"), self.now()) or "",
                                                             "up")

    def vim_answers(self, name: str) -> bool:
        """A vCenter's vim25 endpoint (its vcsim) runs only when the appliance is up and vpxd runs."""
        node = self.nodes[name]
        return self.reachability(name) == "up" and node["services"].get("vpxd", "STARTED") == "STARTED"

    # -- the lab's record (lab/ledger.py) and the faults that read it -------------------------------
    def _record(self, name: str, event: str, **detail: Any) -> None:
        ledger.append(self.data.setdefault("ledger", []), self.now(), name, event, **detail)
        self._apply_due_faults()

    def record(self, name: str, event: str, **detail: Any) -> None:
        """Add to the record from outside the state (installer stand-in, VM events, REST twin)."""
        with self.lock:
            self.node(name)
            self._record(name, event, **detail)
            self.save()
        self._fire()

    def ledger_view(self, since: int = 0) -> dict:
        with self.lock:
            entries = list(self.data.get("ledger", []))
        return {"events": copy.deepcopy(entries[since:]), "counts": ledger.counts(entries)}

    def fault_due(self, after: dict) -> bool:
        """Does the lab's record meet a fault's `after` condition now (lab/faults.py)?"""
        with self.lock:
            return ledger.met(self.data.get("ledger", []), after, {n: d["role"] for n, d in self.nodes.items()})

    def _apply_due_faults(self) -> bool:
        roles = {n: d["role"] for n, d in self.nodes.items()}
        applied = False
        for f in self.faults.pending_node_faults():
            if f.spent:  # applied meanwhile, by the record entry of another fault
                continue
            if f.after is not None and not ledger.met(self.data.get("ledger", []), f.after, roles):
                continue
            self.faults.spend(f)
            if f.node in self.nodes:
                self._break(f)
                applied = True
        return applied

    def _break(self, f: Fault) -> None:
        """down / corrupt / delete one node (lab/faults.py says what each means and what brings it back)."""
        node = self.nodes[f.node]
        reason = f.message or f"lab fault: {f.type}"
        if f.type == "corrupt":
            node.update(broken=reason, health="red")
            for svc in CORRUPT_SERVICES[node["role"]]:
                node["services"][svc] = "STOPPED"
        else:
            node.update(down=True, down_reason=reason, health="gray", booting=None, deleted=f.type == "delete")
            node["boot"] += 1
            if f.type == "delete":
                self.data["vms"].get(node["vm"]["vcenter"], {}).pop(node["vm"]["name"], None)
        self._record(f.node, f.type, reason=reason)
        self._changed(f.node)

    def break_node(self, name: str, kind: str, reason: str = "") -> dict:
        """The control API's down / corrupt / delete: the same as the fault kind, now."""
        with self.lock:
            self.node(name)
            self._break(Fault(type=kind, node=name, message=reason))
            self.save()
            out = copy.deepcopy(self.nodes[name])
        self._fire()
        return out

    # -- domain rules -------------------------------------------------------------------------------
    def _update_rule_problem(self, node: dict, target: Version) -> str:
        """Why installing target on node breaks the domain (vCenters only), or ''."""
        if node["role"] != "vcenter":
            return ""
        psc = self.nodes.get(node.get("psc") or "")
        if psc is not None:
            pv = version_of(psc)
            if target > pv:
                return (f"vCenter Server {target.release} (build {target.build}) cannot run against its Platform "
                        f"Services Controller {psc['name']} at {pv.release} (build {pv.build}): update the PSC first")
        older = [p for p in self.pscs() if version_of(p) < target]
        if older:
            names = ", ".join(f"{p['name']} ({p['version']})" for p in older)
            return (f"all Platform Services Controllers of the SSO domain must be at {target.release} or later "
                    f"before a vCenter Server is; older: {names}")
        return ""

    def _psc_unreachable(self, node: dict) -> str:
        """A vCenter's update or upgrade needs its PSC (the SSO credentials are checked there), or ''."""
        psc = node.get("psc") or ""
        if node["role"] != "vcenter" or psc not in self.nodes or self.reachability(psc) == "up":
            return ""
        return (f"cannot reach the Platform Services Controller {psc} of {node['name']}: the Single Sign-On "
                f"credentials cannot be verified")

    def domain_versions(self) -> dict[str, str]:
        return {p["name"]: f"{p['version']} build {p['build']}" for p in self.pscs()}

    # -- backup ------------------------------------------------------------------------------------
    def start_backup(self, name: str, piece: dict) -> dict:
        with self.lock:
            node = self.node(name)
            self._advance(name)
            self._validate_backup_piece(node, piece)
            if self._busy(node):
                raise LabError("A backup or restore is already in progress", "feature_in_use", 400)
            now = self.now()
            n = 0
            while True:  # timestamp-based id, like 20171010-001531-5973321; unique per node
                bid = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now + n)) + f"-{node['build']}"
                if bid not in node["backup_jobs"]:
                    break
                n += 1
            fail = self.faults.step_failure(name, "backup")
            job = {
                "id": bid, "state": "INPROGRESS", "progress": 0, "messages": [], "start": now,
                "duration": self.duration(name, "backup"), "end": None, "fail": fail,
                "record": {
                    "node": name, "id": bid, "location": piece["location"].rstrip("/"),
                    "location_type": piece["location_type"], "parts": list(piece.get("parts") or []),
                    "backup_password": piece.get("backup_password") or "", "comment": piece.get("comment", ""),
                    "version": node["version"], "build": node["build"], "instance_uuid": node["instance_uuid"],
                    "moref_salt": node["moref_salt"], "data": copy.deepcopy(node["data"]), "psc": node.get("psc"),
                    "role": node["role"], "domain_versions": self.domain_versions(),
                },
            }
            node["backup_jobs"][bid] = job
            self._record(name, "backup_started", id=bid)
            self.save()
            return job

    def _validate_backup_piece(self, node: dict, piece: Any) -> None:
        if not isinstance(piece, dict):
            raise LabError("Missing or invalid 'piece' in request body")
        parts = piece.get("parts", [])
        if not isinstance(parts, list) or any(p not in BACKUP_PARTS for p in parts):
            raise LabError(f"Invalid parts {parts!r}: supported parts are {', '.join(BACKUP_PARTS)}")
        lt = piece.get("location_type")
        allowed = list(LOCATION_TYPES)
        if version_of(node) >= catalogue().resolve(parse_version("6.7 U2")):
            allowed += LOCATION_TYPES_67U2
        if lt not in allowed:
            raise LabError(f"Invalid location_type {lt!r} for appliance {node['version']}: "
                           f"allowed {', '.join(allowed)}")
        loc = piece.get("location")
        if not isinstance(loc, str) or not loc.strip():
            raise LabError("Missing backup location")
        pw = piece.get("backup_password")
        if pw not in (None, ""):
            problem = backup_password_problem(pw)
            if problem:
                raise LabError(f"Invalid backup_password: {problem}")

    def _busy(self, node: dict) -> bool:
        running = any(j["state"] == "INPROGRESS" for j in node["backup_jobs"].values())
        rj = node["restore_job"]
        return running or bool(rj and rj["state"] == "INPROGRESS")

    def backup_job(self, name: str, bid: str) -> dict:
        with self.lock:
            node = self.node(name)
            changed = self._advance(name)
            if changed:
                self.save()
            job = self._backup_job(node, bid)
            out = copy.deepcopy(job)
        self._fire()
        return out

    @staticmethod
    def _backup_job(node: dict, bid: str) -> dict:
        job = node["backup_jobs"].get(bid)
        if job is None:
            raise LabError(f"Backup job {bid} not found", "not_found", 404)
        return job

    def cancel_backup(self, name: str, bid: str) -> dict:
        with self.lock:
            node = self.node(name)
            self._advance(name)
            job = self._backup_job(node, bid)
            if job["state"] != "INPROGRESS":
                raise LabError(f"Backup job {bid} is not running", "not_allowed_in_current_state", 400)
            self._finish(job, False, "Backup job was canceled by the user.")
            self.save()
            return copy.deepcopy(job)

    # -- restore -----------------------------------------------------------------------------------
    def find_backup(self, piece: dict) -> tuple[str, dict]:
        loc = str(piece.get("location") or "").rstrip("/")
        hits = [(k, b) for k, b in self.data["backups"].items()
                if loc and (b["location"] == loc or f"{b['location']}/{b['id']}" == loc)]
        if not hits:
            raise LabError(f"No backup found at location {loc!r}", "not_found", 404)
        return max(hits, key=lambda kb: kb[1]["timestamp"])

    def restore_validate(self, name: str, piece: Any) -> dict:
        with self.lock:
            node = self.node(name)
            if not isinstance(piece, dict):
                raise LabError("Missing or invalid 'piece' in request body")
            self._restore_preconditions(node)
            key, rec = self.find_backup(piece)
            msgs, status = [], "OK"
            if rec.get("backup_password") and piece.get("backup_password") != rec["backup_password"]:
                msgs.append("The backup password is incorrect.")
                status = "FAIL"
            if rec["role"] != node["role"]:
                msgs.append(f"The backup is of a {rec['role']} and this appliance is a {node['role']}.")
                status = "FAIL"
            if (rec["version"], rec["build"]) != (node["version"], node["build"]):
                msgs.append(f"The backup is of version {rec['version']} (build {rec['build']}); this appliance "
                            f"was deployed at {node['version']} (build {node['build']}). Deploy the same build.")
                status = "FAIL"
            if status == "OK" and self._restore_domain_problem(node, rec):
                msgs.append("The SSO domain version differs from the one recorded in the backup.")
                status = "WARNING"
            return {"status": status, "messages": msgs, "timestamp": iso(rec["timestamp"]), "parts": rec["parts"],
                    "version": catalogue().appliance_string(parse_version(rec["version"], rec["build"])),
                    "boxname": rec["node"], "comment": rec["comment"], "applicable": status != "FAIL",
                    "backup": key}

    def _restore_preconditions(self, node: dict) -> None:
        if not node["restore_mode"]:
            raise LabError(f"Appliance {node['name']} is not in restore mode: a restore runs only on a freshly "
                           f"deployed appliance (deploy one in restore mode first)",
                           "not_allowed_in_current_state", 400)

    def start_restore(self, name: str, piece: Any) -> dict:
        with self.lock:
            node = self.node(name)
            self._advance(name)
            if not isinstance(piece, dict):
                raise LabError("Missing or invalid 'piece' in request body")
            self._restore_preconditions(node)
            if self._busy(node):
                raise LabError("A backup or restore is already in progress", "feature_in_use", 400)
            v = self.restore_validate(name, piece)
            if v["status"] == "FAIL":
                raise LabError("Restore validation failed: " + " ".join(v["messages"]))
            if piece.get("sso_admin_user_name") and (
                    piece.get("sso_admin_user_name") != self.data["sso_user"]
                    or piece.get("sso_admin_user_password") != self.data["sso_password"]):
                raise LabError("Invalid SSO administrator credentials", "unauthenticated", 400)
            job = {"state": "INPROGRESS", "progress": 0, "messages": [], "start": self.now(),
                   "duration": self.duration(name, "restore"), "end": None,
                   "fail": self.faults.step_failure(name, "restore"), "backup": v["backup"]}
            node["restore_job"] = job
            self._record(name, "restore_started", backup=v["backup"])
            self.save()
            return copy.deepcopy(job)

    def restore_job(self, name: str) -> dict | None:
        with self.lock:
            node = self.node(name)
            if self._advance(name):
                self.save()
            out = copy.deepcopy(node["restore_job"])
        self._fire()
        return out

    def cancel_restore(self, name: str) -> dict:
        with self.lock:
            node = self.node(name)
            self._advance(name)
            job = node["restore_job"]
            if not job or job["state"] != "INPROGRESS":
                raise LabError("No restore job is running", "not_allowed_in_current_state", 400)
            self._finish(job, False, "Restore job was canceled by the user.")
            self.save()
            return copy.deepcopy(job)

    # -- update ------------------------------------------------------------------------------------
    def available_updates(self, name: str) -> list[Version]:
        """Patches newer than the node within its release line, from the lab's repository."""
        node = self.node(name)
        cur = version_of(node)
        repo = self.data.get("repository")
        if repo is None:
            cands = [r.version for r in catalogue().releases]
        else:
            cands = [catalogue().resolve(parse_version(str(x))) for x in repo]
        return sorted(v for v in cands if v.line == cur.line and v > cur)

    def resolve_update(self, name: str, version: str) -> Version:
        try:
            want = parse_version(version)
        except ValueError:
            raise LabError(f"Update {version!r} not found", "not_found", 404) from None
        for v in self.available_updates(name):
            if v.same_release(want):
                return v
        raise LabError(f"Update {version} not found", "not_found", 404)

    def set_query_time(self, name: str) -> None:
        with self.lock:
            self.node(name)["update"]["latest_query_time"] = self.now()
            self.save()

    def update_info(self, name: str) -> dict:
        with self.lock:
            node = self.node(name)
            if self._advance(name):
                self.save()
            u = node["update"]
            task = copy.deepcopy(u["task"])
            base = catalogue().appliance_string(version_of(node))
            if task and task["status"] == "RUNNING":
                state = "STAGE_IN_PROGRESS" if task["operation"] == "stage" else "INSTALL_IN_PROGRESS"
                ver = task["version"]
            elif u["failed"]:
                state, ver = "INSTALL_FAILED", u["failed"]
            elif u["staged"]:
                state, ver = "UPDATES_PENDING", u["staged"]
            else:
                state, ver = "UP_TO_DATE", base
            out = {"state": state, "version": ver, "latest_query_time": iso(u["latest_query_time"])}
            if task:
                out["task"] = task
        self._fire()
        return out

    def precheck(self, name: str, version: str) -> dict:
        with self.lock:
            node = self.node(name)
            target = self.resolve_update(name, version)
            errors = []
            problem = self._update_rule_problem(node, target)
            if problem:
                errors.append(problem)
            fault = self.faults.step_failure(name, "precheck")
            if fault:
                errors.append(fault)
            return {"target": target, "errors": errors}

    def start_update(self, name: str, version: str, operation: str, user_data: dict | None) -> dict:
        with self.lock:
            node = self.node(name)
            self._advance(name)
            target = self.resolve_update(name, version)
            u = node["update"]
            if u["task"] and u["task"]["status"] == "RUNNING":
                raise LabError(f"An update {u['task']['operation']} is already in progress",
                               "not_allowed_in_current_state", 400)
            vstr = catalogue().appliance_string(target)
            if operation == "install" and u["staged"] != vstr:
                raise LabError(f"Update {vstr} is not staged: stage it first", "not_allowed_in_current_state", 400)
            fail, down = None, False
            if operation in ("install", "stage-and-install"):
                pw = (user_data or {}).get("vmdir.password")
                if pw != self.data["sso_password"]:
                    raise LabError("Invalid value for vmdir.password: the SSO administrator password is incorrect")
                problem = self._update_rule_problem(node, target) or self._psc_unreachable(node)
                if problem:
                    raise LabError(problem, "not_allowed_in_current_state", 400)
                if operation == "stage-and-install":
                    fail = self.faults.step_failure(name, "stage")
                fail = fail or self.faults.step_failure(name, "install")
                if not fail and self.faults.down_mid_install(name):
                    fail, down = "The appliance stopped responding during the update installation.", True
                dur = self.duration(name, "install")
                stage_part = 0.0
                if operation == "stage-and-install" and u["staged"] != vstr:
                    sd = self.duration(name, "stage")
                    stage_part = sd / (sd + dur)
                    dur += sd
            else:
                fail = self.faults.step_failure(name, "stage")
                dur, stage_part = self.duration(name, "stage"), 1.0
            u["failed"] = None
            task = {"operation": operation, "status": "RUNNING", "progress": 0, "messages": [], "start": self.now(),
                    "end": None, "duration": dur, "version": vstr, "release": target.release, "build": target.build,
                    "fail": fail, "down": down, "stage_part": stage_part, "error": None}
            u["task"] = task
            self._record(name, "stage_started" if operation == "stage" else "install_started", version=vstr,
                         operation=operation)
            self.save()
            return copy.deepcopy(task)

    def validate_update(self, name: str, version: str, user_data: dict | None) -> dict:
        with self.lock:
            self.node(name)
            self.resolve_update(name, version)
            errors = []
            pw = (user_data or {}).get("vmdir.password")
            if pw is None:
                errors.append("Missing value for vmdir.password")
            elif pw != self.data["sso_password"]:
                errors.append("Invalid value for vmdir.password: the SSO administrator password is incorrect")
            fault = self.faults.step_failure(name, "validate")
            if fault:
                errors.append(fault)
            return {"errors": errors}

    # -- control API operations ---------------------------------------------------------------------
    def set_restore_mode(self, name: str, version: str | None = None, build: int | None = None) -> dict:
        """The node is replaced by a freshly deployed appliance waiting for a restore."""
        with self.lock:
            node = self.node(name)
            if version:
                v = catalogue().resolve(parse_version(version, build))
                node["version"], node["build"] = v.release, v.build
            node.update(restore_mode=True, down=False, down_reason="", health="gray", broken="", deleted=False,
                        booting=None, data={}, instance_uuid=str(uuid.uuid4()), install_time=self.now(),
                        patched=False)
            node["services"] = {s: "STARTED" for s in node["services"]}
            node["boot"] += 1
            node["restore_job"] = None
            node["update"] = {"staged": None, "task": None, "failed": None, "latest_query_time": None}
            if node["vm"]["vcenter"]:  # the installer's restore workflow deployed a new appliance VM
                self.data["vms"].setdefault(node["vm"]["vcenter"], {})[node["vm"]["name"]] = "poweredOn"
            self._record(name, "restore_mode", version=node["version"])
            self._changed(name)
            self.save()
            out = copy.deepcopy(node)
        self._fire()
        return out

    def set_down(self, name: str, down: bool, reason: str = "", event: str | None = None) -> dict:
        """down=True: nothing answers; down=False: answers at once (revive), or after a boot (event
        "power_on": the appliance VM was powered on). A deleted node comes back only by restore-mode."""
        with self.lock:
            node = self.node(name)
            if not down and node.get("deleted"):
                raise LabError(f"{name} was deleted: only a restore onto a newly deployed appliance brings it "
                               f"back (POST /lab/node/{name}/restore-mode, then the restore job)",
                               "not_allowed_in_current_state", 400)
            node["down"] = down
            node["down_reason"] = reason if down else ""
            node["booting"] = None
            if down:
                node["health"] = "gray"
            elif node["health"] == "gray" and not node["restore_mode"]:
                node["health"] = "red" if node["broken"] else "green"
            node["boot"] += 1
            self._record(name, event or ("down" if down else "revive"), reason=reason)
            if event == "power_on":
                self._start_boot(node, self.duration(name, "power_on"), "power_on")
            self._changed(name)
            self.save()
            out = copy.deepcopy(node)
        self._fire()
        return out

    def set_vm_power(self, mgmt: str, vm: str, power: str) -> None:
        """What the management vCenter says of one of its VMs (the lab restarts with them as they were)."""
        with self.lock:
            self.data["vms"].setdefault(mgmt, {})[vm] = power
            self.save()

    def vm_owner(self, mgmt: str, vm: str) -> tuple[str, str] | None:
        """The node whose identity VM `vm` of management vCenter `mgmt` carries, and which of its VMs it is:
        'current', or 'previous' (the installer's kept source)."""
        for name, node in self.nodes.items():
            if node.get("vm", {}).get("vcenter") == mgmt and node["vm"].get("name") == vm:
                return name, "current"
            prev = node.get("previous") or {}
            if prev.get("vm", {}).get("vcenter") == mgmt and prev["vm"].get("name") == vm:
                return name, "previous"
        return None

    def set_data(self, name: str, values: dict) -> dict:
        with self.lock:
            node = self.node(name)
            node["data"].update(values)
            self.save()
            return copy.deepcopy(node["data"])

    def set_repository(self, versions: list | None) -> None:
        with self.lock:
            if versions is not None:
                for x in versions:
                    parse_version(str(x))
            self.data["repository"] = versions
            self.save()

    def repoint(self, vcenter: str, psc: str) -> dict:
        with self.lock:
            vc, p = self.node(vcenter), self.node(psc)
            if vc["role"] != "vcenter" or p["role"] != "psc":
                raise LabError(f"repoint needs a vCenter and a PSC, got {vc['role']} {vcenter} and "
                               f"{p['role']} {psc}")
            if self.reachability(psc) != "up":
                raise LabError(f"PSC {psc} is unreachable", "service_unavailable", 400)
            if vc["site"] != p["site"]:
                raise LabError(f"cannot repoint {vcenter} (site {vc['site']}) to {psc} (site {p['site']}): "
                               f"a vCenter can only be repointed to a PSC of the same SSO site")
            vv, pv = version_of(vc), version_of(p)
            if not vv.same_release(pv):
                raise LabError(f"cannot repoint {vcenter} ({vv.release}) to {psc} ({pv.release}): the versions "
                               f"must match; restore or redeploy the failed PSC instead")
            vc["psc"] = psc
            self._changed(vcenter)
            self.save()
            out = copy.deepcopy(vc)
        self._fire()
        return out

    # PSC decommission (lab/decommission.py) ---------------------------------------------------------
    def start_decommission(self, on: str, psc: str | None, user: str, password: str, only_precheck: bool) -> str:
        """`POST /rest/vcenter/topology/pscs/{hostname}?action=decommission` on `on`: the task id."""
        with self.lock:
            ok = user.lower() == self.data["sso_user"].lower() and password == self.data["sso_password"]
            answering = psc is not None and self.reachability(psc) == "up"
            kind, text = decommission.problem(self.nodes, on, psc, ok, answering)
            if kind:
                raise LabError(text, kind, 401 if kind == "unauthenticated" else 400)
            task = decommission.new_task(on, str(psc), self.now(), self.duration(str(psc), "decommission"),
                                         only_precheck)
            self.data.setdefault("topology_tasks", {})[task["id"]] = task
            self._record(str(psc), "decommission_started", on=on, precheck=only_precheck)
            self.save()
        return task["id"]

    def topology_nodes(self, address_of: Callable[[str], str]) -> list[dict]:
        """`GET /rest/vcenter/topology/nodes` (vSphere API 6.7.2+): the nodes of the SSO domain, a decommissioned
        PSC no longer among them."""
        with self.lock:
            self._advance_decommissions()
            out = []
            for n in self.nodes.values():
                if n.get("decommissioned") or n.get("deleted"):
                    continue
                kind = "PSC_EXTERNAL" if n["role"] == "psc" else "VCSA_EXTERNAL" if n.get("psc") else "VCSA_EMBEDDED"
                out.append({"node": address_of(n["name"]), "type": kind,
                            **({"client_affinity": address_of(n["psc"])} if n.get("psc") else {})})
        self._fire()
        return out

    def topology_task(self, task_id: str) -> dict:
        """`GET /rest/cis/tasks/{task}` of a decommission task."""
        with self.lock:
            if self._advance_decommissions():
                self.save()
            task = self.data.get("topology_tasks", {}).get(task_id)
            if task is None:
                raise LabError(f"no task {task_id!r}", "not_found", 404)
            out = decommission.view(task, iso)
        self._fire()
        return out

    def _advance_decommissions(self) -> bool:
        """Finish the decommissions whose time has come: the PSC shut down, out of the domain, its VM off."""
        done = decommission.due(self.data.get("topology_tasks", {}), self.now())
        for task in done:
            psc = self.nodes[task["psc"]]
            task.update(status="SUCCEEDED", end=self.now())
            psc.update(decommissioned=True, down=True, down_reason="decommissioned", health="gray", booting=None)
            psc["boot"] += 1
            self.data["vms"].setdefault(psc["vm"]["vcenter"], {})[psc["vm"]["name"]] = "poweredOff"
            self._record(psc["name"], "decommissioned", on=task["on"])
            self._changed(psc["name"])
        return bool(done)

    # installer stand-in ------------------------------------------------------------------------------
    def check_major_upgrade(self, name: str, target: Version, sso: dict | None = None) -> None:
        node = self.node(name)
        src = version_of(node)
        if self.reachability(name) != "up":
            raise LabError(f"source {name} is unreachable", "service_unavailable", 400)
        if target <= src:
            raise LabError(f"target {target.release} is not newer than the source {src.release}")
        if target.line != src.line:
            allowed = UPGRADE_PATHS.get(target.line, set())
            if src.line not in allowed:
                raise LabError(f"no direct upgrade path from {src.release} to {target.release}")
            sd, td = catalogue().release_date(src), catalogue().release_date(target)
            if sd and td and sd > td:
                raise LabError(f"cannot upgrade back in time: {src.release} (released {sd}) is newer than "
                               f"{target.release} (released {td})")
        if node["role"] == "psc" and target.major >= 7:
            raise LabError(f"{target.release} has no external Platform Services Controller: a PSC cannot be "
                           f"upgraded to it (converge, then decommission)")
        if node["role"] == "vcenter" and self.converges(name, target):
            problem = (converge_problem(self.data["nodes"], node, target, sso, self.converging)
                       or self._psc_unreachable(node))
        elif node["role"] == "vcenter":
            problem = self._update_rule_problem(node, target) or self._psc_unreachable(node)
        else:
            problem = ""
        if problem:
            raise LabError(problem, "not_allowed_in_current_state", 400)

    def converges(self, name: str, target: Version) -> bool:
        """A vCenter with an external PSC going to a release without them: the installer folds SSO in."""
        return bool(self.node(name).get("psc")) and target.line not in EXTERNAL_PSC_LINES

    def apply_major_upgrade(self, name: str, target: Version, new_vm_name: str, rebuild: bool,
                            sso: dict | None = None) -> dict:
        with self.lock:
            self.check_major_upgrade(name, target, sso)
            node = self.node(name)
            mgmt = node["vm"]["vcenter"]
            converge = node["role"] == "vcenter" and self.converges(name, target)
            node["previous"] = {k: copy.deepcopy(node[k]) for k in (
                "version", "build", "instance_uuid", "moref_salt", "vm", "install_time", "patched", "data", "psc")}
            if converge:
                node["psc"] = None  # the new appliance embeds SSO, replicating with its partner
            vms = self.data["vms"].setdefault(mgmt, {})
            vms[node["vm"]["name"]] = "poweredOff"
            vms[new_vm_name] = "poweredOn"
            node["vm"] = {"vcenter": mgmt, "name": new_vm_name}
            node.update(version=target.release, build=target.build, install_time=self.now(), patched=False,
                        health="green", broken="")
            if rebuild:
                node["instance_uuid"] = str(uuid.uuid4())
                # vcsim pays ~1000 objects per salt unit at start: keep it small, but always different
                node["moref_salt"] = (int(node["moref_salt"] or 0) % 9) + 1
                node["data"] = {"generation": 1}
            node["boot"] += 1
            node["update"] = {"staged": None, "task": None, "failed": None, "latest_query_time": None}
            self._replicate()
            self._record(name, "install_completed", version=target.release, build=target.build,
                         method="installer", vm=new_vm_name)
            self._changed(name)
            self.save()
            out = copy.deepcopy(node)
        self._fire()
        return out

    def apply_persona(self, name: str, which: str, persona: dict) -> None:
        """A snapshot revert: the VM (current or kept source) carries again what it carried at snapshot time."""
        with self.lock:
            node = self.node(name)
            target = node if which == "current" else node.get("previous")
            if target is None:
                return
            target.update(copy.deepcopy(persona))
            if which == "current":
                broken = persona.get("broken") or ""
                node.update(broken=broken, health="red" if broken else "green")
                if node["down"]:  # a crashed appliance reverted: off, as a non-memory snapshot leaves it, and
                    node["down_reason"] = POWERED_OFF  # it boots from the snapshot at the next power-on
                if not broken:
                    node["services"] = {s: "STARTED" for s in node["services"]}
                node["boot"] += 1
                node["update"] = {"staged": None, "task": None, "failed": None, "latest_query_time": None}
                self._changed(name)
            self._record(name, "revert", vm=which, version=persona.get("version"))
            self.save()
        self._fire()

    def apply_rollback(self, name: str) -> dict:
        with self.lock:
            node = self.node(name)
            prev = node.get("previous")
            if not prev:
                raise LabError(f"{name} has no recorded pre-upgrade source to roll back to",
                               "not_allowed_in_current_state", 400)
            mgmt = node["vm"]["vcenter"]
            vms = self.data["vms"].setdefault(mgmt, {})
            new_vm = node["vm"]["name"]
            vms[new_vm] = "poweredOff"
            vms[prev["vm"]["name"]] = "poweredOn"
            node.update(copy.deepcopy(prev))
            node.update(previous=None, down=False, down_reason="", health="green", broken="",
                        restore_mode=False)
            node["update"] = {"staged": None, "task": None, "failed": None, "latest_query_time": None}
            self._record(name, "rollback", vm=prev["vm"]["name"], version=prev["version"])
            self._start_boot(node, self.duration(name, "power_on"), "power_on")  # the source boots
            self.save()
            out = copy.deepcopy(node)
            out["new_vm"] = new_vm
        self._fire()
        return out


def _reboot_at(task: dict) -> float:
    """Where in an install task's progress its reboot begins (after the staging share, if any)."""
    st = task.get("stage_part", 0.0) if task["operation"] == "stage-and-install" else 0.0
    return st + (1 - st) * boot.REBOOT_PHASE


def backup_password_problem(pw: Any) -> str:
    if not isinstance(pw, str):
        return "must be a string"
    if not 8 <= len(pw) <= 20:
        return "must be 8 to 20 characters long"
    if any(not (33 <= ord(c) <= 126) for c in pw):
        return "only visible ASCII characters are allowed (no space)"
    if not any(c.isupper() for c in pw):
        return "needs at least one uppercase letter"
    if not any(c.islower() for c in pw):
        return "needs at least one lowercase letter"
    if not any(c.isdigit() for c in pw):
        return "needs at least one digit"
    if all(c.isalnum() for c in pw):
        return "needs at least one special character"
    return ""


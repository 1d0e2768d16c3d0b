"""Fault injection for the lab twin: deterministic (seeded) so a rehearsal or a test is reproducible.

Why a separate module: vcwave's guards (retries, journal, refusals) are only tested if the twin can bite the
way real appliances do — a step that fails, 503 bursts, sockets closed without an answer, jobs that crawl,
sessions that expire, an appliance that dies half-way through an install.

Spec (YAML file or dict):

    seed: 42                     # optional, default 0
    faults:
      - {type: fail_step, node: vc-a, step: install, message: "disk full", times: 1}
      - {type: http_503, node: psc-a, count: 3}          # next 3 calls answer 503
      - {type: http_503, node: "*", probability: 0.1}     # 10% of calls (seeded)
      - {type: reset, node: vc-b, count: 1}               # close the socket without an answer
      - {type: slow, node: "*", factor: 5}                # jobs take 5x longer
      - {type: slow, node: psc-a, factor: 24, jobs: [install]}  # only its installs (reboot included)
      - {type: slow, node: psc-a, factor: 20, jobs: [reboot]}   # only the reboot that ends its installs
      - {type: expire_sessions, node: vc-a, after_calls: 0}   # 0 = now; N = after N more calls
      - {type: down_mid_install, node: vc-a}              # install FAILED at 50%, node unreachable until revived

`node` is a node name or "*". `fail_step` steps: precheck, backup, stage, install, restore, validate.
A bare list is accepted as `faults`. `times` (fail_step) defaults to 1; 0 means every time.

Garbage answers (what a broken proxy or a half-started service sends back; the request is not processed):

      - {type: garbage, node: psc-a, answer: truncated, path: system/version, count: 1}
      - {type: garbage, node: "*", answer: html, probability: 0.05}
      - {type: garbage, node: psc-a, answer: truncated, path: appliance/update, method: GET, count: 1,
         after: {event: install_started, node: psc-a}}   # the first state poll once its install started

`answer`: truncated (JSON cut short), list (`[1, 2, "three"]` where a struct or a session id belongs),
html (a login page with 200), huge (10 MB announced), huge-unannounced (10 MB, no Content-Length),
trickle (a valid-looking body at `rate` bytes/s, default 1024). `path` (optional) is a substring of the
request path, e.g. `cis/session` for the login; `method` (optional) narrows to GET, POST...

What happens to a whole node, and replies lost after the action was accepted (issue 14):

      - {type: lost_reply, node: psc-a, action: install, mode: reset}   # install starts; the client sees RST
      - {type: lost_reply, node: vc-a, action: backup, mode: timeout, seconds: 40}  # held, then closed
      - {type: down, node: vc-b, after: {event: install_completed, role: psc, count: all}}
      - {type: down, node: psc-b, after: {event: install_started, node: vc-a}}  # a PSC down in the vCenter wave
      - {type: corrupt, node: vc-a, reason: "vpxd database corrupt"}
      - {type: delete, node: psc-a}

* `lost_reply`: the call does what it asks (the job starts, the session opens...) and then the socket is
  closed without an answer (`mode: reset`, default) or held silent until the client gives up or `seconds`
  (default 35, beyond the product's 30 s read timeout) pass (`mode: timeout`). `action` names the call:
  LOST_REPLY_ACTIONS below (`any` = every call); `times` as for fail_step. The installer stand-in honours
  `action: installer`: the upgrade happens, the installer then exits 1 as if its connection dropped.
* `down`: the node stops answering (REST refused, vcsim stopped), as a crashed appliance: a power cycle
  alone does not bring it back; `POST /lab/node/{name}/revive` (the administrator repairs it) does, and so
  does a snapshot revert of its VM then a power-on (it boots from the snapshot) or a restore. `corrupt`: it answers, but health is red and its key services are stopped (vpxd; vmdird and
  vmware-stsd on a PSC); revive does nothing — only a restore (onto an appliance in restore mode) or a
  snapshot revert brings it back. `delete`: its appliance VM is gone from the management vCenter; it never
  answers again until `POST /lab/node/{name}/restore-mode` deploys a new appliance to restore onto.
* `after` (any of the three, and `garbage`; optional — without it the fault bites as soon as it is loaded):
  when the lab's own record (lab/ledger.py, `GET /lab/record`) holds `count` (default 1; `all` = at least one per matching
  node) events `event` of `node` (a name or "*") or of every node of `role` (psc | vcenter). Events:
  EVENTS in lab/ledger.py (install_started, reboot_started, install_completed, backup_started,
  restore_completed, revert, power_on, ...).
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from orchestrator.core.yamlsrc import load_trusted

from .ledger import EVENTS

STEPS = ("precheck", "backup", "stage", "install", "restore", "validate")
TYPES = ("fail_step", "http_503", "reset", "slow", "expire_sessions", "down_mid_install", "garbage")
GARBAGE = ("truncated", "list", "html", "huge", "huge-unannounced", "trickle")
# -- labfault: whole-node faults and lost replies (issue 14) --
NODE_FAULTS = ("down", "corrupt", "delete")
LOST_REPLY_ACTIONS = ("any", "login", "version", "health", "services", "backup", "backup_job", "restore",
                      "restore_job", "update_state", "pending", "staged", "precheck", "validate", "stage",
                      "install", "stage-and-install", "installer")
LOST_REPLY_MODES = ("reset", "timeout")
TYPES += NODE_FAULTS + ("lost_reply",)


class FaultSpecError(ValueError):
    """A fault spec we cannot read; names the entry."""


@dataclass
class Fault:
    type: str
    node: str = "*"
    step: str = ""
    message: str = ""
    count: int | None = None       # http_503/reset: remaining calls
    probability: float = 0.0       # http_503/reset
    factor: float = 1.0            # slow
    jobs: tuple[str, ...] = ()     # slow: only these job kinds (lab/state.py DURATIONS); empty = all
    after_calls: int | None = None  # expire_sessions
    times: int = 1                 # fail_step / down_mid_install / lost_reply: remaining (0 = unlimited)
    spent: bool = False
    answer: str = ""               # garbage: what is sent back (GARBAGE)
    path: str = ""                 # garbage: only requests whose path contains this
    method: str = ""               # garbage: only this HTTP method
    rate: int = 1024               # garbage/trickle: bytes per second
    action: str = ""               # lost_reply
    mode: str = "reset"            # lost_reply
    seconds: float = 35.0          # lost_reply, mode timeout
    after: dict[str, Any] | None = None  # down / corrupt / delete / garbage: when the lab's record says so

    def matches(self, node: str) -> bool:
        return not self.spent and (self.node == "*" or self.node == node)

    def to_dict(self) -> dict[str, Any]:
        d = {"type": self.type, "node": self.node}
        for k in ("step", "message"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        if self.count is not None:
            d["count"] = self.count
        if self.probability:
            d["probability"] = self.probability
        if self.type == "slow":
            d["factor"] = self.factor
            if self.jobs:
                d["jobs"] = list(self.jobs)
        if self.after_calls is not None:
            d["after_calls"] = self.after_calls
        if self.type in ("fail_step", "down_mid_install", "lost_reply"):
            d["times"] = self.times
        if self.type == "garbage":
            d.update({k: getattr(self, k) for k in ("answer", "path", "method", "rate") if getattr(self, k)})
        if self.type == "lost_reply":
            d.update(action=self.action, mode=self.mode, seconds=self.seconds)
        if self.after is not None:
            d["after"] = dict(self.after)
        d["spent"] = self.spent
        return d


def _parse_entry(i: int, e: Any) -> Fault:
    where = f"faults[{i}]"
    if not isinstance(e, dict):
        raise FaultSpecError(f"{where}: expected a mapping, got {e!r}")
    t = e.get("type")
    if t not in TYPES:
        raise FaultSpecError(f"{where}: type must be one of {', '.join(TYPES)}, got {t!r}")
    f = Fault(type=t, node=str(e.get("node", "*")))
    f.message = str(e.get("message", ""))
    if t == "fail_step":
        f.step = str(e.get("step", ""))
        if f.step not in STEPS:
            raise FaultSpecError(f"{where}: step must be one of {', '.join(STEPS)}, got {f.step!r}")
        f.times = int(e.get("times", 1))
    elif t in ("http_503", "reset"):
        _how_often(f, e, where)
    elif t == "slow":
        f.factor = float(e.get("factor", 1.0))
        if f.factor <= 0:
            raise FaultSpecError(f"{where}: factor must be > 0")
        jobs = e.get("jobs", [])
        if not isinstance(jobs, list) or not all(isinstance(j, str) for j in jobs):
            raise FaultSpecError(f"{where}: jobs must be a list of job kinds, got {jobs!r}")
        f.jobs = tuple(jobs)
    elif t == "expire_sessions":
        f.after_calls = int(e.get("after_calls", 0))
    elif t == "down_mid_install":
        f.times = int(e.get("times", 1))
    elif t == "garbage":
        _parse_garbage(f, e, where)
    elif t == "lost_reply":
        _parse_lost_reply(where, e, f)
    elif t in NODE_FAULTS:
        _parse_node_fault(where, e, f)
    return f


def _how_often(f: Fault, e: dict, where: str) -> None:
    """`count` (the next N matching calls) or `probability` (seeded) for the per-call faults."""
    if "count" in e:
        f.count = int(e["count"])
        if f.count < 0:
            raise FaultSpecError(f"{where}: count must be >= 0")
    elif "probability" in e:
        f.probability = float(e["probability"])
        if not 0.0 <= f.probability <= 1.0:
            raise FaultSpecError(f"{where}: probability must be within [0, 1]")
    else:
        raise FaultSpecError(f"{where}: {f.type} needs count or probability")


def _parse_garbage(f: Fault, e: dict, where: str) -> None:
    f.answer = str(e.get("answer", ""))
    if f.answer not in GARBAGE:
        raise FaultSpecError(f"{where}: answer must be one of {', '.join(GARBAGE)}, got {f.answer!r}")
    f.path, f.method = str(e.get("path", "")), str(e.get("method", "")).upper()
    f.rate = int(e.get("rate", 1024))
    if f.rate < 1:
        raise FaultSpecError(f"{where}: rate must be >= 1 byte/s")
    _how_often(f, e, where)
    _parse_after(where, e, f)


def _parse_lost_reply(where: str, e: dict, f: Fault) -> None:
    f.action = str(e.get("action", ""))
    if f.action not in LOST_REPLY_ACTIONS:
        raise FaultSpecError(f"{where}: action must be one of {', '.join(LOST_REPLY_ACTIONS)}, got {f.action!r}")
    f.mode = str(e.get("mode", "reset"))
    if f.mode not in LOST_REPLY_MODES:
        raise FaultSpecError(f"{where}: mode must be reset or timeout, got {f.mode!r}")
    f.seconds = float(e.get("seconds", 35.0))
    if f.seconds <= 0:
        raise FaultSpecError(f"{where}: seconds must be > 0")
    f.times = int(e.get("times", 1))


def _parse_node_fault(where: str, e: dict, f: Fault) -> None:
    """A whole-node fault names one node (a fault that downs every node at once is no scenario)."""
    if f.node == "*":
        raise FaultSpecError(f"{where}: {f.type} needs a node name, not '*'")
    f.message = str(e.get("reason", e.get("message", "")))
    _parse_after(where, e, f)


def _parse_after(where: str, e: dict, f: Fault) -> None:
    """`after`: the fault bites only once the lab's record holds `count` events `event` of `node` / `role`."""
    after = e.get("after")
    if after is None:
        return
    if not isinstance(after, dict) or after.get("event") not in EVENTS:
        raise FaultSpecError(f"{where}: after must be a mapping with an event among {', '.join(EVENTS)}, "
                             f"got {after!r}")
    unknown = set(after) - {"event", "node", "role", "count"}
    if unknown:
        raise FaultSpecError(f"{where}: after: unknown keys {', '.join(sorted(unknown))}")
    if after.get("role") not in (None, "psc", "vcenter"):
        raise FaultSpecError(f"{where}: after.role must be psc or vcenter, got {after['role']!r}")
    count = after.get("count", 1)
    if count != "all" and (not isinstance(count, int) or count < 1):
        raise FaultSpecError(f"{where}: after.count must be a positive number or 'all', got {count!r}")
    f.after = {"event": after["event"], "node": str(after.get("node", "*")), "role": after.get("role"),
               "count": count}


def _use(f: Fault) -> None:
    """One use of a counted fault (`times` 0 = unlimited, never spent)."""
    if f.times > 0:
        f.times -= 1
        if f.times == 0:
            f.spent = True


class Faults:
    """The active fault spec. Thread-safe; every decision draws from one seeded RNG."""

    def __init__(self, spec: dict | list | None = None) -> None:
        self._lock = threading.Lock()
        self.load(spec)

    @classmethod
    def from_file(cls, path: str | Path) -> "Faults":
        return cls(load_trusted(Path(path).read_text()))

    def load(self, spec: dict | list | None) -> None:
        """Replace the whole spec (validates first: a bad spec leaves the old one in place)."""
        if spec is None:
            spec = {}
        if isinstance(spec, list):
            spec = {"faults": spec}
        if not isinstance(spec, dict):
            raise FaultSpecError(f"fault spec must be a mapping or a list, got {type(spec).__name__}")
        entries = spec.get("faults") or []
        if not isinstance(entries, list):
            raise FaultSpecError("faults: expected a list")
        parsed = [_parse_entry(i, e) for i, e in enumerate(entries)]
        seed = int(spec.get("seed", 0))
        with getattr(self, "_lock", threading.Lock()):
            self.seed = seed
            self.rng = random.Random(seed)
            self.faults = parsed

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"seed": self.seed, "faults": [f.to_dict() for f in self.faults]}

    # -- per-call decisions (appliance HTTP layer) ------------------------------------------------
    def on_call(self, node: str) -> str | None:
        """Decide the fate of one HTTP call: 'reset', '503', 'expire' (expire sessions first), or None."""
        with self._lock:
            outcome = None
            for f in self.faults:
                if not f.matches(node):
                    continue
                if f.type == "expire_sessions":
                    if f.after_calls is not None and f.after_calls <= 0:
                        f.spent = True
                        outcome = outcome or "expire"
                    elif f.after_calls is not None:
                        f.after_calls -= 1
                elif f.type in ("reset", "http_503") and outcome in (None, "expire"):
                    hit = False
                    if f.count is not None:
                        if f.count > 0:
                            f.count -= 1
                            hit = True
                            if f.count == 0:
                                f.spent = True
                    elif self.rng.random() < f.probability:
                        hit = True
                    if hit:
                        outcome = "reset" if f.type == "reset" else "503"
            return outcome

    def expire_now(self, node: str) -> bool:
        """True (once) when an `expire_sessions` fault with after_calls 0 is pending for node."""
        with self._lock:
            for f in self.faults:
                if f.matches(node) and f.type == "expire_sessions" and (f.after_calls or 0) <= 0:
                    f.spent = True
                    return True
            return False

    # -- job decisions (state layer) ---------------------------------------------------------------
    def step_failure(self, node: str, step: str) -> str | None:
        """The failure message when step on node must fail now (consumes one `times`)."""
        with self._lock:
            for f in self.faults:
                if f.matches(node) and f.type == "fail_step" and f.step == step:
                    _use(f)
                    return f.message or f"lab fault: {step} failed on {node}"
            return None

    def down_mid_install(self, node: str) -> bool:
        with self._lock:
            for f in self.faults:
                if f.matches(node) and f.type == "down_mid_install":
                    _use(f)
                    return True
            return False

    def slow_factor(self, node: str, job: str = "") -> float:
        with self._lock:
            factor = 1.0
            for f in self.faults:
                if f.matches(node) and f.type == "slow" and (not f.jobs or job in f.jobs):
                    factor *= f.factor
            return factor

    def reboot_factor(self, node: str) -> float:
        """x F for the reboot that ends an install, from `slow` faults that name the job `reboot` (on top of
        the install's own factor, which already lengthens its reboot): a kill can aim inside a long reboot
        without first waiting out an install as long."""
        with self._lock:
            factor = 1.0
            for f in self.faults:
                if f.matches(node) and f.type == "slow" and "reboot" in f.jobs:
                    factor *= f.factor
            return factor

    # -- garbage answers (appliance HTTP layer, before routing) ------------------------------------
    def garbage(self, node: str, method: str, path: str,
                due: Callable[[dict[str, Any]], bool] = lambda after: True) -> Fault | None:
        """The garbage fault that answers this call instead of the twin, if any (consumes one count). `due`
        tells whether a fault's `after` condition holds in the lab's record (e.g. right after an install
        started: the next state poll gets the garbage). `due` is asked outside this lock: it takes the
        state's, and the state asks the faults under its own."""
        armed = {id(f) for f in self.faults if f.type == "garbage" and f.after is not None and due(f.after)}
        with self._lock:
            for f in self.faults:
                if not (f.matches(node) and f.type == "garbage" and f.path in path
                        and f.method in ("", method)) or (f.after is not None and id(f) not in armed):
                    continue
                if f.count is not None:
                    if f.count <= 0:
                        continue
                    f.count -= 1
                    f.spent = f.count == 0
                    return f
                if self.rng.random() < f.probability:
                    return f
            return None

    # -- labfault: whole-node faults and lost replies (issue 14) -----------------------------------
    def pending_node_faults(self) -> list[Fault]:
        """down / corrupt / delete faults not applied yet (the state decides when their `after` is met)."""
        with self._lock:
            return [f for f in self.faults if f.type in NODE_FAULTS and not f.spent]

    def spend(self, fault: Fault) -> None:
        with self._lock:
            fault.spent = True

    def lost_reply(self, node: str, action: str) -> Fault | None:
        """The lost_reply fault that swallows the answer to `action` on node now (consumes one `times`)."""
        with self._lock:
            for f in self.faults:
                if f.matches(node) and f.type == "lost_reply" and f.action in ("any", action):
                    _use(f)
                    return f
            return None

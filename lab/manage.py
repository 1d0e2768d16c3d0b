"""Start, inspect and stop a lab twin in the background (`invoke lab.up | lab.status | lab.down`).

`up` spawns `python -m lab.daemon` in its own session and waits until it reports ready; `down` stops
exactly the processes it started (the daemon by pid, then any vcsim pid it recorded that is still alive).
Only loopback addresses are ever used.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from lab.warm_relay import alive
from orchestrator.errors import VcwaveError

DEFAULT_DIR = Path(".vcwave/lab")


class LabError(VcwaveError):
    """The lab could not be started or reached (exit 1)."""

    pass


def read_lab(lab_dir: str | Path = DEFAULT_DIR) -> dict[str, Any]:
    p = Path(lab_dir) / "lab.json"
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab in {lab_dir} (lab.json missing): start one with `invoke lab.up`") from None


def up(inventory: str | Path, lab_dir: str | Path = DEFAULT_DIR, time_scale: float = 0.001,
       faults: str | None = None, timeout: float = 120.0, extra: tuple[str, ...] = (),
       warm: bool = False, reset: bool = False) -> dict[str, Any]:
    """Start the twin; return lab.json (`resumed`: the domain state of the last lab in this folder was taken
    up again, as after `lab.down`; `reset=True` forgets it first: a fresh lab at the inventory's versions).
    Refuses to start a second lab in the same folder.

    warm=True (tests and the fault harness, which start dozens of labs): the daemon is forked from an
    already-imported process (lab/warmcli.py) instead of a fresh interpreter; it is the same daemon."""
    d = Path(lab_dir)
    d.mkdir(parents=True, exist_ok=True)
    if (d / "lab.json").exists():
        old = read_lab(d)
        if alive(old.get("pid")) and old.get("running", True):
            raise LabError(f"a lab is already running in {d} (pid {old['pid']}): `invoke lab.down` first")
    if reset:
        (d / "state.json").unlink(missing_ok=True)
    args = ["--inventory", str(inventory), "--dir", str(d), "--time-scale", str(time_scale), *extra]
    if faults:
        args += ["--faults", str(faults)]
    out = open(d / "daemon.out", "w")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    if warm:
        from lab.warmcli import WarmCli
        proc: Any = WarmCli.shared().spawn(args, os.getcwd(), env, module="lab.daemon", stdout=out)
    else:
        proc = subprocess.Popen([sys.executable, "-m", "lab.daemon", *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"the lab daemon exited with {proc.returncode}:\n{_tail(d)}")
        text = (d / "daemon.out").read_text()
        if '"control_url"' in text:
            info = read_lab(d)
            info["daemon_pid"] = proc.pid
            return info
        time.sleep(0.1)
    down(d)
    raise LabError(f"the lab did not start within {timeout:.0f}s:\n{_tail(d)}")


def _tail(d: Path, n: int = 20) -> str:
    lines = []
    for name in ("daemon.out", "daemon.log"):
        p = d / name
        if p.exists():
            lines += p.read_text(errors="replace").splitlines()[-n:]
    return "\n".join(lines)


def status(lab_dir: str | Path = DEFAULT_DIR) -> dict[str, Any]:
    info = read_lab(lab_dir)
    info["alive"] = alive(info.get("pid"))
    if info["alive"] and info.get("control_url"):
        try:
            with urllib.request.urlopen(info["control_url"] + "/lab/state", timeout=5) as r:
                info["state"] = json.loads(r.read())
        except OSError as exc:
            info["state_error"] = str(exc)
    return info


def render_status(info: dict[str, Any]) -> str:
    """`invoke lab.status` for a person: the daemon, one line per node (what the twin says it is and whether
    it answers), the VMs' power states, backups and faults held. `--json` gives `status()` as it is."""
    when = time.strftime("%H:%M:%S", time.localtime(info.get("started_at", 0)))
    lines = [f"lab daemon pid {info.get('pid')} {'running' if info.get('alive') else 'NOT running'} "
             f"(started {when}, time scale {info.get('time_scale')}); inventory {info.get('inventory')}"]
    state = info.get("state")
    if not state:
        return "\n".join(lines + [f"no state: {info.get('state_error', 'the daemon is not running')}"])
    rows = [("node", "role", "site", "version", "build", "now", "REST", "SDK")]
    for name, node in state["nodes"].items():
        rows.append((name, node["role"], node["site"], node["version"], str(node["build"]), node_condition(node),
                     node.get("rest_url") or "-", node.get("sdk_url") or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    for vcenter, vms in state.get("vms", {}).items():
        lines.append(f"VMs on {vcenter}: " + ", ".join(f"{vm} {power}" for vm, power in vms.items()))
    faults = state.get("faults", {}).get("faults", [])
    lines.append(f"backups held: {len(state.get('backups', {}))}; faults armed: {len(faults)}"
                 + (" (" + ", ".join(str(f.get("kind", f)) for f in faults) + ")" if faults else ""))
    return "\n".join(lines)


def node_condition(node: dict[str, Any]) -> str:
    """One word (and its reason) for what a twin node is doing now."""
    if node.get("deleted"):
        return "deleted"
    if node.get("down"):
        return f"down ({node['down_reason']})" if node.get("down_reason") else "down"
    if node.get("broken"):
        return f"broken ({node['broken']})"
    if node.get("booting"):
        return "booting"
    return node.get("reachability") or ("up" if node.get("listening") else "not listening")


def control(lab_dir: str | Path, path: str, body: dict | None = None) -> Any:
    """POST (or GET without body) to the lab's control API."""
    info = read_lab(lab_dir)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(info["control_url"] + path, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def down(lab_dir: str | Path = DEFAULT_DIR, timeout: float = 20.0) -> list[int]:
    """Stop the daemon, then any vcsim it recorded that is still alive. Returns the pids stopped."""
    try:
        info = read_lab(lab_dir)
    except LabError:
        return []
    stopped = []
    pid = info.get("pid")
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped.append(pid)
    for entry in list(info.get("nodes", {}).values()) + list(info.get("management", {}).values()):
        vp = entry.get("vcsim_pid")
        if alive(vp):
            with contextlib.suppress(ProcessLookupError):
                os.kill(vp, signal.SIGKILL)
            stopped.append(vp)
    return stopped


@contextlib.contextmanager
def running(inventory: str | Path, lab_dir: str | Path, **kw: Any) -> Iterator[dict[str, Any]]:
    """A lab for the duration of a block (tests, rehearsals); always stopped."""
    info = up(inventory, lab_dir, **kw)
    try:
        yield info
    finally:
        down(lab_dir)


def write_session_env(lab_dir: str | Path = DEFAULT_DIR) -> Path:
    """Write `<lab>/env.sh` for a by-hand session: sourcing it points the production commands at the lab's
    installer stand-in (VCWAVE_INSTALLER) and tells the stand-in where its lab lives (VCWAVE_LAB_DIR), so
    `vcwave precheck`, `vcwave upgrade --wave psc`, ... run unchanged against the twin."""
    from lab.installer_standin import ENV_LAB_DIR, standin_path
    d = Path(lab_dir).resolve()
    env = d / "env.sh"
    env.write_text(f"# vcwave lab session: . {env}\nexport {ENV_LAB_DIR}='{d}'\n"
                   f"export VCWAVE_INSTALLER='{standin_path()}'\n")
    return env

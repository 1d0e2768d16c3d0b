"""Build and run vcwave-vcsim (lab/vcsim/main.go, govmomi's vCenter simulator) for the lab.

The binary is built once per content hash of main.go, in GOPATH mode against the govmomi sources
Debian ships (golang-github-vmware-govmomi-dev), and cached under ~/.cache/vcwave/vcsim/<hash>/.
Passwords reach the simulator through the VCSIM_PASSWORD environment variable, never argv.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .tlsca import LabTls

MAIN_GO = Path(__file__).resolve().parent / "vcsim" / "main.go"
BINARY_NAME = "vcwave-vcsim"
GO_PACKAGE = "vcwave-vcsim"
GOVMOMI_SUBPATH = Path("src/github.com/vmware/govmomi/simulator")
DEFAULT_GOPATHS = (Path("/usr/share/gocode"),)
INSTALL_HINT = (
    "vcsim needs Go and the govmomi sources: on Debian/Ubuntu run "
    "`apt-get install golang-go golang-github-vmware-govmomi-dev`; elsewhere install Go and put "
    "github.com/vmware/govmomi (0.24.x, with simulator/) under a GOPATH "
    "(set VCWAVE_GOVMOMI_GOPATH to that GOPATH)."
)


# The Go collector's target for vcsim (an explicit GOGC in the environment wins). At Go's default (100) a vcsim
# start ran one or two collections of its ~2 MB model before it listened, up to ~20 ms of CPU each (the mark
# workers run on the idle core); at 400 it runs none, for a heap of ~10 MB. A lab run starts vcsims ~200 times.
GOGC = "400"


class VcsimUnavailable(RuntimeError):
    """Go or the govmomi sources are missing (the message says what to install)."""


class VcsimError(RuntimeError):
    """A vcsim build or process failed (the message carries the log tail)."""


# --------------------------------------------------------------------------- build


def _default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vcwave" / "vcsim"


def _source_hash() -> str:
    return hashlib.sha256(MAIN_GO.read_bytes()).hexdigest()[:16]


def _find_go() -> str:
    go = shutil.which("go")
    if go:
        return go
    for cand in ("/usr/lib/go/bin/go", "/usr/local/go/bin/go"):
        if os.access(cand, os.X_OK):
            return cand
    raise VcsimUnavailable(f"Go toolchain not found (no `go` on PATH). {INSTALL_HINT}")


def _find_govmomi_gopath() -> Path:
    candidates: list[Path] = []
    env = os.environ.get("VCWAVE_GOVMOMI_GOPATH")
    if env:
        candidates += [Path(p) for p in env.split(os.pathsep) if p]
    candidates += list(DEFAULT_GOPATHS)
    gopath = os.environ.get("GOPATH")
    if gopath:
        candidates += [Path(p) for p in gopath.split(os.pathsep) if p]
    for cand in candidates:
        if (cand / GOVMOMI_SUBPATH).is_dir():
            return cand
    looked = ", ".join(str(c / GOVMOMI_SUBPATH) for c in candidates)
    raise VcsimUnavailable(f"govmomi simulator sources not found (looked in {looked}). {INSTALL_HINT}")


def ensure_vcsim_binary(cache_dir: Path | None = None) -> Path:
    """Return the path of a built vcwave-vcsim, building it once (file-locked, atomic rename).

    Default location: ~/.cache/vcwave/vcsim/<hash of main.go>/vcwave-vcsim. With cache_dir given,
    the binary lives in cache_dir/<hash>/vcwave-vcsim.
    """
    root = Path(cache_dir) if cache_dir is not None else _default_cache_root()
    target_dir = root / _source_hash()
    binary = target_dir / BINARY_NAME
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary

    go = _find_go()
    gocode = _find_govmomi_gopath()
    target_dir.mkdir(parents=True, exist_ok=True)
    with open(target_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary  # another process built it while we waited
        with tempfile.TemporaryDirectory(prefix="vcwave-vcsim-build-") as tmp:
            src = Path(tmp) / "src" / GO_PACKAGE
            src.mkdir(parents=True)
            shutil.copyfile(MAIN_GO, src / "main.go")
            env = dict(os.environ)
            env.update(GO111MODULE="off", GOPATH=f"{tmp}{os.pathsep}{gocode}", GOFLAGS="", CGO_ENABLED="0")
            if not env.get("GOCACHE") and not os.environ.get("HOME"):
                env["GOCACHE"] = str(root / "go-build")
            partial = target_dir / f".{BINARY_NAME}.{os.getpid()}.tmp"
            proc = subprocess.run(
                [go, "build", "-o", str(partial), GO_PACKAGE],
                cwd=tmp, env=env, capture_output=True, text=True, timeout=600,
            )
            if proc.returncode != 0:
                partial.unlink(missing_ok=True)
                out = (proc.stdout + proc.stderr).strip()
                if "cannot find package" in out:
                    raise VcsimUnavailable(f"building vcsim failed, a Go package is missing:\n{out[-2000:]}\n{INSTALL_HINT}")
                raise VcsimError(f"`go build` of {MAIN_GO} failed (rc={proc.returncode}):\n{out[-4000:]}")
            os.replace(partial, binary)
    return binary


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class VcsimSpec:
    name: str
    version: str
    build: int
    api_version: str
    full_name: str
    instance_uuid: str
    psc_host: str | None
    user: str
    password: str
    vms: int = 0  # total inventory VMs (0 = default, 4), appliance VMs come on top
    appliance_vms: tuple[str, ...] = ()
    moref_salt: int = 0  # != 0: a rebuilt vCenter, moref ids differ from a normal start
    tls: LabTls | None = None  # serve https with the lab CA's certificate (None: plain http)
    session_log: Path | None = None  # append every SOAP session id vcsim issues here (the lab's record)
    vm_hook: str | None = None  # a management vCenter: POST each VM power/snapshot change here (lab/vmevents.py)

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return (
            f"VcsimSpec(name={self.name!r}, version={self.version!r}, build={self.build!r}, "
            f"instance_uuid={self.instance_uuid!r}, psc_host={self.psc_host!r}, vms={self.vms}, "
            f"appliance_vms={self.appliance_vms!r}, moref_salt={self.moref_salt})"
        )

    def argv(self, binary: Path, port: int) -> list[str]:
        args = [
            str(binary),
            "-listen", f"127.0.0.1:{port}",
            "-version", self.version,
            "-build", str(self.build),
            "-api-version", self.api_version,
            "-full-name", self.full_name,
            "-instance-uuid", self.instance_uuid,
            "-user", self.user,
            "-vms", str(self.vms),
            "-moref-salt", str(self.moref_salt),
        ]
        if self.psc_host:
            args += ["-psc-host", self.psc_host]
        if self.appliance_vms:
            args += ["-appliance-vms", ",".join(self.appliance_vms)]
        if self.tls:
            args += ["-tls-cert", str(self.tls.cert), "-tls-key", str(self.tls.key)]
        if self.session_log:
            args += ["-session-log", str(self.session_log)]
        if self.vm_hook:
            args += ["-vm-hook", self.vm_hook]
        return args


def _tail(path: Path | None, limit: int = 4000) -> str:
    if path is None:
        return ""
    try:
        data = path.read_bytes()[-limit:]
    except OSError:
        return ""
    return data.decode("utf-8", "replace").strip()


class VcsimProcess:
    """One vcwave-vcsim process: start() / stop() / restart(spec) on the same port."""

    START_TIMEOUT = 60.0
    STOP_TIMEOUT = 5.0

    def __init__(self, spec: VcsimSpec, binary: Path, log_path: Path | None = None, port: int = 0):
        self.spec = spec
        self.binary = Path(binary)
        self.log_path = Path(log_path) if log_path is not None else None
        self.port = port
        self.url = ""
        self.pid = 0
        self._proc: subprocess.Popen | None = None
        self._own_log: Path | None = None

    # -- helpers
    def _log_file(self) -> Path:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            return self.log_path
        if self._own_log is None:
            fd, name = tempfile.mkstemp(prefix=f"vcwave-vcsim-{self.spec.name}-", suffix=".log")
            os.close(fd)
            self._own_log = Path(name)
        return self._own_log

    def _fail(self, msg: str) -> None:
        log = self._log_file()
        self._kill()
        raise VcsimError(f"vcsim {self.spec.name}: {msg}\n--- {log} (tail) ---\n{_tail(log)}")

    def _read_json_line(self, deadline: float) -> dict:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"no listen line on stdout within {self.START_TIMEOUT:.0f}s")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    rc = self._proc.poll()
                    self._fail(f"exited before listening (rc={rc})")
                buf += chunk
        line = buf.split(b"\n", 1)[0]
        try:
            return json.loads(line)
        except ValueError:
            self._fail(f"unexpected first stdout line {line[:200]!r}")
            raise  # unreachable

    def _wait_ready(self, deadline: float) -> None:
        probe = f"{self.url}/vimServiceVersions.xml"
        ctx = self.spec.tls.client_context() if self.spec.tls else None
        while True:
            if self._proc is None or self._proc.poll() is not None:
                self._fail("exited while starting")
            try:
                with urllib.request.urlopen(probe, timeout=2, context=ctx) as resp:
                    if resp.status == 200 and b"urn:vim25" in resp.read():
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self._fail(f"{probe} did not answer within {self.START_TIMEOUT:.0f}s")
            time.sleep(0.05)

    # -- API
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "VcsimProcess":
        if self.running:
            return self
        log = self._log_file()
        env = {"GOGC": GOGC, **os.environ, "VCSIM_PASSWORD": self.spec.password}
        argv = self.spec.argv(self.binary, self.port)
        deadline = time.monotonic() + self.START_TIMEOUT
        attempts = 3 if self.port else 1  # a fixed port may still be held for a moment by the old process
        for attempt in range(attempts):
            with open(log, "ab") as logf:
                logf.write(f"--- start {self.spec!r} port={self.port}\n".encode())
                logf.flush()
                self._proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=logf,
                    env=env, start_new_session=True, close_fds=True,
                )
            self.pid = self._proc.pid
            try:
                info = self._read_json_line(deadline)
                break
            except VcsimError:
                if attempt + 1 < attempts and "address already in use" in _tail(log, 500):
                    time.sleep(0.3)
                    continue
                raise
        self.port = int(info["port"])
        self.url = str(info["url"])
        self._wait_ready(deadline)
        return self

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self.STOP_TIMEOUT)
            except ProcessLookupError:
                pass
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT seconds; safe to call repeatedly."""
        self._kill()
        if self._own_log is not None:  # a private temp log (no log_path given) goes with the process
            self._own_log.unlink(missing_ok=True)
            self._own_log = None

    def restart(self, spec: VcsimSpec) -> None:
        """Stop, then start `spec` on the same port (e.g. a new version/build, same instance uuid)."""
        port = self.port
        self.stop()
        self.spec = spec
        self.port = port
        self.start()

    def __enter__(self) -> "VcsimProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"VcsimProcess(name={self.spec.name!r}, pid={self.pid}, url={self.url!r})"

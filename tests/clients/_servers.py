"""Tiny stdlib servers for client tests: a scripted appliance REST server (plain or TLS) and a cert maker."""
from __future__ import annotations

import json
import socket
import ssl
import struct
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RESET = "reset"


class Script:
    """Answers per (method, path-without-query): a list consumed in order, then `default`."""

    def __init__(self) -> None:
        self.plan: dict[tuple[str, str], list[Any]] = {}
        self.calls: list[tuple[str, str, dict]] = []
        self.sessions: set[str] = set()
        self.password = "Scr1pt-Pa55!"
        self.counter = 0
        self.lock = threading.Lock()

    def then(self, method: str, path: str, *answers: Any) -> "Script":
        self.plan.setdefault((method, path), []).extend(answers)
        return self

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.calls if m == method and p == path)


def _handler(script: Script):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _go(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            path = self.path.split("?", 1)[0]
            with script.lock:
                script.calls.append((self.command, path, dict(self.headers)))
                queue = script.plan.get((self.command, path))
                answer = queue.pop(0) if queue else None
            if answer == RESET:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            if answer is not None:
                status, body = answer
                return self._send(status, body)
            # defaults: a sane appliance
            if path == "/rest/com/vmware/cis/session" and self.command == "POST":
                import base64
                auth = self.headers.get("Authorization", "")
                user, _, pw = base64.b64decode(auth[6:] or b"").decode().partition(":")
                if pw != script.password:
                    return self._send(401, {"type": "com.vmware.vapi.std.errors.unauthenticated",
                                            "value": {"messages": [{"default_message": "bad login"}]}})
                with script.lock:
                    script.counter += 1
                    sid = f"sid-{script.counter:04d}-abcdef"
                    script.sessions.add(sid)
                return self._send(200, {"value": sid})
            if self.headers.get("vmware-api-session-id") not in script.sessions:
                return self._send(401, {"type": "com.vmware.vapi.std.errors.unauthenticated",
                                        "value": {"messages": [{"default_message": "auth required"}]}})
            if path == "/rest/appliance/system/version":
                return self._send(200, {"value": {"version": "6.7.0.20000", "build": "10244745",
                                                  "product": "VMware vCenter Server Appliance", "type": "vCSA",
                                                  "install_time": "2019-01-01T00:00:00Z"}})
            if path.startswith("/rest/appliance/health/"):
                return self._send(200, {"value": "green"})
            return self._send(404, {"type": "com.vmware.vapi.std.errors.not_found",
                                    "value": {"messages": [{"default_message": f"no {path}"}]}})

        do_GET = do_POST = do_DELETE = do_PUT = _go

    return H


class ScriptServer:
    def __init__(self, script: Script | None = None, tls_files: tuple[Path, Path] | None = None) -> None:
        self.script = script or Script()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.script))
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if tls_files:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls_files[0]), str(tls_files[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> "ScriptServer":
        self.thread.start()
        return self

    def __exit__(self, *a: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def self_signed(tmp: Path, cn: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for `cn`. An EC P-256 key: what is tested (refused by default, trusted by a CA
    bundle or a thumbprint pin) does not depend on the key type, and an RSA key took up to 2 s of CPU to make."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", f"/CN={cn}", "-addext", f"subjectAltName=IP:{cn}"],
                   check=True, capture_output=True)
    return cert, key


def der_of(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())

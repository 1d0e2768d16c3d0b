"""The login of the vSphere client is bounded like every later call (issue 17): a proxy in front of vcsim
passes everything through but one SOAP call of the login (`RetrieveServiceContent` or `Login`), or the
version document pyVmomi reads first, which it answers with garbage XML, a 70 MB body or a body trickled at
1 KB/s. Each ends as a BadAnswer naming the node and the call (exit 2), within the request's deadline."""
from __future__ import annotations

import gzip
import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from orchestrator.clients.retry import BadAnswer, RetryPolicy
from orchestrator.clients.vsphere import VSphereClient, supported_api_version

SEVENTY_MB = 70 * 1024 * 1024
GZIPPED = gzip.compress(b" " * (1024 * 1024))
GARBAGE = (b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
           b'"http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><LoginResponse><returnval><key>')


class _Proxy(BaseHTTPRequestHandler):
    """Forwards to vcsim; the request whose body (POST) or path (GET) contains `victim` gets `answer`."""

    upstream = 0
    victim = b""
    answer = ""
    served: list[str] = []

    def log_message(self, *a: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._answer(b"", self.path.encode())

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)), b"")

    def _answer(self, body: bytes, path: bytes) -> None:
        if self.victim in body or (path and self.victim in path):
            self.served.append(self.answer)
            return self._bad()
        up = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=10)
        try:
            up.request(self.command, self.path, body=body or None,
                       headers={k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")})
            resp = up.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            up.close()

    def _bad(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        if self.answer == "garbage":
            self.send_header("Content-Length", str(len(GARBAGE)))
            self.end_headers()
            self.wfile.write(GARBAGE)
            return
        if self.answer == "gzip":  # compressed though not asked for: 64 KB of it would expand to 64 MB
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(GZIPPED)))
            self.end_headers()
            self.wfile.write(GZIPPED)
            return
        if self.answer == "huge":  # announced: refused before a byte of the body is read
            self.send_header("Content-Length", str(SEVENTY_MB))
        self.end_headers()
        try:
            if self.answer == "trickle":
                self.wfile.write(GARBAGE)
                for _ in range(200):  # 1 KB/s for 200 s, unless the client hangs up first
                    self.wfile.write(b" " * 1024)
                    self.wfile.flush()
                    time.sleep(1.0)
            else:  # huge: whitespace before the root element (well-formed so far), until the client hangs up
                chunk = b" " * (1024 * 1024)
                for _ in range(70):
                    self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def proxy(vcsim) -> Iterator[type[_Proxy]]:
    handler = type("P", (_Proxy,), {"upstream": vcsim.port, "served": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    handler.port = srv.server_address[1]
    yield handler
    srv.shutdown()
    srv.server_close()


def _client(proxy: type[_Proxy], vcsim, **kw) -> VSphereClient:
    return VSphereClient("127.0.0.1", proxy.port, vcsim.user, vcsim.password, scheme="http", node="vc-x",
                         retry_policy=RetryPolicy(attempts=1), **kw)


def test_the_proxy_passes_a_good_login_through(proxy, vcsim):
    """Without a victim the proxy is transparent: what fails below fails because of the one bad answer."""
    proxy.victim = b"<NoSuchCall"
    c = _client(proxy, vcsim).connect()
    assert c.about().version == "6.7.0"
    c.disconnect()


@pytest.mark.parametrize("victim, call, says", [
    (b"<RetrieveServiceContent", "RetrieveServiceContent /sdk", "answer is not the vSphere API's (AttributeError"),
    (b"<Login", "Login /sdk", "answer is not the SOAP/XML of the vSphere API (no element found"),
])
def test_garbage_xml_in_the_login_names_node_and_call(proxy, vcsim, victim, call, says):
    """A truncated `LoginResponse`: as the answer to Login, XML that ends too soon; as the answer to
    RetrieveServiceContent, an element pyVmomi's deserializer does not know."""
    proxy.victim, proxy.answer = victim, "garbage"
    with pytest.raises(BadAnswer) as ei:
        _client(proxy, vcsim).connect()
    assert str(ei.value).startswith(f"node vc-x: connect {call}: {says}")
    assert ei.value.exit_code == 2
    assert proxy.served == ["garbage"]


@pytest.mark.parametrize("victim, call", [
    (b"<Login", "Login /sdk"),
    (b"vimServiceVersions.xml", "GET /sdk/vimServiceVersions.xml"),
])
def test_a_70_mb_login_answer_is_refused_unread(proxy, vcsim, victim, call):
    proxy.victim, proxy.answer = victim, "huge"
    t0 = time.monotonic()
    with pytest.raises(BadAnswer, match=rf"^node vc-x: connect {call}: answer of {SEVENTY_MB} bytes refused"):
        _client(proxy, vcsim).connect()
    assert time.monotonic() - t0 < 10  # refused on the header, not after 70 MB (generous: a loaded machine)


def test_a_compressed_login_answer_is_refused(proxy, vcsim):
    """vcwave asks for no compression (a gzip body escapes the size cap: it is counted before it expands)."""
    proxy.victim, proxy.answer = b"<Login", "gzip"
    with pytest.raises(BadAnswer, match=r"^node vc-x: connect Login /sdk: answer is gzip-compressed, which was not"):
        _client(proxy, vcsim).connect()


@pytest.mark.full
def test_a_70_mb_unannounced_login_answer_stops_at_the_cap(proxy, vcsim):
    proxy.victim, proxy.answer = b"<Login", "stream"
    with pytest.raises(BadAnswer, match=r"^node vc-x: connect Login /sdk: answer exceeds \d+ bytes"):
        _client(proxy, vcsim).connect()


def test_a_trickled_login_answer_ends_within_the_deadline(proxy, vcsim):
    """The body arrives at 1 KB/s (each receive well within the 5 s per-read timeout) for 200 s: only the
    request's total deadline (1.5 s here) can stop it, and it does."""
    proxy.victim, proxy.answer = b"<Login", "trickle"
    t0 = time.monotonic()
    with pytest.raises(BadAnswer, match=r"^node vc-x: connect Login /sdk: no complete answer within 1.5s"):
        _client(proxy, vcsim, timeout=5.0, total_timeout=1.5).connect()
    elapsed = time.monotonic() - t0
    assert elapsed < 3 * 1.5, f"the trickle held the login {elapsed:.1f}s"


@pytest.mark.parametrize("document, version", [
    (b'<namespaces version="1.0"><namespace><name>urn:vim25</name><version>6.7.1</version>'
     b'<priorVersions><version>6.0</version></priorVersions></namespace></namespaces>', "vim.version.version13"),
    (b'<namespaces version="1.0"><namespace><version>5.5</version></namespace></namespaces>', "vim.version.version9"),
    (b'<namespaces version="2.0"><namespace><version>6.7.1</version></namespace></namespaces>', None),
    (b"<html>sign in</html>", None),
    (b"<namespaces", None),
])
def test_supported_api_version(document, version):
    assert supported_api_version(document) == version

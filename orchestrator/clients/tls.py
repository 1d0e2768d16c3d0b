"""TLS policy for every client: verification ON by default, a CA bundle, or a pinned SHA-256 thumbprint.

Why one module: the REST client (http.client) and the vSphere client (pyVmomi) must apply the same rules:
- default: the system trust store, hostname checked;
- `verify="/path/ca.pem"`: that bundle, hostname checked;
- `thumbprint="AA:BB:..."` (SHA-256 of the server certificate, as `openssl x509 -fingerprint -sha256` or the
  vSphere client show it): the chain is not checked, the peer certificate must hash to the pin, checked in
  the context's `wrap_socket` right after the handshake, before any request (and any credential) is sent;
- `verify=False`: only when the caller asks for it, and then a `tls.verification_disabled` warning is logged;
- plain http only towards loopback hosts (the lab); refused otherwise.
"""
from __future__ import annotations

import hashlib
import os
import socket
import ssl
import threading
from functools import lru_cache
from typing import Any

from orchestrator.clients.retry import TlsError
from orchestrator.core import thumbprint as thumbprint_rules
from orchestrator.core.thumbprint import sha256_thumbprint
from orchestrator.hosts import is_loopback


def check_scheme(scheme: str, host: str, *, node: str = "") -> None:
    """Refuse plain http except towards the loopback lab."""
    if scheme not in ("http", "https"):
        raise TlsError(f"unknown scheme {scheme!r} (https, or http for the loopback lab)", node=node)
    if scheme == "http" and not is_loopback(host):
        raise TlsError(f"plain http refused for non-loopback host {host!r}: use https", node=node)


def normalize_thumbprint(thumbprint: str) -> str:
    """'AA:bb:..' or 'aabb..' -> 'aabb..' (64 hex digits for SHA-256); TlsError otherwise."""
    try:
        return thumbprint_rules.normalize_thumbprint(thumbprint)
    except ValueError as exc:
        raise TlsError(str(exc)) from None


def check_pin(der: bytes | None, thumbprint: str, *, host: str = "", node: str = "") -> None:
    if not der:
        raise TlsError(f"no peer certificate from {host} to compare with the pinned thumbprint", node=node)
    if hashlib.sha256(der).hexdigest() != normalize_thumbprint(thumbprint):
        raise TlsError(f"certificate of {host} does not match the pinned SHA-256 thumbprint "
                       f"(got {sha256_thumbprint(der)}); nothing was sent", node=node)


class PinnedContext(ssl.SSLContext):
    """A client context that checks the pin inside `wrap_socket`, right after the handshake: http.client
    (appliance REST) and pyVmomi (every SOAP connection, the first `vimServiceVersions.xml` fetch included)
    wrap their sockets through it, so no request byte, and no credential, is sent to a peer that fails the pin.
    The chain and the host name are not checked: the pin is the trust."""

    pin: str = ""
    node: str = ""

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        wrapped = super().wrap_socket(sock, *args, **kwargs)
        try:
            check_pin(wrapped.getpeercert(binary_form=True), self.pin,
                      host=str(kwargs.get("server_hostname") or ""), node=self.node)
        except TlsError:
            wrapped.close()
            raise
        return wrapped


def pinned_context(thumbprint: str, *, node: str = "") -> PinnedContext:
    ctx = PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # authenticated by the pin, checked in wrap_socket
    ctx.pin = normalize_thumbprint(thumbprint)
    ctx.node = node
    return ctx


def _warn_insecure(host: str, node: str, client: str) -> None:
    from orchestrator.log import get_logger
    get_logger("vcwave.tls").warning("tls.verification_disabled", host=host, node=node, client=client,
                                     reason="verify=False passed explicitly; the peer is not authenticated")


def ssl_context(verify: bool | str = True, thumbprint: str | None = None, *, host: str = "", node: str = "",
                client: str = "") -> ssl.SSLContext:
    """Build the context for one connection policy (see the module docstring)."""
    if thumbprint:
        return pinned_context(thumbprint, node=node)
    if verify is False:
        _warn_insecure(host, node, client)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if verify is True or verify is None:
        return _shared_context(None)
    if isinstance(verify, str):
        try:
            return _shared_context(verify)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"cannot load CA bundle {verify!r}: {exc}", node=node) from exc
    raise TlsError(f"verify must be True, False or a CA bundle path, got {verify!r}", node=node)


_contexts_lock = threading.Lock()


def _shared_context(cafile: str | None) -> ssl.SSLContext:
    """The process's verifying context for `cafile`, made once: the observation asks every node from its own
    thread at the same moment, and without the lock each of them missed the cache and loaded the bundle."""
    with _contexts_lock:
        return _verifying_context(cafile, _file_version(cafile) if cafile else None)


def _file_version(path: str) -> tuple[int, int, int] | None:
    """What tells one content of a file from the next; None when it cannot be read (loading it then fails
    with the error the operator is shown, and a failure is never cached)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=16)
def _verifying_context(cafile: str | None, version: tuple[int, int, int] | None) -> ssl.SSLContext:
    """One verifying context per CA bundle (and per version of its file: an edited bundle is loaded again)
    for the whole process. Why: loading the trust store is most of a context's cost, and a command makes a
    client per node and per call kind. Safe to share: nothing changes it after this (the host name is checked
    per connection, from `server_hostname`); pinned and unverified contexts are never shared."""
    del version  # part of the cache key only
    return ssl.create_default_context(cafile=cafile)


def peer_thumbprint(host: str, port: int = 443, timeout: float = 10.0) -> str:
    """Fetch a server's SHA-256 thumbprint (to pin it after checking it out of band). No verification."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            return sha256_thumbprint(s.getpeercert(binary_form=True) or b"")

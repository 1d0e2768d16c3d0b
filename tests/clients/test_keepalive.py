"""The appliance client keeps one connection for its reads (orchestrator/clients/keepalive.py), and what a
lost reply, a reset or a node gone down looks like to the product does not change for it."""
from __future__ import annotations

import http.client
import socket

import pytest
from structlog.testing import capture_logs

from orchestrator.clients import retry
from orchestrator.clients.appliance import ApplianceClient
from orchestrator.clients.keepalive import IDLE_S, KeptConnection, dropped

from ._servers import Script, ScriptServer

VERSION = "/rest/appliance/system/version"


def lost_replies(rest_lab) -> int:
    return rest_lab.lab.state.ledger_view()["counts"].get("vc-a", {}).get("lost_reply", 0)


@pytest.fixture(autouse=True)
def counted() -> None:
    retry.RETRIES.reset()


def test_reads_share_the_logins_connection_and_every_change_opens_its_own(rest_lab):
    """The login, every read after it and the logout on one connection; a backup start (a change) on a fresh
    one, closed after it: the reads after it go on the kept connection again."""
    c = rest_lab.client("psc-a")
    c.login()
    c.version()
    c.health()
    c.services()
    reads = 1 + 1 + len(ApplianceClient.HEALTH_ITEMS) + 1
    assert (c.requests, c.connections) == (1 + reads, 1)
    job = c.backup_start(location_type="SFTP", location="sftp://backup.example/keepalive", location_user="backup",
                         location_password=rest_lab.passwords["backup"])
    c.backup_job(job)
    c.version()
    assert (c.requests, c.connections) == (1 + reads + 3, 2)
    c.logout()  # the session's delete goes on the kept connection too, which is then closed
    assert (c.requests, c.connections, c.has_session) == (1 + reads + 4, 2, False)


@pytest.mark.parametrize("kept", [False, True], ids=["fresh", "kept"])
def test_a_lost_reply_to_a_read_counts_the_same_on_a_kept_connection(rest_lab, kept):
    """The twin answers, then drops the reply (RST): one retry counted, as on a fresh connection; never a
    silent second send (the lab's ledger has the call twice: the lost one and the retry)."""
    c = rest_lab.client("vc-a")
    c.login()
    if kept:
        c.services()
    lost_before = lost_replies(rest_lab)
    rest_lab.faults({"type": "lost_reply", "node": "vc-a", "action": "version", "mode": "reset"})
    retry.RETRIES.reset()
    with capture_logs() as logs:
        assert c.version().build
    assert retry.RETRIES.total == 1
    assert [e["reason"] for e in logs if e["event"] == "client.retry"][0].startswith("connection lost")
    assert lost_replies(rest_lab) == lost_before + 1
    c.logout()


def test_a_node_gone_down_while_the_connection_sat_idle_fails_as_for_a_client_that_kept_none(fresh_lab):
    """The node went down between two reads: the same attempts and the same final error ("refused": the
    last attempt is always on a fresh connection) as a client that never kept a connection; once the node is
    back the next read answers, with no retry but the new login its session needs (sessions do not survive
    the node's restart)."""
    kept, fresh = fresh_lab.client("vc-b"), fresh_lab.client("vc-b")
    kept.version()
    fresh_lab.lab.fail("vc-b", "test")
    attempts = []
    for c in (kept, fresh):
        with capture_logs() as logs, pytest.raises(retry.ConnectionFailed, match="connection refused"):
            c.version()
        attempts.append(sum(e["event"] == "client.retry" for e in logs))
    assert attempts == [retry.default_policy().attempts - 1] * 2
    fresh_lab.lab.revive("vc-b")
    with capture_logs() as logs:
        assert kept.version().build
    reasons = [e["reason"] for e in logs if e["event"] == "client.retry"]
    assert reasons == ["session expired or invalid (401 on GET /rest/appliance/system/version)"]


@pytest.mark.parametrize("answer", [(200, {"value": ["not", "a", "version"]}),
                                    (503, {"type": "com.vmware.vapi.std.errors.service_unavailable"})],
                         ids=["garbage", "503"])
def test_an_answer_asked_again_is_asked_on_a_fresh_connection(answer):
    """A garbage answer or a 503 (each read whole) is retried on a fresh connection, as every retry was
    before; the good answer's connection is kept."""
    s = Script().then("GET", VERSION, answer)
    with ScriptServer(s) as srv:
        c = ApplianceClient(srv.url, "administrator@vsphere.local", s.password, node="t")
        assert c.version().build == "10244745"
        # the login and the answer asked again share one connection, dropped for the retry's fresh one
        assert (c.requests, c.connections) == (3, 2)
        assert c.version().build == "10244745"
        assert (c.requests, c.connections) == (4, 2)
        c.logout()
    assert retry.RETRIES.total == 1


def test_a_connection_idle_too_long_is_not_reused():
    """Past IDLE_S a server may be closing it as the request goes out: a fresh connection instead."""
    now = [0.0]
    with ScriptServer(Script()) as srv:
        kept = KeptConnection(lambda: http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5),
                              clock=lambda: now[0])

        def read() -> int:
            with kept.connection(keep=True) as conn:
                conn.request("GET", "/rest/appliance/health/mem")
                conn.getresponse().read()
            return kept.opened

        assert read() == 1
        now[0] += IDLE_S / 2
        assert read() == 1
        now[0] += IDLE_S * 1.5
        assert read() == 2
        kept.close()


def test_dropped_sees_a_closed_reset_or_chatty_peer_and_trusts_only_real_sockets():
    a, b = socket.socketpair()
    with a, b:
        assert not dropped(a)
        b.sendall(b"x")
        assert dropped(a)
    a, b = socket.socketpair()
    with a, b:
        b.close()
        assert dropped(a)
    assert dropped(None)
    assert dropped(object())  # a recording's stand-in (vcrpy) is never reused
    closed = socket.socket()
    closed.close()
    assert dropped(closed)

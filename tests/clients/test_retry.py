"""The one retry policy: transient retried (and counted, and logged), permanent never, sessions re-made once."""
from __future__ import annotations

import http.client

import time

import pytest
from structlog.testing import capture_logs

from orchestrator.clients import retry
from orchestrator.clients.appliance import ApplianceClient
from orchestrator.clients.retry import (Ambiguous, BadRequest, ConnectionFailed, NotFound, PermanentError,
                                        ServiceUnavailable, SessionExpired, TransientError, Unauthorized,
                                        call_with_retry)

from ._servers import RESET, Script, ScriptServer

SESSION = "/rest/com/vmware/cis/session"
VERSION = "/rest/appliance/system/version"


def flaky(*outcomes):
    """fn raising/returning the given outcomes in order."""
    it = iter(outcomes)
    calls = []

    def fn():
        calls.append(1)
        o = next(it)
        if isinstance(o, BaseException):
            raise o
        return o
    fn.calls = calls
    return fn


def test_transient_retried_then_success_counted_and_logged():
    retry.RETRIES.reset()
    fn = flaky(ServiceUnavailable("503"), ConnectionResetError("reset"), "ok")
    with capture_logs() as logs:
        assert call_with_retry(fn, what="t.op", node="n1") == "ok"
    assert len(fn.calls) == 3
    assert retry.RETRIES.total == 2 and retry.RETRIES.by_what() == {"t.op": 2}
    ev = [e for e in logs if e["event"] == "client.retry"]
    assert [e["attempt"] for e in ev] == [1, 2]
    assert all(e["node"] == "n1" and "wait" in e for e in ev)
    assert ev[1]["error"] == "ConnectionFailed"


@pytest.mark.parametrize("exc", [BadRequest("400"), NotFound("404"), Unauthorized("401"), PermanentError("x"),
                                 ValueError("bug")])
def test_permanent_never_retried(exc):
    fn = flaky(exc, "ok")
    with pytest.raises(type(exc)):
        call_with_retry(fn, what="t", attempts=5)
    assert len(fn.calls) == 1


def test_attempts_bound_then_last_error_raised():
    fn = flaky(*[ServiceUnavailable("503")] * 10)
    with pytest.raises(ServiceUnavailable):
        call_with_retry(fn, what="t", attempts=3)
    assert len(fn.calls) == 3


def test_deadline_bounds_retries():
    """The deadline, not the 100 attempts, ends the retries. A deadline of 0.5 s with 20 ms waits: at least a
    second attempt (even on a loaded machine; 50 ms once left room for only one), none once it has passed."""
    fn = flaky(*[TimeoutError("slow")] * 100)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    with pytest.raises(retry.Timeout):
        call_with_retry(fn, what="t", attempts=100, deadline=0.5, sleep=sleep,
                        policy=retry.RetryPolicy(initial_wait=0.02, max_wait=0.02))
    # no wait starts past the deadline: the waits add up to less than the deadline and one wait more
    assert 2 <= len(fn.calls) == len(slept) + 1 and sum(slept) < 0.5 + 0.02


def test_session_expired_relogin_once_then_success():
    relogins = []
    fn = flaky(SessionExpired("401"), "ok")
    assert call_with_retry(fn, what="t", relogin=lambda: relogins.append(1)) == "ok"
    assert relogins == [1]


def test_session_expired_twice_is_unauthorized_not_retried():
    relogins = []
    fn = flaky(SessionExpired("401"), SessionExpired("401"), "never")
    with pytest.raises(Unauthorized):
        call_with_retry(fn, what="t", relogin=lambda: relogins.append(1), attempts=5)
    assert relogins == [1] and len(fn.calls) == 2


def test_non_idempotent_reset_is_ambiguous_but_refused_connection_retried():
    fn = flaky(ConnectionResetError("reset after send"), "ok")
    with pytest.raises(Ambiguous):
        call_with_retry(fn, what="backup.start", idempotent=False)
    fn = flaky(ConnectionRefusedError("refused"), ServiceUnavailable("503"), "ok")
    assert call_with_retry(fn, what="backup.start", idempotent=False) == "ok"


def test_classify_transport_errors():
    assert isinstance(retry.classify(http.client.RemoteDisconnected("x")), ConnectionFailed)
    assert isinstance(retry.classify(TimeoutError()), TransientError)
    import ssl
    assert isinstance(retry.classify(ssl.SSLCertVerificationError("bad")), retry.TlsError)
    # a node that closes the connection inside the handshake (it goes down, its proxy restarts) is a lost
    # connection, worth asking again - not a permanent TLS refusal that would fail the step
    eof = retry.classify(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))
    assert isinstance(eof, ConnectionFailed) and "connection lost" in eof.message
    assert isinstance(retry.classify(ssl.SSLError(1, "wrong version number")), retry.TlsError)


# -- over HTTP, against a scripted stdlib server ----------------------------------------------------------
def client(srv: ScriptServer, **kw) -> ApplianceClient:
    return ApplianceClient(srv.url, "administrator@vsphere.local", srv.script.password, node="t", **kw)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_http_5xx_gateway_retried(status):
    s = Script().then("GET", VERSION, (status, {"type": "x", "value": {"messages": []}}),
                      (status, None))
    with ScriptServer(s) as srv:
        assert client(srv).version().build == "10244745"
    assert s.count("GET", VERSION) == 3


def test_reset_retried_for_get():
    s = Script().then("GET", VERSION, RESET, RESET)
    with ScriptServer(s) as srv:
        assert client(srv).version().version == "6.7.0.20000"
    assert s.count("GET", VERSION) == 3


def test_400_not_retried_carries_vapi_type_and_messages():
    body = {"type": "com.vmware.vapi.std.errors.feature_in_use",
            "value": {"messages": [{"id": "x", "default_message": "A backup or restore is already in progress"}]}}
    s = Script().then("POST", "/rest/appliance/recovery/backup/job", (400, body))
    with ScriptServer(s) as srv:
        with pytest.raises(BadRequest) as ei:
            client(srv).backup_start(location_type="SFTP", location="sftp://h/p")
    assert s.count("POST", "/rest/appliance/recovery/backup/job") == 1
    assert ei.value.error_type == "com.vmware.vapi.std.errors.feature_in_use"
    assert ei.value.messages == ("A backup or restore is already in progress",)


def test_404_not_retried():
    s = Script()
    with ScriptServer(s) as srv:
        with pytest.raises(NotFound):
            client(srv).backup_job("nope")
    assert s.count("GET", "/rest/appliance/recovery/backup/job/nope") == 1


def test_401_relogin_once_then_success():
    s = Script()
    with ScriptServer(s) as srv:
        c = client(srv)
        c.version()
        s.sessions.clear()  # the appliance forgot every session
        with capture_logs() as logs:
            assert c.health().system == "green"
    assert s.count("POST", SESSION) == 2
    assert any(e["event"] == "client.relogin" for e in logs)


def test_401_twice_unauthorized_not_retried():
    unauth = (401, {"type": "com.vmware.vapi.std.errors.unauthenticated", "value": {"messages": []}})
    s = Script().then("GET", VERSION, unauth, unauth, unauth)
    with ScriptServer(s) as srv:
        with pytest.raises(Unauthorized):
            client(srv).version()
    assert s.count("GET", VERSION) == 2 and s.count("POST", SESSION) == 2


def test_bad_password_is_unauthorized_without_retry():
    s = Script()
    with ScriptServer(s) as srv:
        c = ApplianceClient(srv.url, "administrator@vsphere.local", "wrong-password", node="t")
        with pytest.raises(Unauthorized):
            c.version()
    assert s.count("POST", SESSION) == 1


def test_non_idempotent_backup_start_reset_is_ambiguous():
    s = Script().then("POST", "/rest/appliance/recovery/backup/job", RESET)
    with ScriptServer(s) as srv:
        with pytest.raises(Ambiguous, match="look at the node"):
            client(srv).backup_start(location_type="SFTP", location="sftp://h/p")
    assert s.count("POST", "/rest/appliance/recovery/backup/job") == 1


def test_plain_404_means_no_rest_api():
    s = Script().then("GET", VERSION, (404, None))
    with ScriptServer(s) as srv:
        with pytest.raises(NotFound, match="no appliance REST API on this node"):
            client(srv).version()


# -- polls inside a job loop (wait_job has its own cadence) -----------------------------------------------
def test_inside_a_poll_a_transient_failure_goes_straight_back_to_the_loop():
    """A 503 in a poll is not backed off here: the loop polls again at its own pace (a reboot that ends
    10 ms later is seen 10 ms later, not after a retry wait)."""
    fn = flaky(ServiceUnavailable("503"), "ok")
    with retry.polling():
        with pytest.raises(ServiceUnavailable):
            call_with_retry(fn, what="t", attempts=5)
    assert len(fn.calls) == 1 and not retry.in_poll()
    assert call_with_retry(fn, what="t", attempts=5) == "ok"  # outside a poll: retried as before


def test_inside_a_poll_an_expired_session_is_still_relogged_in_once():
    relogins = []
    fn = flaky(SessionExpired("401"), "ok")
    with retry.polling():
        assert call_with_retry(fn, what="t", relogin=lambda: relogins.append(1)) == "ok"
    assert relogins == [1]


def test_wait_job_sees_the_end_of_a_reboot_at_its_own_cadence():
    """The job loop tolerates the reboot's 503s and counts them; no client backoff is stacked on top."""
    from orchestrator.clients.appliance import wait_job

    class Job:
        def __init__(self, done):
            self.done, self.state, self.progress = done, "X", 100 if done else 50

    answers = iter([Job(False), ServiceUnavailable("503"), ServiceUnavailable("503"), Job(True)])
    slept, calls = [], []

    def get():
        calls.append(retry.in_poll())
        a = next(answers)
        if isinstance(a, BaseException):
            return call_with_retry(lambda: (_ for _ in ()).throw(a), what="update.get", attempts=5,
                                   sleep=lambda s: slept.append(("client", s)))
        return a

    retry.RETRIES.reset()
    t = [0.0]
    job = wait_job(get, deadline=60, initial=0.01, cap=0.01, sleep=lambda s: (slept.append(("loop", s)),
                   t.__setitem__(0, t[0] + s)), clock=lambda: t[0])
    assert job.done and calls == [True] * 4
    assert [k for k, _ in slept] == ["loop"] * 3  # never a client retry wait
    assert retry.RETRIES.by_what() == {"job.poll": 2}


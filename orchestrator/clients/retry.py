"""The ONE place where vcwave retries a call to a node (tenacity).

Why here: retries hide faults, so they must be few, visible and bounded. Every client call goes through
`call_with_retry`, which retries only *transient* failures (connection refused/reset, timeouts, HTTP
502/503/504, an expired session once re-logged-in), never *permanent* ones (400, 401 after re-login, 404,
a refused precheck, an unsupported path, a TLS failure). Each retry is a structlog event `client.retry` with
the attempt number and the wait; the process-wide `RETRIES` counter feeds the rehearsal summary.

Non-idempotent calls (starting a backup job, an update install) are not repeated after an ambiguous
failure (a reset, a timeout or a garbage answer after the request was sent): the server may have acted.
They raise `Ambiguous`, a permanent error telling the caller to look at the node before repeating.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
import http.client
import socket
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay
from tenacity import wait_exponential

from orchestrator import stop
from orchestrator.errors import VcwaveError

T = TypeVar("T")


# -- errors ----------------------------------------------------------------------------------------
class ClientError(VcwaveError):
    """A call to a node failed. `node` and `what` say where; `status` is the HTTP status if any."""

    exit_code = 1

    def __init__(self, message: str, *, node: str = "", what: str = "", status: int | None = None) -> None:
        self.message = message
        self.node = node
        self.what = what
        self.status = status
        prefix = " ".join(p for p in (f"node {node}:" if node else "", f"{what}:" if what else "") if p)
        super().__init__(f"{prefix} {message}" if prefix else message)


class TransientError(ClientError):
    """Worth retrying: the node may answer later."""


class PermanentError(ClientError):
    """Never retried: repeating the same call cannot succeed."""


class ConnectionFailed(TransientError):
    """Connection refused, reset or closed without an answer."""


class Timeout(TransientError):
    """No answer within the socket timeout."""


class ServiceUnavailable(TransientError):
    """HTTP 502/503/504."""


class BadAnswer(TransientError):
    """The node answered, but not what its API documents: not JSON, an HTML page, the wrong shape, a body
    over the size cap or one that did not arrive within the request's total deadline.

    Transient, so a GET is asked again (a proxy or a restarting service can answer garbage once); a call
    that may have changed the node (a POST) is never re-sent after one: it becomes `Ambiguous`. Exit 2: the
    README promises that a bad server answer ends like any bad input, naming the node and the path."""

    exit_code = 2


class SlowAnswer(BadAnswer):
    """The answer did not complete within the request's total deadline (a body trickling in, a stalled
    proxy). Never retried: the attempt already took the whole deadline, and asking again would multiply it
    (three 120 s attempts held a precheck for six minutes)."""


class SessionExpired(TransientError):
    """The session is gone (HTTP 401 with a session, vim.fault.NotAuthenticated): log in again once."""


class NotFound(PermanentError):
    """HTTP 404 / the object does not exist / no appliance REST API on this node."""


class Unauthorized(PermanentError):
    """Credentials refused (401 on login, or 401 again right after a re-login)."""


class BadRequest(PermanentError):
    """HTTP 400 (or another 4xx): the server refused the request. Carries the vapi error type + messages."""

    def __init__(self, message: str, *, error_type: str = "", messages: tuple[str, ...] = (), node: str = "",
                 what: str = "", status: int | None = 400) -> None:
        self.error_type = error_type
        self.messages = tuple(messages)
        super().__init__(message, node=node, what=what, status=status)


class Refused(PermanentError):
    """A precheck or the server refused the operation on purpose (not a transport problem)."""


class Unsupported(PermanentError):
    """The node cannot do this (e.g. the update API on 6.5, any REST call on 5.5/6.0)."""


class TlsError(PermanentError):
    """Certificate verification or thumbprint pinning failed, or an insecure transport was refused."""


class Ambiguous(PermanentError):
    """A non-idempotent call failed after it was sent: it may have happened. Look at the node first."""


class ServerError(PermanentError):
    """HTTP 500 and other unexpected answers."""


class DeadlineExceeded(ClientError):
    """A job or a retried call did not finish before its deadline."""


# -- policy ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, how long to wait between them, and an overall deadline (seconds)."""

    attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 15.0
    deadline: float = 300.0
    quiet: bool = False  # a quick look (the domain's observation): its retries are not a step's faults


class Backoff:
    """The waits of one polling loop: `initial`, x`factor` per wait up to `cap`, back to `initial` when the
    caller says what it sees changed. One pacing for every poll: the clients' job polls (`wait_job`) and the
    steps' observe loops (`steps/common.Pace`)."""

    def __init__(self, initial: float, cap: float, factor: float = 1.6) -> None:
        self.initial, self.cap, self.factor = initial, cap, factor
        self._wait = initial

    def next(self, changed: bool = False) -> float:
        if changed:
            self._wait = self.initial
        wait, self._wait = self._wait, min(self.cap, self._wait * self.factor)
        return wait


_policy = RetryPolicy()
_policy_lock = threading.Lock()


def default_policy() -> RetryPolicy:
    return _policy


def set_default_policy(policy: RetryPolicy | None = None, **changes: Any) -> RetryPolicy:
    """Replace the process default (tests use tiny waits). Returns the previous policy."""
    global _policy
    with _policy_lock:
        old = _policy
        _policy = replace(policy or old, **changes)
        return old


class RetryCounter:
    """Counts retries of transient faults per (what) and re-logins; the rehearsal summary prints `total`.
    Retries inside an `expected_outage` (a node rebooting or powering on because we asked it to) are
    counted apart, in `expected`: they are the plan working, not faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_what: Counter[str] = Counter()
        self._expected = 0
        self._relogins = 0

    def add(self, what: str) -> None:
        with self._lock:
            if _EXPECTED.get():
                self._expected += 1
            else:
                self._by_what[what] += 1

    @property
    def expected(self) -> int:
        with self._lock:
            return self._expected

    def add_relogin(self) -> None:
        with self._lock:
            self._relogins += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._by_what.values())

    @property
    def relogins(self) -> int:
        with self._lock:
            return self._relogins

    def by_what(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_what)

    def reset(self) -> None:
        with self._lock:
            self._by_what.clear()
            self._expected = 0
            self._relogins = 0


RETRIES = RetryCounter()


def retry_count() -> int:
    return RETRIES.total


# -- expected outages -------------------------------------------------------------------------------
_EXPECTED: contextvars.ContextVar[str] = contextvars.ContextVar("vcwave_expected_outage", default="")


@contextlib.contextmanager
def expected_outage(reason: str) -> Iterator[None]:
    """Calls made inside may fail because the node is down on purpose (`reason`: "rebooting", "powering
    on"): an update reboots the appliance, a snapshot set power-cycles every VM. Their retries are still
    bounded by the same policy, but they are reported as the wait they are (info, `expected=reason`) and
    not counted as transient faults."""
    with _set(_EXPECTED, reason):
        yield


def outage_reason() -> str:
    """The current expected outage's reason, or "" outside one."""
    return _EXPECTED.get()


# -- polling ----------------------------------------------------------------------------------------
_POLLING: contextvars.ContextVar[bool] = contextvars.ContextVar("vcwave_polling", default=False)


@contextlib.contextmanager
def polling() -> Iterator[None]:
    """Calls made inside are polls of a job loop that has its own cadence and deadline (`wait_job`).

    Such a loop already comes back; backing off here as well would stack a second, slower clock on top of
    it: an appliance that ends its reboot 10 ms after a 503 would be seen only after the next retry wait
    (up to `max_wait`), which in the lab made every install 0.5 s longer than its job. So inside a poll a
    transient failure is raised at once to the loop, which tolerates it; an expired session is still
    re-logged-in and the call repeated right away, since the loop cannot do that itself."""
    with _set(_POLLING, True):
        yield


@contextlib.contextmanager
def _set(var: contextvars.ContextVar[Any], value: Any) -> Iterator[None]:
    """`var` is `value` for the block (this task/thread only), whatever happens inside."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def in_poll() -> bool:
    return _POLLING.get()


# -- classification ----------------------------------------------------------------------------------
def classify(exc: BaseException, *, node: str = "", what: str = "", sent: bool = True) -> BaseException:
    """Map a raw transport exception to a ClientError; ClientErrors and others pass through unchanged."""
    if isinstance(exc, ClientError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsError(f"TLS certificate verification failed: {getattr(exc, 'verify_message', None) or exc}", node=node, what=what)
    if isinstance(exc, ssl.SSLEOFError):  # the node closed the connection mid-TLS (a reboot, a proxy going
        # down, a listener closing): a lost connection like a reset, not a certificate problem
        return ConnectionFailed(f"connection lost: the node closed it during TLS ({exc})", node=node, what=what)
    if isinstance(exc, ssl.SSLError):
        return TlsError(f"TLS handshake failed: {exc}", node=node, what=what)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return Timeout(f"timed out: {exc}", node=node, what=what)
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionFailed(f"connection refused: {exc}", node=node, what=what)
    if isinstance(exc, (ConnectionError, http.client.RemoteDisconnected, http.client.IncompleteRead,
                        http.client.BadStatusLine)):
        return ConnectionFailed(f"connection lost: {type(exc).__name__}: {exc}", node=node, what=what)
    if isinstance(exc, socket.gaierror):
        return PermanentError(f"cannot resolve host: {exc}", node=node, what=what)
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNABORTED):
        return ConnectionFailed(f"network error: {exc}", node=node, what=what)
    return exc


def _ambiguous(exc: BaseException) -> bool:
    """A failure after the request was sent, where the server may have acted."""
    if isinstance(exc, (Timeout, BadAnswer)):
        return True
    return isinstance(exc, ConnectionFailed) and "refused" not in exc.message


def _log():
    from orchestrator.log import get_logger
    return get_logger("vcwave.retry")


# -- the call ----------------------------------------------------------------------------------------
def call_with_retry(fn: Callable[[], T], *, what: str, node: str = "", attempts: int | None = None,
                    deadline: float | None = None, policy: RetryPolicy | None = None, idempotent: bool = True,
                    relogin: Callable[[], None] | None = None, sleep: Callable[[float], None] = stop.sleep) -> T:
    """Run `fn()`; retry transient failures with capped exponential backoff, at most `attempts` times and
    within `deadline` seconds. `relogin` (if given) is called once on SessionExpired, then the call repeats;
    a second SessionExpired after the re-login is raised as Unauthorized (permanent). Inside `polling()`
    only the re-login is retried here; other transient failures go straight back to the poll loop."""
    pol = policy or _policy
    attempts = attempts or pol.attempts
    deadline = pol.deadline if deadline is None else deadline
    st = {"relogged": False, "pending": False}
    log = _log()

    def attempt() -> T:
        try:
            if st["pending"]:
                relogin()  # type: ignore[misc]
                st["pending"] = False
            return fn()
        except BaseException as raw:  # noqa: BLE001 - classified below
            exc = classify(raw, node=node, what=what)
            if isinstance(exc, SessionExpired):
                if relogin is None:
                    raise exc from raw if exc is not raw else None
                if st["relogged"]:
                    raise Unauthorized(f"session refused again right after a fresh login ({exc.message})",
                                       node=node, what=what, status=exc.status) from raw
                st["relogged"] = True
                st["pending"] = True
                RETRIES.add_relogin()
                log.info("client.relogin", node=node, what=what, reason=exc.message)
                if exc is raw:
                    raise
                raise exc from raw  # retried right away (wait 0) by tenacity, after a fresh login
            if not idempotent and _ambiguous(exc):
                amb = Ambiguous(f"{exc.message}; the request may have been processed: look at the node "
                                f"before repeating it", node=node, what=what)
                amb.exit_code = exc.exit_code  # a garbage answer stays a bad server answer (exit 2)
                raise amb from raw
            if exc is raw:
                raise
            raise exc from raw

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        if pol.quiet:  # the look reports what it saw (answering or not, and why): no warning, no fault counted
            log.debug("probe.retry", node=node, what=what, attempt=state.attempt_number,
                      error=type(exc).__name__)
            return
        RETRIES.add(what)
        emit = log.info if _EXPECTED.get() else log.warning  # a wait while a node is down on purpose: no warning
        emit("client.retry", node=node, what=what, attempt=state.attempt_number, max_attempts=attempts,
             wait=round(wait, 3), deadline_s=deadline, error=type(exc).__name__,
             reason=getattr(exc, "message", str(exc)))

    backoff = wait_exponential(multiplier=pol.initial_wait, min=pol.initial_wait, max=pol.max_wait)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, SessionExpired):
            return 0.0
        return backoff(state)

    retryable = ((lambda e: isinstance(e, SessionExpired)) if _POLLING.get()
                 else (lambda e: isinstance(e, TransientError) and not isinstance(e, SlowAnswer)))
    retrying = Retrying(
        stop=stop_after_attempt(attempts) | stop_after_delay(deadline),
        wait=wait,
        retry=retry_if_exception(retryable),
        before_sleep=before_sleep,
        reraise=True,
        sleep=sleep,
    )
    return retrying(attempt)


def retried(*, what: str, idempotent: bool = True, attempts: int | None = None, deadline: float | None = None):
    """Decorator form for methods of a client that has `.node` and (optionally) `._relogin()`."""
    def deco(method: Callable[..., T]) -> Callable[..., T]:
        def wrapper(self, *args: Any, **kwargs: Any) -> T:
            return call_with_retry(lambda: method(self, *args, **kwargs), what=what,
                                   node=getattr(self, "node", ""), attempts=attempts, deadline=deadline,
                                   idempotent=idempotent, relogin=getattr(self, "_relogin", None),
                                   policy=getattr(self, "retry_policy", None))
        wrapper.__name__ = method.__name__
        wrapper.__doc__ = method.__doc__
        wrapper.__wrapped__ = method  # type: ignore[attr-defined]
        return wrapper
    return deco

"""Garbage server answers, served by the lab's REST twin (lab/faults.py `garbage`): each ends as a BadAnswer
naming the node and the path, quickly (a 10 MB body is refused unread, a trickle ends within the request's
total deadline); a GET that got garbage once is asked again; a POST is never re-sent after one."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.clients import retry
from orchestrator.clients.appliance import ApplianceVersion
from orchestrator.clients.retry import Ambiguous, BadAnswer
from orchestrator.clients.vsphere import VSphereClient

VERSION = "/rest/appliance/system/version"


@pytest.mark.parametrize("answer, fragment", [
    ("truncated", "not valid JSON"),
    ("list", "is list [1, 2, \"three\"], expected an object"),
    ("html", "is text/html, not JSON"),
    ("huge", "10485760 bytes refused"),
    ("huge-unannounced", "exceeds"),
])
def test_garbage_to_a_get_names_node_and_path(fresh_lab, answer, fragment):
    c = fresh_lab.client("psc-a")
    c.login()
    fresh_lab.faults({"type": "garbage", "node": "psc-a", "answer": answer, "path": "system/version",
                      "count": 99})
    with pytest.raises(BadAnswer) as ei:
        c.version()
    assert fragment in str(ei.value)  # for the huge bodies: refused by the cap, not read whole
    assert str(ei.value).startswith(f"node psc-a: GET {VERSION}: answer")
    assert ei.value.exit_code == 2


def test_list_as_login_reply(fresh_lab):
    fresh_lab.faults({"type": "garbage", "node": "psc-b", "answer": "list", "path": "cis/session", "count": 99})
    with pytest.raises(BadAnswer, match=r"node psc-b: POST /rest/com/vmware/cis/session: answer is list"):
        fresh_lab.client("psc-b").version()


def test_trickled_body_ends_within_the_total_deadline(fresh_lab):
    c = fresh_lab.client("vc-a", total_timeout=1.5, timeout=5.0)
    c.login()
    fresh_lab.faults({"type": "garbage", "node": "vc-a", "answer": "trickle", "path": "system/version",
                      "count": 1})
    t0 = time.monotonic()
    with pytest.raises(BadAnswer, match=f"GET {VERSION}: no complete answer within 1.5s"):
        _once(c)
    print(f"\ntrickle at 1 KB/s stopped after {time.monotonic() - t0:.2f}s (total deadline 1.5 s, body 200 s)")


def test_a_trickled_answer_is_not_asked_again(fresh_lab):
    """The attempt took the request's whole deadline: asking again would multiply it (with the production
    120 s and five attempts within 300 s, a precheck was held six minutes by one trickling node)."""
    c = fresh_lab.client("vc-a", total_timeout=1.0, timeout=5.0)
    c.login()
    fresh_lab.faults({"type": "garbage", "node": "vc-a", "answer": "trickle", "path": "system/version",
                      "count": 99})
    retry.RETRIES.reset()
    t0 = time.monotonic()
    with pytest.raises(retry.SlowAnswer, match=f"GET {VERSION}: no complete answer within 1s") as ei:
        c.version()  # the default policy: five attempts
    assert ei.value.exit_code == 2 and retry.RETRIES.by_what() == {}
    assert time.monotonic() - t0 < 2 * 1.0 + 1.0


def _once(c):
    """One attempt of version(): the deadline of a single request, without the policy's retries."""
    old = retry.set_default_policy(attempts=1)
    try:
        return c.version()
    finally:
        retry.set_default_policy(old)


def test_garbage_once_then_good_is_survived_by_a_get(fresh_lab):
    c = fresh_lab.client("psc-a")
    fresh_lab.faults({"type": "garbage", "node": "psc-a", "answer": "html", "path": "system/version", "count": 1})
    retry.RETRIES.reset()
    assert isinstance(c.version(), ApplianceVersion)
    assert retry.RETRIES.by_what() == {"system.version": 1}


def test_garbage_to_a_post_is_never_resent(fresh_lab):
    c = fresh_lab.client("psc-a")
    c.login()
    fresh_lab.faults({"type": "garbage", "node": "psc-a", "answer": "truncated", "method": "POST",
                      "path": "backup/job", "count": 1})
    before = c.backup_jobs()
    with pytest.raises(Ambiguous, match="may have been processed") as ei:
        c.backup_start(location_type="SFTP", location="sftp://backup.example/vcwave/psc-a", location_user="b")
    assert ei.value.exit_code == 2
    assert c.backup_jobs() == before  # one POST reached the node (answered with garbage), none was repeated


class _Sdk(BaseHTTPRequestHandler):
    """A 'vCenter' behind a broken proxy: every /sdk request gets the same garbage 200."""

    body = b""

    def log_message(self, *a):  # quiet
        pass

    def do_GET(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_POST = do_GET


@pytest.mark.parametrize("body", [b'<?xml version="1.0"?><Envelope><Body><RetrieveServiceContentResponse',
                                  b'[1, 2, "three"]', b"<html><body>Please sign in</body></html>"])
def test_vsphere_garbage_is_a_bad_answer_naming_the_node(body):
    handler = type("H", (_Sdk,), {"body": body})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        c = VSphereClient("127.0.0.1", srv.server_address[1], "u", "p", scheme="http", node="vc-x")
        with pytest.raises(BadAnswer, match=r"^node vc-x: connect GET /sdk/vimServiceVersions.xml: answer is not the vSphere API"):
            c.connect()
    finally:
        srv.shutdown()
        srv.server_close()


def test_vsphere_answers_are_read_within_the_cap(vcsim):
    """After the login every SOAP answer goes through the bounded reader: a cap below a real answer turns
    vcsim's own reply into a BadAnswer naming the node (and the normal cap reads it fine)."""
    ok = VSphereClient("127.0.0.1", vcsim.port, vcsim.user, vcsim.password, scheme="http", node="vc-a").connect()
    assert ok.fingerprint().count("vms") >= 4
    ok.disconnect()
    tight = VSphereClient("127.0.0.1", vcsim.port, vcsim.user, vcsim.password, scheme="http", node="vc-a",
                          retry_policy=retry.RetryPolicy(attempts=1)).connect()
    tight._si._stub.scheme.response_class.keywords["max_body"] = 512  # the factory swapped into pyVmomi
    with pytest.raises(BadAnswer, match=r"^node vc-a: .*/sdk: answer (of \d+ bytes refused|exceeds 512)"):
        tight.fingerprint()


def test_a_poll_survives_garbage_once_and_stops_on_garbage_that_persists(fresh_lab):
    """A job poll tolerates what a rebooting node does (503, refused), and one garbage answer; garbage in a
    row, as often as the retry policy has attempts, ends the wait at once instead of at the job's deadline."""
    c = fresh_lab.client("psc-a")
    jid = c.backup_start(location_type="SFTP", location="sftp://backup.example/vcwave/psc-a", location_user="b")
    fresh_lab.faults({"type": "garbage", "node": "psc-a", "answer": "html", "path": f"backup/job/{jid}",
                      "count": 1})
    assert c.wait_job(lambda: c.backup_job(jid), deadline=60, initial=0.005, cap=0.02).succeeded
    fresh_lab.faults({"type": "garbage", "node": "psc-a", "answer": "truncated", "path": f"backup/job/{jid}",
                      "count": 1000})
    with pytest.raises(BadAnswer, match=f"GET /rest/appliance/recovery/backup/job/{jid}: answer is not valid"):
        c.wait_job(lambda: c.backup_job(jid), deadline=3600, initial=0.005, cap=0.02)

"""Secrets: env/0600 file, masked everywhere; logs: console/JSON, context keys, scrubbed."""
from __future__ import annotations

import io
import json
import os

import pytest

from orchestrator import log as olog
from orchestrator import scrub
from orchestrator.core.inventory import Credential
from orchestrator.errors import InputError
from orchestrator.secrets import Secret, resolve, resolve_secret


def test_secret_masks_everywhere():
    s = Secret("Sup3r-Secret!")
    assert str(s) == "***" and f"{s}" == "***" and "Sup3r" not in repr(s) and s.reveal() == "Sup3r-Secret!"
    assert scrub.scrub_text("x Sup3r-Secret! y") == "x *** y"
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(s)


def test_resolve_env(monkeypatch):
    monkeypatch.setenv("T_PW", "Env-Pa55word")
    assert resolve_secret(Credential("sso", "u", password_env="T_PW")) == "Env-Pa55word"
    assert scrub.scrub_text("Env-Pa55word") == "***"
    monkeypatch.delenv("T_PW")
    with pytest.raises(InputError, match="credential 'sso'.*T_PW"):
        resolve(Credential("sso", "u", password_env="T_PW"))


def test_resolve_file_mode(tmp_path):
    p = tmp_path / "pw"
    p.write_text("File-Pa55word\n")
    os.chmod(p, 0o600)
    assert resolve(Credential("root", "root", password_file=str(p))).reveal() == "File-Pa55word"
    os.chmod(p, 0o644)
    with pytest.raises(InputError, match="credential 'root'.*0644.*0600"):
        resolve(Credential("root", "root", password_file=str(p)))
    with pytest.raises(InputError, match="does not exist"):
        resolve(Credential("root", "root", password_file=str(tmp_path / "missing")))


SOAP = ('<soapenv:Body><Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this>'
        '<userName>administrator@vsphere.local</userName><password versionId="6.5">pl41n!</password></Login>')


@pytest.mark.parametrize("text,leak", [
    (SOAP, "pl41n!"),
    ('Set-Cookie: vmware_soap_session="52a1-secret-cookie"; Path=/; HttpOnly', "52a1-secret-cookie"),
    ("Cookie: vmware_soap_session=52a1-secret-cookie", "52a1-secret-cookie"),
    ("vmware-api-session-id: 0123abcdsession", "0123abcdsession"),
    ("Authorization: Basic YWRtaW46c2VjcmV0", "YWRtaW46c2VjcmV0"),
    ('{"piece": {"location_password": "loc-pw-1", "backup_password": "Bk-pw-2!"}}', "loc-pw-1"),
    ('{"piece": {"location_password": "loc-pw-1", "backup_password": "Bk-pw-2!"}}', "Bk-pw-2!"),
    ('{"user_data": [{"key": "vmdir.password", "value": "Vmdir-pw-3"}]}', "Vmdir-pw-3"),
])
def test_patterns(text, leak):
    out = scrub.scrub_text(text)
    assert leak not in out and "***" in out


def test_scrub_value_keys():
    v = scrub.scrub_value({"password": "x1", "headers": {"Authorization": "Basic abc"}, "n": 1,
                           "user_data": [{"key": "vmdir.password", "value": "zz"}]})
    assert v == {"password": "***", "headers": {"Authorization": "***"}, "n": 1,
                 "user_data": [{"key": "vmdir.password", "value": "***"}]}


def test_log_json_context_and_scrub():
    buf = io.StringIO()
    olog.configure(json=True, stream=buf)
    s = Secret("Log-Secret-99")
    with olog.bound(domain="vsphere.local", wave="psc-1"):
        olog.get_logger().info("step.start", node="psc-a", pw=s, detail="got Log-Secret-99 back", password="p")
    olog.get_logger().info("other")
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert lines[0]["domain"] == "vsphere.local" and lines[0]["wave"] == "psc-1" and lines[0]["node"] == "psc-a"
    assert lines[0]["step"] == "-" and lines[0]["pw"] == "***" and lines[0]["password"] == "***"
    assert "Log-Secret-99" not in buf.getvalue()
    assert {lines[1][k] for k in ("domain", "wave", "node", "step")} == {"-"}


def test_log_console_and_exception_scrubbed():
    buf = io.StringIO()
    olog.configure(json=False, stream=buf)
    Secret("Exc-Secret-77")
    olog.bind(node="vc-a")
    try:
        try:
            raise RuntimeError("login failed with Exc-Secret-77")
        except RuntimeError:
            olog.get_logger().exception("boom")
    finally:
        olog.unbind("node")
    out = buf.getvalue()
    assert "boom" in out and "node=vc-a" in out and "Exc-Secret-77" not in out


def test_many_known_secrets_each_redacted_exactly_as_trying_every_one(monkeypatch):
    """A long-lived process registers hundreds of secrets; scrub_text then looks them up instead of trying
    each. The result must be the one of trying every value longest first, a value that only appears once an
    earlier one was masked (it overlaps the mask) included."""
    import random
    monkeypatch.setattr(scrub, "_known", set())
    monkeypatch.setattr(scrub, "_longest_first", ())
    monkeypatch.setattr(scrub, "_by_prefix", {})
    monkeypatch.setattr(scrub, "_mask_like", ())
    rng = random.Random(18)
    values = {"".join(rng.choice("ab*cd") for _ in range(rng.randint(4, 7))) for _ in range(4 * scrub.FEW)}
    for v in values:
        scrub.register(v)
    assert scrub.known_count() == len(values) > scrub.FEW
    for _ in range(300):
        text = "".join(rng.choice("ab*cdX") for _ in range(rng.randint(0, 80)))
        expected = text
        for v in sorted(values, key=lambda v: (-len(v), v)):
            expected = expected.replace(v, scrub.MASK) if v in expected else expected
        assert scrub.scrub_text(text) == expected, text

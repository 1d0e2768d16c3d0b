"""The one list of secret key names: the inventory, the journal and the scrubbers agree on every key."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import scrub
from orchestrator.core.inventory import loads_inventory
from orchestrator.core.secret_keys import is_secret_key
from orchestrator.engine.journal import find_secret_keys
from orchestrator.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "single-site.yml"

SECRET = ["password", "backup_password", "SFTP_Password", "clientSecret", "api_token", "private_key",
          "privateKey", "ssh-passphrase", "passphrase", "vmware-api-session-id", "vmware_soap_session",
          "Set-Cookie", "Authorization", "session_id", "sessionId", "api-key", "vmdir.password", "pwd"]
NOT_SECRET = ["password_env", "password_file", "host", "thumbprint", "key", "session_count", "tokens_used",
              "credentials", "user", ""]


@pytest.mark.parametrize("key", SECRET)
def test_secret_keys_are_masked_by_the_scrubber(key: str) -> None:
    assert is_secret_key(key)
    assert scrub.scrub_value({key: "value-1234"}) == {key: scrub.MASK}


@pytest.mark.parametrize("key", NOT_SECRET)
def test_reference_and_plain_keys_are_kept(key: str) -> None:
    assert not is_secret_key(key)
    assert scrub.scrub_value({key: "value-1234"}) == {key: "value-1234"}


@pytest.mark.parametrize("key", ["private_key", "passphrase", "api_key"])
def test_inventory_refuses_the_keys_the_journal_refuses(key: str) -> None:
    """The three lists used to disagree: `private_key` was refused by the journal and accepted elsewhere."""
    assert find_secret_keys({"backup": {key: "x"}}) == [f"data.backup.{key}"]
    text = EXAMPLE.read_text().replace("password_env: VCWAVE_ROOT_PASSWORD}",
                                       f"password_env: VCWAVE_ROOT_PASSWORD, {key}: x}}")
    with pytest.raises(InputError, match=f"plaintext secret field '{key}'"):
        loads_inventory(text, "inv.yml")

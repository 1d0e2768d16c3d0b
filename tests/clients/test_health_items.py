"""A health item the appliance does not answer is an error naming the path, never skipped: a skipped item
read as healthy (the client asked `health/softwarepackages`, a path no appliance serves, for years)."""
from __future__ import annotations

import pytest

from orchestrator.clients.appliance import ApplianceClient
from orchestrator.clients.retry import NotFound

from ._servers import Script, ScriptServer

NOT_FOUND = (404, {"type": "com.vmware.vapi.std.errors.not_found",
                   "value": {"messages": [{"default_message": "Not found"}]}})


def test_every_item_is_asked_by_its_documented_path():
    items = ApplianceClient.HEALTH_ITEMS
    assert "software-packages" in items
    with ScriptServer(Script()) as srv:
        health = ApplianceClient(srv.url, "u", srv.script.password, node="vc-a").health()
    assert dict(health.items) == {i: "green" for i in items}
    assert [p for _, p, _ in srv.script.calls if "/health/" in p] == \
        ["/rest/appliance/health/system"] + [f"/rest/appliance/health/{i}" for i in items]


def test_an_item_answering_404_is_an_error_naming_node_and_path():
    with ScriptServer(Script().then("GET", "/rest/appliance/health/software-packages", NOT_FOUND)) as srv:
        with pytest.raises(NotFound, match="health/software-packages") as e:
            ApplianceClient(srv.url, "u", srv.script.password, node="vc-a").health()
    assert e.value.node == "vc-a"

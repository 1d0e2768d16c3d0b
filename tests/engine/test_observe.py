"""facts/domain.observe against nodes that never answer: a node that accepts the connection and then says
nothing, and a port nobody listens on. Each is reported "not answering" with its reason within the short
deadline, never as fine and never as "not done". The time it takes is printed (a benchmark, not an assert)."""
from __future__ import annotations

import socket
import threading
import time

from orchestrator.connect import Connections
from orchestrator.core.history import fold
from orchestrator.core.inventory import loads_inventory
from orchestrator.core.live import fold_live
from orchestrator.facts.domain import observe

INVENTORY = """\
domain: vsphere.local
topology: external-psc
credentials:
  sso: {{user: administrator@vsphere.local, password_env: VCWAVE_SSO_PASSWORD}}
sites: [site-a]
nodes:
  - {{name: psc-a, role: psc, site: site-a, host: 127.0.0.1, port: {hung}, scheme: http, version: '6.7 U1',
      backup: {{method: external, command: /opt/bk/run, verify: /opt/bk/verify}}}}
  - {{name: vc-a, role: vcenter, site: site-a, host: 127.0.0.1, port: {closed}, sdk_port: {closed}, scheme: http,
      version: '6.7 U1', psc: psc-a, backup: {{method: external, command: /opt/bk/run, verify: /opt/bk/verify}}}}
"""


def _hung_listener() -> tuple[socket.socket, list[socket.socket]]:
    """Accepts connections and never writes a byte (a node stuck mid-reboot behind its load balancer)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(srv.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    return srv, held


def test_silent_and_refusing_nodes_are_unknown_within_the_deadline(monkeypatch):
    monkeypatch.setenv("VCWAVE_SSO_PASSWORD", "unused")
    srv, held = _hung_listener()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    inv = loads_inventory(INVENTORY.format(hung=srv.getsockname()[1], closed=closed))
    conns = Connections(inv)
    try:
        t0 = time.monotonic()
        obs = observe(inv, conns, deadline=1.0)
        print(f"observation with one hung and one refusing node (deadline 1 s): {time.monotonic() - t0:.2f} s")
    finally:
        srv.close()
        for c in held:
            c.close()
    assert not obs.nodes["psc-a"].answering and not obs.nodes["vc-a"].answering
    assert any(s in obs.nodes["psc-a"].why for s in ("timed out", "no answer within 1 s", "no complete answer within"))
    assert "connection refused" in obs.nodes["vc-a"].why
    state = fold_live(inv, fold(inv, []), obs)
    assert state.lost() == ("psc-a", "vc-a") and all(n.version is None for n in state.nodes.values())

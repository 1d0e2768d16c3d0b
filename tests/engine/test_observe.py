"""facts/domain.observe against nodes that never answer: a node that accepts the connection and then says
nothing, and a port nobody listens on. Each is reported "not answering" with its reason within the short
deadline, never as fine and never as "not done". The time it takes is printed (a benchmark, not an assert)."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from orchestrator.connect import Connections
from orchestrator.core.history import fold
from orchestrator.core.inventory import loads_inventory
from orchestrator.core.live import fold_live
from orchestrator.facts.domain import observe

ROOT = Path(__file__).resolve().parents[2]

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


def test_a_commands_looks_share_one_session_per_node_and_closing_ends_them(tmp_path):
    """A command looks at the domain before every batch. Each look asks every node again, through the
    session of the look before: one login per node and API for the whole command (they used to be one per
    look, never logged out), and the command's end logs them out."""
    from tests.conftest import require_vcsim

    from lab.daemon import Lab
    from orchestrator.core.inventory import load_inventory
    require_vcsim()
    lab = Lab(ROOT / "examples" / "two-site.yml", tmp_path / "lab", time_scale=1e-4, use_vcsim=True).start()
    try:
        inv = load_inventory(tmp_path / "lab" / "lab-inventory.yml")
        conns = Connections(inv)
        for _ in range(3):
            obs = observe(inv, conns)
            assert all(s.answering for s in obs.nodes.values()), obs.nodes
        issued = {f.stem: len(f.read_text().split()) for f in (tmp_path / "lab" / "sessions").glob("*.txt")}
        assert {k: v for k, v in issued.items() if k != "soap-mgmt-vc"} == {
            "rest-psc-a": 1, "rest-psc-b": 1, "rest-vc-a": 1, "rest-vc-b": 1, "soap-vc-a": 1, "soap-vc-b": 1}
        assert all(lab.servers[n].sessions for n in lab.servers)
        conns.close()
        assert not any(lab.servers[n].sessions for n in lab.servers)
    finally:
        lab.stop()


def test_a_node_whose_call_outlives_the_look_gets_fresh_clients_at_the_next_one(monkeypatch):
    """The look stops waiting for a node at its deadline while the call may still run on its thread; a client
    serves one thread at a time, so the next look must not hand that node's client to a second thread."""
    import orchestrator.facts.domain as domain
    monkeypatch.setenv("VCWAVE_SSO_PASSWORD", "unused")
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    inv = loads_inventory(INVENTORY.format(hung=ports[0], closed=ports[1]))  # both refuse: quick answers
    conns = Connections(inv)
    release, used = threading.Event(), []
    real = domain.ask_node

    def stuck(probe, node):
        used.append((node.name, probe.appliance(node)))
        if node.name == "psc-a" and len(used) <= 2:
            release.wait(10)  # the first look's call outlives it
        return real(probe, node)

    monkeypatch.setattr(domain, "ask_node", stuck)
    try:
        first = observe(inv, conns, deadline=0.2)
        assert first.nodes["psc-a"].why == "no answer within 0.2 s"
        observe(inv, conns, deadline=0.2)
    finally:
        release.set()
    clients = {name: [c for n, c in used if n == name] for name in ("psc-a", "vc-a")}
    assert clients["psc-a"][0] is not clients["psc-a"][1]  # forgotten: a fresh client
    assert clients["vc-a"][0] is clients["vc-a"][1]  # answered in time: kept

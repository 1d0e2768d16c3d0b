"""lab/ports.py: a lab's node ports stay its own while the node is down (no other lab, no port-0 bind takes them)."""
from __future__ import annotations

import socket

import pytest

from lab.ports import PortBook, lab_range


@pytest.fixture
def books(tmp_path):
    made: list[PortBook] = []

    def make() -> PortBook:
        made.append(PortBook(tmp_path / "locks"))
        return made[-1]

    yield make
    for b in made:
        b.close()


def test_two_labs_never_hold_the_same_port(books):
    a, b = books(), books()
    mine = {a.reserve() for _ in range(5)}
    theirs = {b.reserve(p) for p in mine}  # even asking for a's ports by name
    assert len(mine) == 5 and len(theirs) == 5
    assert not mine & theirs


def test_lab_ports_are_never_ephemeral(books):
    port = books().reserve()
    assert port in lab_range()
    with socket.socket() as s:  # what a vcsim started on port 0 (another lab) or a client's source port gets
        s.bind(("127.0.0.1", 0))
        assert s.getsockname()[1] not in lab_range()


def test_a_resumed_lab_keeps_its_port_and_a_stopped_lab_frees_it(books):
    a = books()
    port = a.reserve()
    assert a.reserve(port) == port
    a.close()
    assert books().reserve(port) == port


def test_a_port_something_listens_on_is_not_handed_out(books):
    held = PortBook()  # the machine's own book: no running lab takes this port while the test listens on it
    try:
        port = held.reserve()
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen()
            assert books().reserve(port) != port  # another book (its own lock folder) sees it in use
    finally:
        held.close()

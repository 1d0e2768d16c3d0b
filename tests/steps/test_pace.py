"""The observe loops' pace (orchestrator/steps/common.py::Pace): the engine's poll interval at first, longer
while nothing changes (capped at 5x), the poll interval again as soon as what is seen changes."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator import stop
from orchestrator.steps.common import Pace


@pytest.fixture
def slept(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(stop, "sleep", waits.append)
    return waits


def ctx(poll_interval: float) -> SimpleNamespace:
    return SimpleNamespace(options=SimpleNamespace(poll_interval=poll_interval))


def test_waits_grow_while_nothing_changes_up_to_five_times_the_interval(slept):
    pace = Pace(ctx(2.0))
    for _ in range(8):
        pace.sleep()
    assert slept[0] == 2.0
    assert all(b > a for a, b in zip(slept, slept[1:4]))  # longer each look at first
    assert max(slept) == pytest.approx(10.0) and slept[-1] == pytest.approx(10.0)


def test_a_change_brings_the_next_look_back_to_the_interval(slept):
    pace = Pace(ctx(2.0))
    for _ in range(5):
        pace.sleep()
    pace.sleep(changed=True)
    pace.sleep()
    assert slept[4] > 2.0 and slept[5] == 2.0 and slept[6] == pytest.approx(3.2)


def test_the_lab_floor_is_50_ms(slept):
    Pace(ctx(0.001)).sleep()
    assert slept == [0.05]

"""The suite benchmark's order file and the slowest-first hand-out (lab/suitebench.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from lab.suitebench import read_order, slowest_first, write_order


@dataclass
class Item:
    nodeid: str
    group: str | None = None
    marks: dict = field(default_factory=dict)

    def get_closest_marker(self, name):
        return pytest.mark.xdist_group(self.group).mark if name == "xdist_group" and self.group else None


def test_slowest_units_first_groups_kept_together_the_rest_in_collection_order():
    items = [Item("a"), Item("g1", "G"), Item("b"), Item("g2", "G"), Item("c"), Item("d")]
    seconds = {"b": 5.0, "g1": 1.0, "g2": 3.0, "d": 0.2}
    ordered = [i.nodeid for i in slowest_first(items, seconds)]
    assert ordered == ["b", "g1", "g2", "d", "a", "c"]        # b 5 s, group G 4 s, d 0.2 s, then unmeasured
    assert sorted(ordered) == sorted(i.nodeid for i in items)  # order only: nothing dropped or doubled


def test_order_file_round_trips_and_leaves_out_fast_tests(tmp_path):
    path = tmp_path / "slow_first.txt"
    written = write_order({"t.py::fast": 0.1, "t.py::slow[a b]": 12.5, "t.py::mid": 0.5}, path)
    assert written == 2
    assert read_order(path) == {"t.py::slow[a b]": 12.5, "t.py::mid": 0.5}
    assert list(read_order(path)) == ["t.py::slow[a b]", "t.py::mid"]
    assert read_order(tmp_path / "missing.txt") == {}

"""Hostile YAML is refused before anything is built, with file and line: aliases (a "billion laughs" would
expand to gigabytes), control characters, nesting deep enough to exhaust the stack, oversized files."""
from __future__ import annotations

import re

import pytest

from orchestrator.core import yamlsrc
from orchestrator.core.yamlsrc import load_yaml, loads_yaml
from orchestrator.errors import InputError

LAUGHS = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                   + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")])


@pytest.mark.parametrize("text, line, fragment", [
    (LAUGHS, 1, "anchor &a refused"),
    ("sites: [a, b]\nnodes: *x\n", 2, "alias *x refused"),
    ("domain: x\nnodes:\n  - name: &n vc\n", 3, "anchor &n"),
    ("domain: vsphere\x00.local\n", 1, "control character #x00"),
    ("domain: x\nsites: [a]\n\x1b[31mred\n", 3, "control character #x1b"),
    ("a: 1\na: 2\n", 2, "duplicate key 'a'"),
])
def test_refused_with_line(text, line, fragment):
    with pytest.raises(InputError, match=re.escape(fragment)) as ei:
        loads_yaml(text, "inv.yml", "inventory")
    assert (ei.value.where.file, ei.value.where.line) == ("inv.yml", line)


def test_deep_nesting_refused_not_a_recursion_error():
    with pytest.raises(InputError, match="nested too deeply"):
        loads_yaml("[" * 5000 + "]" * 5000, "deep.yml", "playbook")


def test_oversized_file_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(yamlsrc, "MAX_BYTES", 64)
    big = tmp_path / "big.yml"
    big.write_text("domain: " + "x" * 100 + "\n")
    with pytest.raises(InputError, match="larger than") as ei:
        load_yaml(big, "inventory")
    assert ei.value.where.file == str(big)


def test_merge_keys_without_anchors_still_load():
    assert loads_yaml("a: 1\n<<: {b: 2}\n", "m.yml", "inventory") == {"a": 1, "b": 2}

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


def test_deep_nesting_refused_not_a_recursion_error(monkeypatch):
    with pytest.raises(InputError, match="nested too deeply"):
        loads_yaml("[" * 5000 + "]" * 5000, "deep.yml", "playbook")
    monkeypatch.setattr(yamlsrc, "_CLoader", None)  # no libyaml: the pure path, at its recursion limit
    with pytest.raises(InputError, match="nested too deeply"):
        loads_yaml("[" * 600 + "]" * 600, "deep.yml", "playbook")


def test_a_document_nested_beyond_the_limit_is_refused_at_its_line_and_one_within_it_loads():
    deep = "a:\n  - " + "[" * (yamlsrc.MAX_DEPTH + 1) + "]" * (yamlsrc.MAX_DEPTH + 1) + "\n"
    with pytest.raises(InputError, match="nested too deeply") as ei:
        loads_yaml(deep, "deep.yml", "inventory")
    assert ei.value.where.line == 2 and ei.value.where.file == "deep.yml"
    ok = "[" * (yamlsrc.MAX_DEPTH - 2) + "1" + "]" * (yamlsrc.MAX_DEPTH - 2)
    assert loads_yaml(ok, "ok.yml", "inventory") is not None


def test_oversized_file_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(yamlsrc, "MAX_BYTES", 64)
    big = tmp_path / "big.yml"
    big.write_text("domain: " + "x" * 100 + "\n")
    with pytest.raises(InputError, match="larger than") as ei:
        load_yaml(big, "inventory")
    assert ei.value.where.file == str(big)


def test_merge_keys_without_anchors_still_load():
    assert loads_yaml("a: 1\n<<: {b: 2}\n", "m.yml", "inventory") == {"a": 1, "b": 2}


def _pure(text: str, filename: str) -> object:
    """The pure-Python path alone (what loads_yaml gives whenever libyaml is not used)."""
    return yamlsrc._load_pure(yamlsrc._Loader(text), text, filename, "inventory")


def _shape(value: object) -> object:
    """Data with its types and, for mappings, the lines every error message names."""
    if isinstance(value, yamlsrc.Located):
        return ("located", value.line, sorted(value.key_lines.items()), [(k, _shape(v)) for k, v in value.items()])
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return (type(value).__name__, value)


def _outcome(load: object, text: str) -> object:
    try:
        return _shape(load(text, "f.yml"))  # type: ignore[operator]
    except InputError as exc:
        return ("refused", str(exc), exc.where)


def _mutants(seed: int, n: int) -> list[str]:
    """The repository's examples with a few random YAML-ish edits each: valid and broken documents alike."""
    import random
    from pathlib import Path
    rng = random.Random(seed)
    root = Path(__file__).resolve().parents[2]
    texts = [p.read_text() for p in sorted((root / "examples").glob("*.yml"))]
    pieces = list(" \n:-[]{},#'\"!&*|>?%@`\t\r") + ["\r\n", "- ", ": ", "~", "yes", "0x1", "2020-01-01", "\u00e9"]
    out = list(texts)
    for _ in range(n):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(text) + 1)
            text = (text[:i] + rng.choice(pieces) + text[i:]) if rng.random() < 0.6 else text[:i] + text[i + 3:]
        out.append(text)
    return out


def test_libyaml_path_gives_exactly_what_the_pure_path_gives():
    """loads_yaml parses plain documents with libyaml (speed); for every document, valid or not, it must give
    the pure-Python path's data, types and lines, or its very refusal."""
    cases = _mutants(seed=18, n=24)
    assert any(yamlsrc._load_fast(t, "f.yml", "inventory") is not None for t in cases) == bool(yamlsrc._CLoader)
    for text in cases:
        assert _outcome(lambda t, f: loads_yaml(t, f, "inventory"), text) == _outcome(_pure, text), repr(text)

"""YAML loading that remembers where each value came from, and refuses hostile YAML before building anything.

Why: every bad input must be reported with its file, line and field. PyYAML's plain loaders forget
positions, so mappings are built as `Located` dicts that keep the line of each key.

Anchors and aliases are refused outright: no inventory, playbook or example uses them, and an alias that
points at an alias ("billion laughs") expands to gigabytes from a few hundred bytes. Control characters
(NUL...) and nesting deep enough to exhaust Python's stack are refused the same way, with file and line.

Speed: PyYAML's pure-Python scanner costs ~12 ms for a small inventory, and every command loads its
inventory and playbook. When PyYAML has libyaml, a plain document (no anchor, alias, directive, tab or deep
nesting, one document, built without any error) is parsed by libyaml and built by the very same constructor
(the same `Located` dicts, lines and key checks): ~1.7 ms. Anything else goes the pure-Python way, so every
refusal and error message is the one that path gives.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import InputError, Where


class Located(dict):
    """A dict that knows its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    vcwave_path = ""

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Refuse an alias or an anchor where it appears, before the composer can expand it."""
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise InputError(f"YAML {kind}{event.anchor} refused: anchors and aliases are not part of vcwave's "
                             f"files (an alias can expand without limit); write the value out",
                             Where(file=self.vcwave_path, line=event.start_mark.line + 1))
        return super().compose_node(parent, index)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    out = Located()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise InputError("mapping keys must be plain names",
                             Where(file=loader.vcwave_path, line=key_node.start_mark.line + 1))
        key = str(key)
        if key in out:
            raise InputError(f"duplicate key '{key}'",
                             Where(file=loader.vcwave_path, line=key_node.start_mark.line + 1,
                                   field=key))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_CLoader: type | None = None
if yaml.__with_libyaml__:
    class _CLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        """libyaml's parser and composer, the pure path's constructor (see the module docstring)."""

        vcwave_path = ""

    _CLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

FAST_MAX_DEPTH = 64  # deeper than any inventory or playbook: left to the pure path and its RecursionError
# where the two scanners may differ: tabs, unusual line breaks, a BOM, and `?` (libyaml takes explicit keys
# inside flow mappings that PyYAML refuses)
_FAST_REFUSED_CHARS = ("\t", "\x85", "\u2028", "\u2029", "\ufeff", "?")
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


TOO_DEEP = "{what} is nested too deeply to be an inventory or a playbook"
MAX_DEPTH = 200  # refused outright: the pure path's recursion would stop near 300-400 levels, after ~1 s


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def _plain(text: str) -> bool:
    """No anchor, alias, directive or nesting beyond FAST_MAX_DEPTH, per libyaml's events (C speed). Raises
    _TooDeep at the first level beyond MAX_DEPTH, wherever the document would have gone."""
    depth, plain = 0, True
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            return False
        if isinstance(event, yaml.DocumentStartEvent) and (event.version or event.tags):
            return False
        depth += isinstance(event, _OPEN) - isinstance(event, _CLOSE)
        if depth > MAX_DEPTH:
            raise _TooDeep(event.start_mark.line + 1)
        plain = plain and depth <= FAST_MAX_DEPTH
    return plain


def _load_fast(text: str, filename: str, what: str) -> Any:
    """The document through libyaml, or None whenever the pure path must decide: no libyaml, anything
    `_plain` does not accept, any error (that path then gives its own message) or an empty document. A
    document nested beyond MAX_DEPTH is refused here, in C time, whichever path would have read it."""
    if _CLoader is None:
        return None
    try:
        if not _plain(text) or any(c in text for c in _FAST_REFUSED_CHARS):
            return None
        loader = _CLoader(text)
        loader.vcwave_path = filename
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _TooDeep as deep:
        raise InputError(TOO_DEEP.format(what=what), Where(file=filename, line=deep.line)) from None
    except Exception:  # noqa: BLE001 - never an answer: the pure path reports it exactly
        return None


_TRUSTED_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_trusted(text: str) -> Any:
    """Files no administrator wrote: vcwave's package data (every command reads the interop and release data)
    and what vcwave or its lab wrote itself. Plain `safe_load`, through libyaml when present (~10x faster);
    an administrator's file goes through `loads_yaml` and its checks instead."""
    return yaml.load(text, Loader=_TRUSTED_LOADER)


def dump_plain(data: Any, **options: Any) -> str:
    """`safe_dump` of plain data (what vcwave and its lab write: the next inventory, the lab's inventory),
    through libyaml when present: the pure-Python emitter cost ~10 ms for a lab's inventory."""
    return yaml.dump(data, Dumper=_PLAIN_DUMPER, **options)


MAX_BYTES = 8 * 1024 * 1024  # a 1000-node inventory is ~0.3 MB: anything near this is not one


def load_yaml(path: str | Path, what: str) -> Any:
    """Load one YAML document; an unreadable, oversized or malformed file is an InputError naming file and line."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BYTES:
            raise InputError(f"{what} file is larger than {MAX_BYTES // (1024 * 1024)} MiB", Where(file=str(p)))
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} file not found", Where(file=str(p))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} file: {exc}", Where(file=str(p))) from None
    return loads_yaml(text, str(p), what)


def _reader_error(exc: yaml.reader.ReaderError, text: str, filename: str, what: str) -> InputError:
    """A character YAML does not allow (NUL, other control characters): name it and its line."""
    char = exc.character if isinstance(exc.character, int) else ord(exc.character or "\0")
    line = text.count("\n", 0, max(exc.position, 0)) + 1
    return InputError(f"{what} is not valid YAML: control character #x{char:02x} is not allowed",
                      Where(file=filename, line=line))


def loads_yaml(text: str, filename: str, what: str) -> Any:
    """Parse one YAML document from `text`; every failure is an InputError naming `filename` and the line."""
    try:
        loader = _Loader(text)  # the reader checks every character here
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, filename, what) from None
    data = _load_fast(text, filename, what)
    if data is not None:
        loader.dispose()
        return data
    return _load_pure(loader, text, filename, what)


def _load_pure(loader: _Loader, text: str, filename: str, what: str) -> Any:
    """The pure-Python path: every refusal and every error message comes from here."""
    loader.vcwave_path = filename
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise InputError(f"{what} is not valid YAML: {exc.problem}", Where(file=filename, line=line)) from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, filename, what) from None
    except yaml.YAMLError as exc:
        raise InputError(f"{what} is not valid YAML: {exc}", Where(file=filename)) from None
    except RecursionError:
        raise InputError(TOO_DEEP.format(what=what), Where(file=filename)) from None
    finally:
        loader.dispose()
    if data is None:
        raise InputError(f"{what} is empty", Where(file=filename))
    return data

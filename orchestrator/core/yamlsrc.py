"""YAML loading that remembers where each value came from.

Why: every bad input must be reported with its file, line and field. PyYAML's plain loaders forget
positions, so mappings are built as `Located` dicts that keep the line of each key.
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
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    out = Located()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise InputError("mapping keys must be plain names",
                             Where(file=str(getattr(loader, "vcwave_path", "")), line=key_node.start_mark.line + 1))
        key = str(key)
        if key in out:
            raise InputError(f"duplicate key '{key}'",
                             Where(file=str(getattr(loader, "vcwave_path", "")), line=key_node.start_mark.line + 1,
                                   field=key))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path, what: str) -> Any:
    """Load one YAML document; an unreadable or malformed file is an InputError naming file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} file not found", Where(file=str(p))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} file: {exc}", Where(file=str(p))) from None
    return loads_yaml(text, str(p), what)


def loads_yaml(text: str, filename: str, what: str) -> Any:
    loader = _Loader(text)
    loader.vcwave_path = filename
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise InputError(f"{what} is not valid YAML: {exc.problem}", Where(file=filename, line=line)) from None
    except yaml.YAMLError as exc:
        raise InputError(f"{what} is not valid YAML: {exc}", Where(file=filename)) from None
    finally:
        loader.dispose()
    if data is None:
        raise InputError(f"{what} is empty", Where(file=filename))
    return data

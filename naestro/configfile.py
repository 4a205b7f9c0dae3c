"""Reading a YAML config file (models.yaml, tools.yaml) so that every way it can be wrong is one line.

A missing or unreadable file, bytes that are not UTF-8, broken YAML and a document of the wrong shape each
become a ``ConfigInvalid`` naming the file, the line and what to do: the CLI prints it and exits 2 instead
of a traceback (issue 14: a non-UTF-8 tools.yaml printed a UnicodeDecodeError traceback).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from naestro.errors import ConfigInvalid

__all__ = ["invalid_shape", "line_of", "read_yaml"]


def read_yaml(path: Path, *, where: str | None = None, hint: str = "") -> tuple[object, str]:
    """The parsed document and its text. ``hint`` is appended to every message (e.g. how to fall back)."""
    where = where or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigInvalid(f"cannot read: {exc.strerror}{hint}", file=where) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigInvalid(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                            f"save it as UTF-8{hint}", file=where,
                            line=raw[:exc.start].count(b"\n") + 1) from exc
    return parse_yaml(text, where=where, hint=hint), text


def parse_yaml(text: str, *, where: str, hint: str = "") -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        column = f" (column {mark.column + 1})" if mark is not None else ""
        raise ConfigInvalid(f"invalid YAML: {' '.join(problem.split())}{column}{hint}", file=where,
                            line=mark.line + 1 if mark is not None else None) from exc


def invalid_shape(exc: ValidationError, text: str, *, where: str, hint: str = "") -> ConfigInvalid:
    """A pydantic error on a YAML document as one line: the first problem's field and line, the others after."""
    first, *rest = exc.errors()
    also = "".join(f"; {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in rest)
    return ConfigInvalid(f"{first['msg']}{also}{hint}", file=where, field=".".join(map(str, first["loc"])),
                         line=line_of(text, first["loc"]))


def line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or of its deepest existing parent, for a missing key)."""
    node: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line

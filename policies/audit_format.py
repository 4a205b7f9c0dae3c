"""The audit log's on-disk format, shared by the writer (policies/audit.py) and the verifier (audit_verify.py).

A record is one line of canonical-sorted JSON with ``seq``, ``run``, ``prev``, ``hash`` (sha256 of the canonical
JSON of everything but ``hash`` and ``sig``) and ``sig``. A head or an anchor is ``{"run", "seq", "hash", "sig"}``
padded to ``MARK_SIZE`` bytes, so it is overwritten in place; ``sig`` signs the canonical JSON of the other three.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from naestro.errors import AuditError

GENESIS = "0" * 64
# Heads and anchors are overwritten in place (a rename costs ~2.5 ms of metadata I/O here), padded so that a
# shorter one never leaves stale bytes behind.
MARK_SIZE = 512
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def anchors_dir(home: Path) -> Path:
    """Where the anchors of every log of this NAESTRO_HOME live: outside every run directory."""
    return home / "audit" / "anchors"


def anchor_path(anchors: Path, run_id: str) -> Path:
    if not _RUN_NAME.fullmatch(run_id):
        raise AuditError(path=str(anchors), reason=f"run id {run_id!r} cannot name an anchor file")
    return anchors / f"{run_id}.json"


def canonical(record: dict[str, Any]) -> bytes:
    # surrogatepass: a lone surrogate (JSON allows "\ud800") hashes instead of crashing; every valid string encodes
    # exactly as before, so logs written earlier keep their hashes.
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8",
                                                                                                "surrogatepass")


def record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    return hashlib.sha256(canonical(body)).hexdigest()


def record_line(record: dict[str, Any]) -> bytes:
    try:
        return (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode()
    except UnicodeEncodeError:  # a lone surrogate: escaped, the line stays UTF-8 and parses back to the same record
        return (json.dumps(record, sort_keys=True) + "\n").encode()


def json_type(value: object) -> str:
    names = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Record:
    line: int
    body: dict[str, Any]
    seq: int
    hash: str  # as stored
    computed: str  # what the content hashes to

    @property
    def run(self) -> object:
        return self.body.get("run")


def parse_record(line: int, raw: bytes) -> Record | str:
    """One line of the log, or why it is not a record (the writer never writes such a line)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return "not UTF-8 text"
    try:
        body = json.loads(text)
        if not isinstance(body, dict):
            return f"not an audit record ({json_type(body)}, not an object)"
        seq, stored = body.get("seq"), body.get("hash")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(stored, str):
            return "not an audit record (no integer seq and string hash)"
        return Record(line, body, seq, stored, record_hash(body))
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; RecursionError: "[[[[..." nested deep
        return "not an audit record (not JSON)"


@dataclass(frozen=True)
class Mark:
    """A signed head or anchor. ``run`` is None only in heads written before issue 14."""

    run: str | None
    seq: int
    hash: str
    sig: str

    def signed(self) -> bytes:
        body: dict[str, Any] = {"seq": self.seq, "hash": self.hash}
        return canonical(body if self.run is None else {"run": self.run, **body})


def parse_mark(raw: bytes) -> Mark | str:
    """A head or anchor, or why it is not one."""
    if not raw.strip():
        return "empty"
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        return "not JSON"
    if not isinstance(obj, dict):
        return f"{json_type(obj)}, not an object"
    run, seq, digest, sig = obj.get("run"), obj.get("seq"), obj.get("hash"), obj.get("sig")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(digest, str) or not isinstance(sig, str) \
            or not isinstance(run, str | None):
        return "no integer seq, string hash and signature"
    return Mark(run, seq, digest, sig)


def rolled_back(last: int, anchored: int) -> str:
    return (f"the log ends at record {last} but the anchor in HOME says {anchored}: records were removed or the "
            f"log was replaced")

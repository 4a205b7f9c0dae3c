"""``verify_log``: every problem of a run's audit log, its head and its anchor (the writer is policies/audit.py).

Hashes, signatures, the chain, seq order, that every record and the head belong to the run, and that the log still
ends where its anchor in NAESTRO_HOME says: an edited, forged, deleted, reordered, inserted or duplicated record is
named by line, and a log that was replaced or rolled back is named too.
"""

from __future__ import annotations

import base64
import fcntl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from naestro.errors import AuditError
from policies.audit_format import GENESIS, Record, anchor_path, parse_mark, parse_record, rolled_back

__all__ = ["AuditProblem", "ProblemKind", "verify_log"]

ProblemKind = Literal["edited", "forged", "deleted", "reordered", "inserted", "duplicated", "truncated", "malformed",
                      "missing", "replaced", "rollback", "unanchored"]


@dataclass(frozen=True)
class AuditProblem:
    """One finding of ``verify_log``. ``line`` 0: not about one line; ``file`` set: about the head or the anchor
    rather than the log."""

    line: int
    seq: int | None
    kind: ProblemKind
    message: str
    file: str = ""

    def __str__(self) -> str:
        where = " ".join(w for w in (f"line {self.line}" if self.line else "",
                                     f"(seq {self.seq})" if self.seq is not None else "") if w)
        return f"{where}: {self.kind}: {self.message}" if where else f"{self.kind}: {self.message}"


def _sig_ok(pub: Ed25519PublicKey, sig: str, message: bytes) -> bool:
    try:
        pub.verify(base64.b64decode(sig), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _snapshot(log: Path, head: Path, anchor: Path) -> tuple[bytes | None, bytes | None, bytes | None]:
    """The log, its head and its anchor as of one moment: writers change all three under an exclusive lock."""
    try:
        fh = log.open("rb")
    except FileNotFoundError:
        return None, _read(head), _read(anchor)
    with fh:
        fcntl.flock(fh, fcntl.LOCK_SH)
        return fh.read(), _read(head), _read(anchor)


def _check_records(records: list[Record], pub: Ed25519PublicKey, run_id: str,
                   problems: list[AuditProblem]) -> dict[int, str]:
    """Each record's hash, signature, run, place in the chain; returns seq -> hash of this run's records."""
    own = [r for r in records if r.run == run_id]
    if records and not own:
        named = ", ".join(sorted({repr(r.run) for r in records}))
        problems.append(AuditProblem(records[0].line, None, "replaced",
                                     f"none of its {len(records)} records belongs to run {run_id!r} (they name run "
                                     f"{named}): this is another run's log"))
    present = {r.seq for r in own}
    last_seq = 0
    seen: dict[int, str] = {}
    for rec in records:
        lineno, seq, stored = rec.line, rec.seq, rec.hash
        if rec.computed != stored:
            problems.append(AuditProblem(lineno, seq, "edited", "content does not match its hash"))
        elif not _sig_ok(pub, str(rec.body.get("sig", "")), bytes.fromhex(stored)):
            problems.append(AuditProblem(lineno, seq, "forged", "hash is consistent but the signature is not ours"))
        if rec.run != run_id:
            if own:
                problems.append(AuditProblem(lineno, seq, "inserted",
                                             f"record of run {rec.run!r} in run {run_id!r}'s log"))
            continue
        if seq in seen:
            kind: ProblemKind = "duplicated" if seen[seq] == stored else "inserted"
            problems.append(AuditProblem(lineno, seq, kind, f"seq {seq} already appeared earlier"))
            continue
        seen[seq] = stored
        if seq != last_seq + 1:
            skipped = range(last_seq + 1, seq)
            if seq <= last_seq or any(s in present for s in skipped):
                problems.append(AuditProblem(lineno, seq, "reordered", f"seq {seq} comes after seq {last_seq}"))
            else:
                missing = ", ".join(str(s) for s in skipped)
                problems.append(AuditProblem(lineno, seq, "deleted", f"record(s) {missing} missing before this one"))
        elif rec.body.get("prev") != (seen.get(seq - 1) if seq > 1 else GENESIS):
            problems.append(AuditProblem(lineno, seq, "inserted", "does not chain to the previous record"))
        last_seq = max(last_seq, seq)
    return seen


def _check_head(raw: bytes | None, path: Path, pub: Ed25519PublicKey, run_id: str, seen: dict[int, str],
                problems: list[AuditProblem]) -> None:
    last, file = max(seen, default=0), str(path)
    if raw is None:
        problems.append(AuditProblem(0, None, "truncated", f"head file {path.name} is missing", file))
        return
    head = parse_mark(raw)
    if isinstance(head, str):
        problems.append(AuditProblem(0, None, "malformed", f"not a signed head ({head})", file))
    elif not _sig_ok(pub, head.sig, head.signed()):
        problems.append(AuditProblem(0, None, "forged", f"head file {path.name} signature is not ours", file))
    elif head.run is not None and head.run != run_id:  # None: a head written before issue 14; its hash binds it
        problems.append(AuditProblem(0, head.seq, "replaced",
                                     f"head of run {head.run!r}, not {run_id!r}: another run's head", file))
    elif head.seq > last:
        missing = ", ".join(str(s) for s in range(last + 1, head.seq + 1))
        problems.append(AuditProblem(0, head.seq, "deleted", f"the log ends at seq {last} but the signed head says "
                                                             f"{head.seq}: record(s) {missing} deleted"))
    elif head.seq < last:
        problems.append(AuditProblem(0, None, "inserted",
                                     f"records after the signed head (seq {head.seq}) were appended"))
    elif seen.get(head.seq) != head.hash:
        problems.append(AuditProblem(0, head.seq, "replaced", f"record {head.seq} is not the one the signed head "
                                                              "names: the log or its head was replaced"))


def _check_anchor(raw: bytes | None, path: Path, pub: Ed25519PublicKey, run_id: str, seen: dict[int, str], *,
                  records: int, problems: list[AuditProblem]) -> None:
    last, file = max(seen, default=0), str(path)
    if raw is None or not raw.strip():  # empty: a writer died between creating and writing it
        if records:
            problems.append(AuditProblem(
                0, None, "unanchored", f"no anchor {path} for this log: a log written before anchors existed "
                "(issue 14) has none, and whether it was rolled back cannot be checked; otherwise the anchor was "
                "deleted or the log was copied in from elsewhere"))
        return
    anchor = parse_mark(raw)
    if isinstance(anchor, str):
        problems.append(AuditProblem(0, None, "malformed", f"not a signed anchor ({anchor})", file))
    elif not _sig_ok(pub, anchor.sig, anchor.signed()):
        problems.append(AuditProblem(0, None, "forged", "anchor signature is not ours", file))
    elif anchor.run != run_id:
        problems.append(AuditProblem(0, None, "replaced", f"anchor of run {anchor.run!r}, not {run_id!r}", file))
    elif anchor.seq > last:
        problems.append(AuditProblem(0, anchor.seq, "rollback", f"{rolled_back(last, anchor.seq)} (anchor {path})"))
    elif anchor.seq < last:
        problems.append(AuditProblem(0, None, "inserted", f"records after seq {anchor.seq}, the last one the anchor "
                                                          f"in HOME names, were appended (anchor {path})"))
    elif seen.get(last) != anchor.hash:
        problems.append(AuditProblem(0, last, "replaced", f"record {last} is not the one the anchor in HOME names: "
                                                          f"the log was replaced (anchor {path})"))


def verify_log(path: Path, pub: Ed25519PublicKey, *, run_id: str, anchors: Path) -> list[AuditProblem]:
    """Every problem found (empty list = intact): hashes, signatures, the chain, seq order, that every record and
    the head belong to ``run_id``, and that the log still ends where its anchor in ``anchors`` says.

    Garbage in the log, its head or its anchor is a problem (the writer never writes any); a file that cannot be
    read at all (permissions, a folder) raises AuditError.
    """
    anchor_file, head_path = anchor_path(anchors, run_id), path.with_suffix(".head")
    try:
        data, head, anchor = _snapshot(path, head_path, anchor_file)
    except OSError as exc:
        raise AuditError(path=str(exc.filename or path), reason=exc.strerror or str(exc)) from exc
    problems: list[AuditProblem] = []
    records: list[Record] = []
    if data is None:
        problems.append(AuditProblem(0, None, "missing", f"{path} does not exist"))
    for lineno, raw in enumerate((data or b"").split(b"\n"), 1):  # only \n ends a record: U+2028 may be inside
        if raw.strip():
            rec = parse_record(lineno, raw)
            if isinstance(rec, str):
                problems.append(AuditProblem(lineno, None, "malformed", rec))
            else:
                records.append(rec)
    seen = _check_records(records, pub, run_id, problems)
    if data is not None:
        _check_head(head, head_path, pub, run_id, seen, problems)
    _check_anchor(anchor, anchor_file, pub, run_id, seen, records=len(records), problems=problems)
    return problems

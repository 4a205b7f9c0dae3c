"""The audit log: append-only, hash-chained, Ed25519-signed JSONL, one file per run.

Each record carries ``seq``, the previous record's hash and its own hash (sha256 of the canonical JSON of
everything else) signed with a key kept outside the run directory (``NAESTRO_HOME/keys``). A signed head
file names the last record, so deleting records at the end is detected too. ``verify`` names each
tampered record: edited, forged (re-hashed without the key), deleted, reordered, inserted or duplicated.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from naestro.errors import AuditError
from naestro.redact import redact_value

__all__ = ["AuditLog", "AuditProblem", "load_signing_key", "verify_log"]

GENESIS = "0" * 64
_HEAD_SIZE = 256


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    return hashlib.sha256(_canonical(body)).hexdigest()


def load_signing_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The installation's audit key (created once, mode 0600); its public half sits beside it."""
    private = keys_dir / "audit_ed25519.pem"
    if private.exists():
        key = serialization.load_pem_private_key(private.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise AuditError(path=str(private), reason="not an Ed25519 private key")
        return key
    keys_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    (keys_dir / "audit_ed25519.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key


def load_public_key(keys_dir: Path) -> Ed25519PublicKey:
    path = keys_dir / "audit_ed25519.pub"
    if not path.exists():
        raise AuditError(path=str(path), reason="no audit public key; was this log written on this NAESTRO_HOME?")
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(path=str(path), reason="not an Ed25519 public key")
    return key


class AuditLog:
    """Appends signed records for one run. Arguments pass through redaction before they are written."""

    def __init__(self, path: Path, *, run_id: str, key: Ed25519PrivateKey) -> None:
        self.path, self.run_id, self._key = path, run_id, key
        self.head_path = path.with_suffix(".head")

    def _last(self, fh: Any) -> tuple[int, str]:
        """seq and hash of the last record, read from the file's tail (other processes append too)."""
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0, GENESIS
        fh.seek(max(0, size - 8192))
        lines = [ln for ln in fh.read().splitlines() if ln.strip()]
        last = json.loads(lines[-1])
        return int(last["seq"]), str(last["hash"])

    def append(self, kind: str, **data: Any) -> dict[str, Any]:
        """Sign and append one record; an exclusive lock serialises writers (the run, ``naestro pause``...)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                seq, prev = self._last(fh)
                record: dict[str, Any] = {"seq": seq + 1, "ts": round(time.time(), 6), "run": self.run_id,
                                          "kind": kind, "data": redact_value(data), "prev": prev}
                record["hash"] = _hash(record)
                record["sig"] = base64.b64encode(self._key.sign(bytes.fromhex(record["hash"]))).decode()
                fh.write((json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode())
                fh.flush()  # in the OS after this: survives SIGKILL (fsync would add ~5 ms per call)
                head = {"seq": record["seq"], "hash": record["hash"]}
                head["sig"] = base64.b64encode(self._key.sign(_canonical(head))).decode()
                # One small overwrite in place (a rename costs ~2.5 ms of metadata I/O here); padded so a
                # shorter head never leaves stale bytes behind.
                fd = os.open(self.head_path, os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    os.pwrite(fd, json.dumps(head).ljust(_HEAD_SIZE).encode(), 0)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise AuditError(path=str(self.path), reason=exc.strerror or str(exc)) from exc
        return record


@dataclass(frozen=True)
class AuditProblem:
    line: int
    seq: int | None
    kind: str  # edited | forged | deleted | reordered | inserted | duplicated | truncated | malformed
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"{where}: {self.kind}: {self.message}"


def _sig_ok(pub: Ed25519PublicKey, sig: str, message: bytes) -> bool:
    try:
        pub.verify(base64.b64decode(sig), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_log(path: Path, pub: Ed25519PublicKey) -> list[AuditProblem]:
    """Every problem found (empty list = intact). Checks hashes, signatures, the chain, seq order, the head."""
    problems: list[AuditProblem] = []
    if not path.exists():
        return [AuditProblem(0, None, "missing", f"{path} does not exist")]
    records: list[tuple[int, dict[str, Any]]] = []
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            int(rec["seq"]), str(rec["hash"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            problems.append(AuditProblem(lineno, None, "malformed", "not an audit record"))
            continue
        records.append((lineno, rec))
    present = {int(rec["seq"]) for _, rec in records}
    run = records[0][1].get("run") if records else None
    last_seq = 0
    seen: dict[int, str] = {}
    for lineno, rec in records:
        seq, stored = int(rec["seq"]), str(rec["hash"])
        if _hash(rec) != stored:
            problems.append(AuditProblem(lineno, seq, "edited", "content does not match its hash"))
        elif not _sig_ok(pub, str(rec.get("sig", "")), bytes.fromhex(stored)):
            problems.append(AuditProblem(lineno, seq, "forged", "hash is consistent but the signature is not ours"))
        if rec.get("run") != run:
            problems.append(AuditProblem(lineno, seq, "inserted",
                                         f"record of run {rec.get('run')!r} in run {run!r}'s log"))
            continue
        if seq in seen:
            kind = "duplicated" if seen[seq] == stored else "inserted"
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
        elif rec.get("prev") != (seen.get(seq - 1) if seq > 1 else GENESIS):
            problems.append(AuditProblem(lineno, seq, "inserted", "does not chain to the previous record"))
        last_seq = max(last_seq, seq)
    expected_seq = last_seq + 1
    head_path = path.with_suffix(".head")
    if not head_path.exists():
        problems.append(AuditProblem(0, None, "truncated", f"head file {head_path.name} is missing"))
        return problems
    head = json.loads(head_path.read_text())
    body = {"seq": head.get("seq"), "hash": head.get("hash")}
    if not _sig_ok(pub, str(head.get("sig", "")), _canonical(body)):
        problems.append(AuditProblem(0, None, "forged", f"head file {head_path.name} signature is not ours"))
    elif int(head["seq"]) > expected_seq - 1:
        missing = ", ".join(str(s) for s in range(expected_seq, int(head["seq"]) + 1))
        problems.append(AuditProblem(0, int(head["seq"]), "deleted",
                                     f"the log ends at seq {expected_seq - 1} but the signed head says "
                                     f"{head['seq']}: record(s) {missing} deleted"))
    elif int(head["seq"]) < expected_seq - 1:
        problems.append(AuditProblem(0, None, "inserted",
                                     f"records after the signed head (seq {head['seq']}) were appended"))
    return problems

"""The audit log: append-only, hash-chained, Ed25519-signed JSONL, one file per run.

Each record carries ``seq``, its run's id, the previous record's hash and its own hash (sha256 of the canonical
JSON of everything else) signed with a key kept outside the run directory (``NAESTRO_HOME/keys``). Two signed
heads name the last record: ``audit.head`` beside the log, so deleting records at the end is detected, and an
anchor in ``NAESTRO_HOME/audit/anchors/RUN.json``, outside the run directory, so that putting back an older copy
of the log with its older head, or another run's log with its head, is detected too (issue 14). ``verify_log``
names each tampered record (edited, forged, deleted, reordered, inserted, duplicated) and a log that was replaced
or rolled back.

A head and an anchor have one format: ``{"run": RUN, "seq": N, "hash": H, "sig": S}``, where ``H`` is record
``N``'s hash and ``S`` the Ed25519 signature of the canonical JSON of ``run``, ``seq`` and ``hash``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from naestro.errors import AuditError
from naestro.redact import redact_value

__all__ = ["AuditLog", "AuditProblem", "anchors_dir", "load_signing_key", "verify_log"]

GENESIS = "0" * 64
# Heads and anchors are overwritten in place (a rename costs ~2.5 ms of metadata I/O here), padded so that a
# shorter one never leaves stale bytes behind.
_MARK_SIZE = 512
_TAIL = 8192  # the writer reads the log back from its end, this much at first
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

ProblemKind = Literal["edited", "forged", "deleted", "reordered", "inserted", "duplicated", "truncated", "malformed",
                      "missing", "replaced", "rollback", "unanchored"]


def anchors_dir(home: Path) -> Path:
    """Where the anchors of every log of this NAESTRO_HOME live: outside every run directory."""
    return home / "audit" / "anchors"


def _anchor_path(anchors: Path, run_id: str) -> Path:
    if not _RUN_NAME.fullmatch(run_id):
        raise AuditError(path=str(anchors), reason=f"run id {run_id!r} cannot name an anchor file")
    return anchors / f"{run_id}.json"


def _canonical(record: dict[str, Any]) -> bytes:
    # surrogatepass: a lone surrogate (JSON allows "\ud800") hashes instead of crashing; every valid string encodes
    # exactly as before, so logs written earlier keep their hashes.
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8",
                                                                                                "surrogatepass")


def _hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    return hashlib.sha256(_canonical(body)).hexdigest()


def _line(record: dict[str, Any]) -> bytes:
    try:
        return (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode()
    except UnicodeEncodeError:  # a lone surrogate: escaped, the line stays UTF-8 and parses back to the same record
        return (json.dumps(record, sort_keys=True) + "\n").encode()


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class _Record:
    line: int
    body: dict[str, Any]
    seq: int
    hash: str  # as stored
    computed: str  # what the content hashes to

    @property
    def run(self) -> object:
        return self.body.get("run")


def _parse_record(line: int, raw: bytes) -> _Record | str:
    """One line of the log, or why it is not a record (the writer never writes such a line)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return "not UTF-8 text"
    try:
        body = json.loads(text)
        if not isinstance(body, dict):
            return f"not an audit record ({_json_type(body)}, not an object)"
        seq, stored = body.get("seq"), body.get("hash")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(stored, str):
            return "not an audit record (no integer seq and string hash)"
        return _Record(line, body, seq, stored, _hash(body))
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; RecursionError: "[[[[..." nested deep
        return "not an audit record (not JSON)"


@dataclass(frozen=True)
class _Mark:
    """A signed head or anchor. ``run`` is None only in heads written before issue 14."""

    run: str | None
    seq: int
    hash: str
    sig: str

    def signed(self) -> bytes:
        body: dict[str, Any] = {"seq": self.seq, "hash": self.hash}
        return _canonical(body if self.run is None else {"run": self.run, **body})


def _parse_mark(raw: bytes) -> _Mark | str:
    """A head or anchor, or why it is not one."""
    if not raw.strip():
        return "empty"
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        return "not JSON"
    if not isinstance(obj, dict):
        return f"{_json_type(obj)}, not an object"
    run, seq, digest, sig = obj.get("run"), obj.get("seq"), obj.get("hash"), obj.get("sig")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(digest, str) or not isinstance(sig, str) \
            or not isinstance(run, str | None):
        return "no integer seq, string hash and signature"
    return _Mark(run, seq, digest, sig)


def _rolled_back(last: int, anchored: int) -> str:
    return (f"the log ends at record {last} but the anchor in HOME says {anchored}: records were removed or the "
            f"log was replaced")


def load_signing_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The installation's audit key (created once, mode 0600); its public half sits beside it.

    Several processes may start on a fresh NAESTRO_HOME at once (workers, a CLI beside a server): the key is
    written whole to a private temporary file and then linked into place, which fails if another process got
    there first — that one's key is then used. Before, a second process either crashed on ``O_EXCL`` or read
    the first one's half-written file (a worker of the concurrency test died at start-up)."""
    private = keys_dir / "audit_ed25519.pem"
    if not private.exists():
        keys_dir.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        tmp = keys_dir / f".audit_ed25519.pem.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another process linked its key first: use that one
                os.link(tmp, private)
        finally:
            tmp.unlink(missing_ok=True)
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditError(path=str(private), reason="not an Ed25519 private key")
    public = keys_dir / "audit_ed25519.pub"
    if not public.exists():  # derived from the key in place, so concurrent writers write the same bytes
        tmp_pub = keys_dir / f".audit_ed25519.pub.{os.getpid()}.{secrets.token_hex(4)}"
        tmp_pub.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        os.replace(tmp_pub, public)
    return key


def load_public_key(keys_dir: Path) -> Ed25519PublicKey:
    path = keys_dir / "audit_ed25519.pub"
    if not path.exists():
        raise AuditError(path=str(path), reason="no audit public key; was this log written on this NAESTRO_HOME?")
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(path=str(path), reason="not an Ed25519 public key")
    return key


_Stamp = tuple[int, int, int]  # st_ino, st_size, st_mtime_ns: a file as this writer last left it


def _stamp(st: os.stat_result) -> _Stamp:
    return st.st_ino, st.st_size, st.st_mtime_ns


class AuditLog:
    """Appends signed records for one run. Arguments pass through redaction before they are written.

    ``anchors`` is the folder of anchors (``anchors_dir(NAESTRO_HOME)``): it must be outside the run directory.

    The log, its head and its anchor stay open between appends, and the log's last seq and hash are remembered
    together with how this writer left the log and the anchor (inode, size, mtime). An append re-reads the log's
    tail and re-checks the anchor only when either changed since (another writer, an edit, a rollback, a file put
    back or removed), so the common case costs no reads and no opens (issue 16: ~0.5 ms of the gate's 1 ms).
    """

    def __init__(self, path: Path, *, run_id: str, key: Ed25519PrivateKey, anchors: Path) -> None:
        self.path, self.run_id, self._key = path, run_id, key
        self.head_path = path.with_suffix(".head")
        self.anchor_path = _anchor_path(anchors, run_id)
        # Gate calls run in worker threads, and flock does not exclude threads sharing one open file.
        self._lock = threading.Lock()
        self._log: IO[bytes] | None = None
        self._head: int | None = None
        self._anchor: int | None = None
        self._last: tuple[int, str] | None = None
        self._left: tuple[_Stamp, _Stamp] | None = None  # (log, anchor) after this writer's last append

    def _refuse(self, problem: str) -> AuditError:
        return AuditError(path=str(self.path), reason=f"{problem}; `naestro audit verify {self.run_id}` lists "
                                                      "every problem of this log")

    def _read_last(self, fh: IO[bytes]) -> tuple[int, str]:
        """seq and hash of the last record, read from the file's end (other processes append too)."""
        size = fh.seek(0, os.SEEK_END)
        window = _TAIL
        while True:  # a record can be longer than the window (big tool arguments): widen it until a line starts
            start = max(0, size - window)
            fh.seek(start)
            tail = fh.read().rstrip()
            cut = tail.rfind(b"\n")
            if cut >= 0 or start == 0:
                break
            window *= 8
        if not tail:
            return 0, GENESIS
        last = _parse_record(0, tail[cut + 1:])
        if isinstance(last, str):
            raise self._refuse(f"its last line is {last}: the log was damaged or tampered with")
        return last.seq, last.hash

    def _check_anchor(self, fd: int, seq: int, digest: str) -> None:
        """Refuse to extend a log that ends before its anchor: re-anchoring it would erase the evidence."""
        raw = os.pread(fd, 2 * _MARK_SIZE, 0)
        if not raw:  # a new log, or one written before anchors existed: anchoring starts now
            return
        anchor = _parse_mark(raw)
        if isinstance(anchor, str):
            raise self._refuse(f"its anchor {self.anchor_path} is not a signed head ({anchor})")
        if anchor.run != self.run_id:
            raise self._refuse(f"its anchor {self.anchor_path} names run {anchor.run!r}")
        if seq < anchor.seq:
            raise self._refuse(_rolled_back(seq, anchor.seq))
        if seq == anchor.seq and digest != anchor.hash:
            raise self._refuse(f"record {seq} is not the one its anchor in HOME names: the log was replaced")
        # seq > anchor.seq: a writer died between its record and its anchor (or records were added, which
        # signatures and run ids reveal); the records stay in the log for verify_log, so go on.

    def _mark(self, seq: int, digest: str) -> bytes:
        body = {"run": self.run_id, "seq": seq, "hash": digest}
        mark = {**body, "sig": base64.b64encode(self._key.sign(_canonical(body))).decode()}
        return json.dumps(mark).ljust(_MARK_SIZE).encode()

    def _open_log(self) -> IO[bytes]:
        """The log, open for appending and locked; reopened when its path now names another file (or none)."""
        while True:
            if self._log is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._log = self.path.open("a+b", buffering=0)
            fcntl.flock(self._log, fcntl.LOCK_EX)
            try:
                if os.stat(self.path).st_ino == os.fstat(self._log.fileno()).st_ino:
                    return self._log
            except FileNotFoundError:
                pass
            self._log.close()  # replaced or removed while we held it open: append to what the path names now
            self._log, self._left = None, None

    def _fd(self, current: int | None, path: Path) -> int:
        """``path`` open for writing in place: the same descriptor while the path still names its file."""
        if current is not None:
            try:
                if os.stat(path).st_ino == os.fstat(current).st_ino:
                    return current
            except FileNotFoundError:
                pass
            os.close(current)
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def append(self, kind: str, **data: Any) -> dict[str, Any]:
        """Sign and append one record, then its head and anchor. An exclusive lock on the log serialises writers
        (the run, ``naestro pause``...) and keeps the three consistent for ``verify_log``, which takes it shared."""
        with self._lock:
            try:
                fh = self._open_log()
                try:
                    return self._append(fh, kind, data)
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
            except OSError as exc:
                self.close()
                raise AuditError(path=str(self.path), reason=exc.strerror or str(exc)) from exc

    def _append(self, fh: IO[bytes], kind: str, data: dict[str, Any]) -> dict[str, Any]:
        self._anchor = anchor = self._fd(self._anchor, self.anchor_path)
        now = (_stamp(os.fstat(fh.fileno())), _stamp(os.fstat(anchor)))
        if self._last is not None and now == self._left:
            seq, prev = self._last  # nobody touched the log or its anchor since our last append
        else:
            seq, prev = self._read_last(fh)
            self._check_anchor(anchor, seq, prev)
        record: dict[str, Any] = {"seq": seq + 1, "ts": round(time.time(), 6), "run": self.run_id,
                                  "kind": kind, "data": redact_value(data), "prev": prev}
        record["hash"] = _hash(record)
        record["sig"] = base64.b64encode(self._key.sign(bytes.fromhex(record["hash"]))).decode()
        self._last = None  # until all three are written: a failure below makes the next append re-read
        fh.write(_line(record))  # unbuffered, O_APPEND: in the OS after this, survives SIGKILL (no fsync: ~5 ms)
        mark = self._mark(record["seq"], record["hash"])
        self._head = self._fd(self._head, self.head_path)
        os.pwrite(self._head, mark, 0)
        os.pwrite(anchor, mark, 0)
        self._last = record["seq"], record["hash"]
        self._left = _stamp(os.fstat(fh.fileno())), _stamp(os.fstat(anchor))
        return record

    def close(self) -> None:
        """Close the open files (also done when the log is garbage-collected)."""
        if self._log is not None:
            self._log.close()
        for fd in (self._head, self._anchor):
            if fd is not None:
                os.close(fd)
        self._log = self._head = self._anchor = None
        self._last = self._left = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


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


def _check_records(records: list[_Record], pub: Ed25519PublicKey, run_id: str,
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
    head = _parse_mark(raw)
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
    anchor = _parse_mark(raw)
    if isinstance(anchor, str):
        problems.append(AuditProblem(0, None, "malformed", f"not a signed anchor ({anchor})", file))
    elif not _sig_ok(pub, anchor.sig, anchor.signed()):
        problems.append(AuditProblem(0, None, "forged", "anchor signature is not ours", file))
    elif anchor.run != run_id:
        problems.append(AuditProblem(0, None, "replaced", f"anchor of run {anchor.run!r}, not {run_id!r}", file))
    elif anchor.seq > last:
        problems.append(AuditProblem(0, anchor.seq, "rollback", f"{_rolled_back(last, anchor.seq)} (anchor {path})"))
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
    anchor_path, head_path = _anchor_path(anchors, run_id), path.with_suffix(".head")
    try:
        data, head, anchor = _snapshot(path, head_path, anchor_path)
    except OSError as exc:
        raise AuditError(path=str(exc.filename or path), reason=exc.strerror or str(exc)) from exc
    problems: list[AuditProblem] = []
    records: list[_Record] = []
    if data is None:
        problems.append(AuditProblem(0, None, "missing", f"{path} does not exist"))
    for lineno, raw in enumerate((data or b"").split(b"\n"), 1):  # only \n ends a record: U+2028 may be inside
        if raw.strip():
            rec = _parse_record(lineno, raw)
            if isinstance(rec, str):
                problems.append(AuditProblem(lineno, None, "malformed", rec))
            else:
                records.append(rec)
    seen = _check_records(records, pub, run_id, problems)
    if data is not None:
        _check_head(head, head_path, pub, run_id, seen, problems)
    _check_anchor(anchor, anchor_path, pub, run_id, seen, records=len(records), problems=problems)
    return problems

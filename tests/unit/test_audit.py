"""The signed, hash-chained audit log: every tampering kind is detected and named; secrets never land in it."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from naestro.cli import app
from naestro.errors import AuditError
from naestro.redact import labels, redact
from policies.audit import AuditLog, anchors_dir, load_public_key, load_signing_key, verify_log
from tests.conftest import write_run


def write_log(tmp: Path, n: int = 5) -> tuple[Path, Path]:
    keys = tmp / "keys"
    log = AuditLog(tmp / "run" / "audit.jsonl", run_id="r", key=load_signing_key(keys), anchors=tmp / "anchors")
    for i in range(n):
        log.append("decision", action=f"fs.read#{i}", verdict="allow")
    return log.path, keys


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def rewrite(path: Path, new: list[str]) -> None:
    path.write_text("".join(f"{ln}\n" for ln in new))


def rehash(record: dict[str, object]) -> dict[str, object]:
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    record["hash"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return record


def edit(ls: list[str]) -> list[str]:
    rec = json.loads(ls[2])
    rec["data"]["verdict"] = "deny"
    return [*ls[:2], json.dumps(rec), *ls[3:]]


def forge(ls: list[str]) -> list[str]:
    rec = rehash({**json.loads(ls[2]), "data": {"action": "exec.run", "verdict": "allow"}})
    rec["sig"] = base64.b64encode(Ed25519PrivateKey.generate().sign(bytes.fromhex(str(rec["hash"])))).decode()
    return [*ls[:2], json.dumps(rec), *ls[3:]]


TAMPERING: dict[str, tuple[Callable[[list[str]], list[str]], str]] = {
    "edited": (edit, "line 3 (seq 3): edited"),
    "forged": (forge, "line 3 (seq 3): forged"),
    "deleted": (lambda ls: [*ls[:2], *ls[3:]], "(seq 4): deleted: record(s) 3 missing"),
    "reordered": (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], "reordered"),
    # a genuine record signed by the same key, spliced in from another run's log
    "inserted": (lambda ls: [*ls[:3], OTHER_RUN[0], *ls[3:]], "line 4 (seq 3): inserted"),
    "duplicated": (lambda ls: [*ls[:3], ls[2], *ls[3:]], "line 4 (seq 3): duplicated"),
    "truncated": (lambda ls: ls[:-1], "deleted: the log ends at seq 4 but the signed head says 5"),
}


OTHER_RUN: list[str] = []


@pytest.fixture(autouse=True)
def other_run(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "other" / "audit.jsonl", run_id="r2", key=load_signing_key(tmp_path / "keys"),
                   anchors=tmp_path / "anchors")
    for i in range(3):
        log.append("decision", action=f"exec.run#{i}", verdict="allow")
    OTHER_RUN[:] = lines(log.path)[2:]


def test_intact_log_verifies(tmp_path: Path) -> None:
    path, keys = write_log(tmp_path)
    assert verify_log(path, load_public_key(keys), run_id="r", anchors=tmp_path / "anchors") == []
    assert [json.loads(ln)["seq"] for ln in lines(path)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_each_tampering_is_named(kind: str, tmp_path: Path) -> None:
    path, keys = write_log(tmp_path)
    change, expected = TAMPERING[kind]
    rewrite(path, change(lines(path)))
    problems = [str(p) for p in verify_log(path, load_public_key(keys), run_id="r", anchors=tmp_path / "anchors")]
    assert any(expected in p for p in problems), problems


def test_a_second_writer_continues_the_chain(tmp_path: Path) -> None:
    path, keys = write_log(tmp_path, 2)
    # e.g. `naestro pause` in another process
    other = AuditLog(path, run_id="r", key=load_signing_key(keys), anchors=tmp_path / "anchors")
    other.append("switch", action="pause")
    AuditLog(path, run_id="r", key=load_signing_key(keys), anchors=tmp_path / "anchors").append("decision",
                                                                                                verdict="allow")
    assert verify_log(path, load_public_key(keys), run_id="r", anchors=tmp_path / "anchors") == []


def test_a_long_lived_writer_interleaved_with_another_keeps_one_chain(tmp_path: Path) -> None:
    """The writer keeps its files open and remembers its last record: another writer's records in between are
    read back, not overwritten or forked (issue 16)."""
    keys, anchors = tmp_path / "keys", tmp_path / "anchors"
    run = AuditLog(tmp_path / "run" / "audit.jsonl", run_id="r", key=load_signing_key(keys), anchors=anchors)
    other = AuditLog(run.path, run_id="r", key=load_signing_key(keys), anchors=anchors)
    for i in range(3):
        run.append("decision", n=i)
        other.append("switch", n=i)
        run.append("decision", n=i, again=True)
    assert [json.loads(x)["seq"] for x in lines(run.path)] == list(range(1, 10))
    assert verify_log(run.path, load_public_key(keys), run_id="r", anchors=anchors) == []


@pytest.mark.parametrize("how", ["in place", "put back"])
def test_a_long_lived_writer_refuses_to_extend_a_rolled_back_log(how: str, tmp_path: Path) -> None:
    """An older copy of the log put back under an open writer (same file rewritten, or another file renamed over
    it) is noticed at the next append, as a fresh writer would: refused, and the rollback stays visible."""
    keys, anchors = tmp_path / "keys", tmp_path / "anchors"
    log = AuditLog(tmp_path / "run" / "audit.jsonl", run_id="r", key=load_signing_key(keys), anchors=anchors)
    log.append("decision", n=0)
    older = log.path.read_bytes()
    log.append("decision", n=1)
    log.append("decision", n=2)
    if how == "in place":
        log.path.write_bytes(older)
    else:
        copy = log.path.with_name("older")
        copy.write_bytes(older)
        copy.replace(log.path)
    with pytest.raises(AuditError, match="anchor in HOME says 3"):
        log.append("decision", n=3)
    assert log.path.read_bytes() == older
    problems = verify_log(log.path, load_public_key(keys), run_id="r", anchors=anchors)
    assert "rollback" in {p.kind for p in problems}


def test_a_long_lived_writer_recreates_a_removed_head(tmp_path: Path) -> None:
    """A head deleted under an open writer is written again at the next append (the writer keeps no stale one)."""
    keys, anchors = tmp_path / "keys", tmp_path / "anchors"
    log = AuditLog(tmp_path / "run" / "audit.jsonl", run_id="r", key=load_signing_key(keys), anchors=anchors)
    log.append("decision", n=0)
    log.head_path.unlink()
    log.append("decision", n=1)
    assert verify_log(log.path, load_public_key(keys), run_id="r", anchors=anchors) == []


def test_secrets_in_arguments_are_redacted_before_logging(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl", run_id="r", key=load_signing_key(tmp_path / "keys"),
                   anchors=tmp_path / "anchors")
    secret = "sk-proj-" + "A1b2C3d4" * 4
    log.append("decision", arguments={"command": f"curl -H 'Authorization: Bearer {secret}' x",
                                      "password": "password=hunter2hunter2"})
    text = log.path.read_text()
    assert secret not in text and "hunter2hunter2" not in text and "[REDACTED:secret:" in text


def test_cli_audit_verify_flags_tampering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("NAESTRO_HOME", str(home))
    run_dir = write_run(home, "r1", tmp_path)
    log = AuditLog(run_dir / "audit.jsonl", run_id="r1", key=load_signing_key(home / "keys"), anchors=anchors_dir(home))
    for i in range(3):
        log.append("decision", n=i)
    assert CliRunner().invoke(app, ["audit", "verify", "r1"]).exit_code == 0
    rewrite(log.path, edit([*lines(log.path), lines(log.path)[-1]])[:3])
    result = CliRunner().invoke(app, ["audit", "verify", "r1", "--json"])
    assert result.exit_code == 1
    assert {p["kind"] for p in json.loads(result.stdout)["problems"]} >= {"edited"}


@settings(max_examples=60, deadline=None)
@given(prefix=st.text(max_size=40), suffix=st.text(max_size=40),
       key=st.from_regex(r"sk-[A-Za-z0-9]{24,40}", fullmatch=True))
def test_redaction_never_leaks_an_api_key(prefix: str, suffix: str, key: str) -> None:
    text = f"{prefix} {key} {suffix}"
    assert key not in redact(text)
    assert "secret" in labels({"arg": text})


@pytest.mark.parametrize(("text", "label"), [
    ("card 4111 1111 1111 1111 expires", "pii"),
    ("mail jane.doe@example.com today", "pii"),
    ("AKIAIOSFODNN7EXAMPLE", "secret"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----", "secret"),
])
def test_detectors(text: str, label: str) -> None:
    assert label in labels(text)


def test_card_like_numbers_need_a_valid_checksum() -> None:
    assert labels("order 4111 1111 1111 1112") == set()


def test_processes_starting_on_a_fresh_home_agree_on_one_signing_key(tmp_path: Path) -> None:
    """Three workers starting at once on a fresh NAESTRO_HOME: one crashed on O_EXCL or read the other's
    half-written key (CI, test_concurrent_runs). Now every caller gets the one key that was linked into place."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from cryptography.hazmat.primitives import serialization

    from policies.audit import load_public_key, load_signing_key

    for round_ in range(20):
        keys = tmp_path / f"keys{round_}"
        start = threading.Barrier(8)

        def load(keys: Path = keys, start: threading.Barrier = start) -> bytes:
            start.wait()
            return load_signing_key(keys).public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw)

        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda _: load(), range(8)))
        assert len(set(got)) == 1
        assert load_public_key(keys).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == got[0]
        assert sorted(p.name for p in keys.iterdir()) == ["audit_ed25519.pem", "audit_ed25519.pub"]

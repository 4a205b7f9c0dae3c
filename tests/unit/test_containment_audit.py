"""Issue 14: the audit log of a run cannot be swapped for another run's or rolled back to an older signed head
without `naestro audit verify` saying so, and garbage in its files is reported, never a traceback.

Everything goes through the real CLI: records are appended by `naestro pause` (the same writer a run uses, with
the installation's real Ed25519 key), and `naestro audit verify` checks them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from naestro.cli import app
from naestro.errors import AuditError
from naestro.settings import Settings
from policies.audit import AuditLog, anchors_dir, load_public_key, load_signing_key, verify_log
from policies.switches import KillSwitches
from tests.conftest import write_run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("NAESTRO_HOME", str(home))
    return home


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def append(run_id: str, reason: str = "") -> None:
    result = cli("pause", run_id, "--reason", reason)
    assert result.exit_code == 0, result.output


def run_with_records(home: Path, run_id: str, n: int) -> Path:
    run_dir = write_run(home, run_id, home.parent)
    for i in range(n):
        append(run_id, f"note {i}")
    return run_dir


def verify(run_id: str) -> Result:
    """`naestro audit verify RUN`, asserting that it ended by its own exit code, not by an exception."""
    result = cli("audit", "verify", run_id)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def problems(run_id: str) -> list[dict[str, object]]:
    result = cli("audit", "verify", run_id, "--json")
    assert result.exit_code == 1, result.output
    found: list[dict[str, object]] = json.loads(result.stdout)["problems"]
    return found


def save(run_dir: Path) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in ("audit.jsonl", "audit.head")}


def restore(run_dir: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (run_dir / name).write_bytes(data)


def test_an_untouched_log_verifies(home: Path) -> None:
    run_with_records(home, "r1", 3)
    result = verify("r1")
    assert result.exit_code == 0, result.output
    assert "3 records, chain and signatures intact" in result.output


def test_another_runs_log_swapped_in_is_tampered(home: Path) -> None:
    r1 = run_with_records(home, "r1", 3)
    r2 = run_with_records(home, "r2", 3)  # same key, same length: every hash, signature and the head are genuine
    for name in ("audit.jsonl", "audit.head"):
        shutil.copy(r2 / name, r1 / name)
    result = verify("r1")
    assert result.exit_code == 1, result.output
    assert "'r2'" in result.output and "another run" in result.output
    assert verify("r2").exit_code == 0


def test_another_runs_head_alone_is_tampered(home: Path) -> None:
    r1 = run_with_records(home, "r1", 3)
    r2 = run_with_records(home, "r2", 3)
    shutil.copy(r2 / "audit.head", r1 / "audit.head")
    assert {p["kind"] for p in problems("r1")} == {"replaced"}


def test_truncation_to_an_older_signed_head_is_a_rollback(home: Path) -> None:
    run_dir = run_with_records(home, "r1", 2)
    at_t = save(run_dir)
    append("r1", "later 1")
    append("r1", "later 2")
    restore(run_dir, at_t)  # an older log with its own, genuinely signed head
    result = verify("r1")
    assert result.exit_code == 1, result.output
    assert "the log ends at record 2 but the anchor in HOME says 4" in result.output
    assert [p["kind"] for p in problems("r1")] == ["rollback"]


def test_appending_after_a_rollback_does_not_hide_it(home: Path) -> None:
    """The writer must not re-anchor a rolled-back log: the next append is refused and the rollback stays visible."""
    run_dir = run_with_records(home, "r1", 2)
    at_t = save(run_dir)
    append("r1", "later")
    restore(run_dir, at_t)
    cli("pause", "r1", "--reason", "after the rollback")
    assert save(run_dir) == at_t  # nothing was appended to the rolled-back log
    assert verify("r1").exit_code == 1
    assert "rollback" in {p["kind"] for p in problems("r1")}


def test_a_log_emptied_to_nothing_is_a_rollback(home: Path) -> None:
    run_dir = run_with_records(home, "r1", 2)
    (run_dir / "audit.jsonl").unlink()
    (run_dir / "audit.head").unlink()
    result = verify("r1")
    assert result.exit_code == 1 and "anchor in HOME says 2" in result.output


def test_a_log_without_anchor_is_reported_not_a_crash(home: Path) -> None:
    run_with_records(home, "r1", 2)
    for anchor in home.rglob("r1.json"):
        anchor.unlink()
    result = verify("r1")
    assert result.exit_code == 1
    assert "no anchor" in result.output and "before" in result.output


def test_a_non_utf8_log_is_reported_not_a_traceback(home: Path) -> None:
    run_dir = run_with_records(home, "r1", 2)
    with (run_dir / "audit.jsonl").open("ab") as fh:
        fh.write(b'{"seq": 3, "kind": "\xff\xfe\xfa"}\n')
    result = verify("r1")
    assert result.exit_code == 1, result.output
    assert "line 3: malformed: not UTF-8" in result.output


@pytest.mark.parametrize("garbage", [bytes(range(256)) * 2, b"not json at all", b"[1, 2, 3]", b"{}", b"",
                                     b'{"seq": "x", "hash": 1, "sig": []}'])
def test_a_garbage_head_is_reported_not_a_traceback(garbage: bytes, home: Path) -> None:
    run_dir = run_with_records(home, "r1", 2)
    (run_dir / "audit.head").write_bytes(garbage)
    result = verify("r1")
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if "audit.head" in ln]
    assert len(lines) == 1 and lines[0].startswith(str(run_dir / "audit.head") + ": malformed: "), result.output


@pytest.mark.parametrize("line", ["{not json", "[1, 2]", '"a string"', "42", "null", '{"seq": 3}',
                                  '{"seq": true, "hash": "x"}', "[" * 100_000])
def test_a_record_that_is_not_an_audit_record_is_reported(line: str, home: Path) -> None:
    run_dir = run_with_records(home, "r1", 2)
    with (run_dir / "audit.jsonl").open("a") as fh:
        fh.write(line + "\n")
    result = verify("r1")
    assert result.exit_code == 1, result.output
    assert "line 3" in result.output and "malformed: not an audit record" in result.output


def test_a_garbage_last_line_refuses_the_next_append_with_an_audit_error(home: Path) -> None:
    """Fail closed and say why (the gate turns AuditError into "action not taken"), not a JSONDecodeError."""
    run_dir = run_with_records(home, "r1", 2)
    with (run_dir / "audit.jsonl").open("ab") as fh:
        fh.write(b"\xff garbage\n")
    log = AuditLog(run_dir / "audit.jsonl", run_id="r1", key=load_signing_key(home / "keys"),
                   anchors=anchors_dir(home))
    with pytest.raises(AuditError, match="naestro audit verify"):
        log.append("switch", action="pause")


def test_pause_on_a_damaged_log_still_pauses_and_says_so_in_one_line(home: Path) -> None:
    """`naestro pause` on a tampered log was an AuditError traceback after the switch was set; the pause must
    hold (a damaged log is no reason to let a run go on) and the user is told it could not be audited."""
    run_dir = run_with_records(home, "r1", 2)
    with (run_dir / "audit.jsonl").open("ab") as fh:
        fh.write(b"\xff garbage\n")
    result = cli("pause", "r1")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), repr(result.exception)
    message = result.stderr.strip()
    assert "\n" not in message and "run r1 is paused" in message and "could not be audited" in message
    assert "naestro audit verify" in message
    assert KillSwitches(Settings(home=home).control_db).paused("r1") is not None


def test_a_record_larger_than_the_tail_window_does_not_break_the_next_append(home: Path) -> None:
    run_with_records(home, "r1", 1)
    append("r1", "word " * 4000)  # ~20 KB: longer than the 8 KB the writer first reads back
    append("r1", "after")
    assert verify("r1").exit_code == 0


def test_a_line_separator_inside_a_record_is_not_a_line_break(home: Path) -> None:
    run_with_records(home, "r1", 1)
    append("r1", "one\u2028two\u2029three\x85four")  # written as is (ensure_ascii=False); only \n ends a record
    append("r1", "after")
    result = verify("r1")
    assert result.exit_code == 0, result.output


def test_a_lone_surrogate_in_a_record_is_hashed_not_a_crash(home: Path) -> None:
    """JSON may escape a lone surrogate ("\\ud800"): a forged line carrying one is reported, and the writer logs
    arguments carrying one (a model's tool call can) instead of failing the action with UnicodeEncodeError."""
    run_dir = run_with_records(home, "r1", 2)
    with (run_dir / "audit.jsonl").open("a") as fh:
        fh.write('{"seq": 3, "run": "r1", "hash": "00", "data": "\\ud800"}\n')
    result = verify("r1")
    assert result.exit_code == 1 and "line 3 (seq 3): edited" in result.output, result.output

    log = AuditLog(home / "runs" / "r2" / "audit.jsonl", run_id="r2", key=load_signing_key(home / "keys"),
                   anchors=anchors_dir(home))
    log.append("decision", arguments={"text": "a\ud800b"})
    assert verify_log(log.path, load_public_key(home / "keys"), run_id="r2", anchors=anchors_dir(home)) == []

"""Event log and effect journal appends: one open handle, no mkdir per record, each record readable at once
(issue 16); and redaction's cheap pre-filter never hides a finding presidio would make."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from naestro import redact
from naestro.events import EventLog, read_events
from naestro.journal import Journal


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_events_keep_one_handle_and_are_readable_after_each_emit(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "run" / "events.jsonl", run_id="r1")
    log.emit("first", n=0)
    before = _open_fds()
    for i in range(1, 20):
        log.emit("step", n=i)
        assert read_events(log.path)[-1]["n"] == i  # in the file at once, no close or flush needed
    with mock.patch.object(Path, "mkdir") as mkdir, mock.patch.object(Path, "open") as opened, \
            mock.patch("os.open") as os_open:
        for i in range(20, 50):
            log.emit("step", n=i)
    assert mkdir.call_count == opened.call_count == os_open.call_count == 0
    assert _open_fds() == before
    assert [e["n"] for e in read_events(log.path)] == list(range(50))
    log.close()
    assert _open_fds() == before - 1
    log.emit("after close", n=50)  # a straggler reopens rather than losing the record
    assert read_events(log.path)[-1]["event"] == "after close"
    log.close()


def test_journal_records_survive_sigkill_without_close(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    child = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from naestro.journal import Journal
        j = Journal(Path({str(path)!r}))
        for i in range(20):
            j.done(f"k{{i}}", "tool", "req", {{"i": i}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", child], cwd=Path(__file__).resolve().parents[2], check=False)
    assert done.returncode == -9
    again = Journal(path)
    assert [again.lookup(f"k{i}", "tool", "req") is not None for i in range(20)] == [True] * 20


def test_two_logs_on_one_file_never_interleave_within_a_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    a, b = EventLog(path, run_id="a"), EventLog(path, run_id="b")
    for i in range(30):
        a.emit("x", text="a" * 5000, i=i)
        b.emit("y", text="b" * 5000, i=i)
    events = read_events(path)
    assert len(events) == 60 and {e["run"] for e in events} == {"a", "b"}
    a.close()
    b.close()


_SAMPLES = ["IBAN GB82 WEST 1234 5698 7654 32 to pay", "wallet 1BoatSLRHtKNngkdXEeobR76b53LETtpyT ok",
            "NHS number 401 023 2137", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"]


@pytest.mark.skipif(not redact.presidio_available(), reason="needs the naestro[redact] extra")
@pytest.mark.parametrize("text", _SAMPLES)
def test_prefilter_keeps_presidio_finds(text: str) -> None:
    assert any(f.kind in {"iban_code", "crypto", "uk_nhs"} for f in redact.find(text, depth="data")), text


@pytest.mark.skipif(not redact.presidio_available(), reason="needs the naestro[redact] extra")
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789 -ABCDEFGHKLMNPQRSTUVWXYZabcdefghkmnpqrstuvwxyz13bc"),
               max_size=60))
def test_prefilter_is_sound(text: str) -> None:
    recognizers = redact._recognizers()
    assert recognizers is not None
    found = [r for rec in recognizers for r in rec.analyze(text, list(redact._DATA_ENTITIES), None)  # type: ignore[arg-type]
             if r.score >= redact._MIN_SCORE]
    if found:
        assert redact._DATA_HINT.search(text), (text, found)

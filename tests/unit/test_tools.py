"""Naestro's MCP servers over real stdio transport: confinement, sandbox, errors as feedback."""

from __future__ import annotations

from pathlib import Path

from naestro.toolbus import McpToolBus, builtin_servers


async def test_fs_and_exec_over_stdio(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    async with McpToolBus(builtin_servers(ws)) as bus:
        names = {s.name for s in bus.specs()}
        assert {"fs.read", "fs.write", "fs.list", "exec.run"} <= names
        w = await bus.call("fs.write", {"path": "a/b.txt", "content": "hello"})
        assert w.ok and w.structured == {"path": "a/b.txt", "bytes": 5, "unchanged": False}
        r = await bus.call("fs.read", {"path": "a/b.txt"})
        assert r.ok and r.text == "hello"
        listing = await bus.call("fs.list", {})
        assert listing.structured == {"path": ".", "entries": ["a/b.txt"]}
        escape = await bus.call("fs.read", {"path": "../../etc/passwd"})
        assert not escape.ok and "outside the workspace" in escape.text
        unknown = await bus.call("fs.delete", {"path": "x"})
        assert not unknown.ok and "unknown tool" in unknown.text
        bad = await bus.call("fs.write", {"path": 3})
        assert not bad.ok and "validation error" in bad.text
        ran = await bus.call("exec.run", {"command": "cat a/b.txt && echo made > out.txt"})
        assert ran.ok and isinstance(ran.structured, dict) and ran.structured["exit_code"] == 0
        assert (ws / "out.txt").read_text() == "made\n"


async def test_exec_sandbox_limits(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    outside = tmp_path / "outside.txt"
    async with McpToolBus(builtin_servers(ws)) as bus:
        # /tmp inside the sandbox is private: the write lands there, never in the real file
        await bus.call("exec.run", {"command": f"echo x > {outside}"})
        assert not outside.exists()
        res = await bus.call("exec.run", {"command": "echo x > /var/naestro-escape"})
        assert isinstance(res.structured, dict) and res.structured["exit_code"] != 0  # read-only system
        assert not Path("/var/naestro-escape").exists()
        net = await bus.call("exec.run", {"command": "python3 -c \"import socket; "
                                          "socket.create_connection(('1.1.1.1', 53), timeout=2)\""})
        assert isinstance(net.structured, dict) and net.structured["exit_code"] != 0
        slow = await bus.call("exec.run", {"command": "sleep 5", "timeout_s": 0.5})
        assert isinstance(slow.structured, dict) and slow.structured["timed_out"] is True
        pids = await bus.call("exec.run", {"command": "ls /proc | grep -c '^[0-9]'"})
        assert isinstance(pids.structured, dict) and int(pids.structured["stdout"]) < 10  # own PID namespace

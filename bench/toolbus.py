"""MCP tool-bus overhead: the same tool called directly in Python, over stdio and over streamable HTTP; and what
the sandbox costs per command.

1. Round trip of ``fs.read`` (a 1 kB file) and ``exec.run`` (``true``): the tool's own function awaited
   in-process (the anchor) vs ``McpToolBus.call`` over a persistent stdio session vs a streamable-HTTP session.
2. Command start: ``true`` as a plain subprocess (the anchor) vs inside bwrap alone vs the full sandbox
   (pids cgroup + bwrap + prlimit, as ``exec.run`` runs it).
3. Server start: opening a bus session (spawn, initialize, tools/list) for one server and for all six.

Usage: python -m bench.mcp [--n 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from mcp_servers.sandbox import Limits, run_sandboxed, sandbox_argv
from mcp_servers.workspace import BUILTIN_SERVERS, ServerOptions, build_server
from naestro.toolbus import McpToolBus, builtin_servers
from tests.mcp_http import http_server


async def timed(fn: Callable[[], Awaitable[object]], n: int) -> list[float]:
    await fn()  # warm-up
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(label: str, ms: list[float], anchor: list[float] | None = None) -> str:
    p50, p95 = statistics.median(ms), statistics.quantiles(ms, n=20)[18] if len(ms) >= 20 else max(ms)
    ratio = f"  {p50 / statistics.median(anchor):7.1f}x" if anchor else ""
    return f"  {label:<38} p50 {p50:8.3f} ms  p95 {p95:8.3f} ms{ratio}"


async def round_trips(ws: Path, n: int) -> None:
    (ws / "one_kb.txt").write_text("x" * 1024)
    options = ServerOptions(workspace=ws)
    calls = {"fs.read": {"path": "one_kb.txt"}, "exec.run": {"command": ["true"]}}
    for tool, args in calls.items():
        server, name = tool.split(".")
        fn = build_server(server, options)._tool_manager.get_tool(name)
        assert fn is not None
        direct = await timed(lambda fn=fn, args=args: fn.fn(**args), n)
        async with McpToolBus(builtin_servers(ws, names=[server])) as bus:
            stdio = await timed(lambda bus=bus, tool=tool, args=args: bus.call(tool, args), n)
        with http_server(server, options) as url:
            async with McpToolBus({server: {"transport": "streamable_http", "url": url}}) as bus:
                http = await timed(lambda bus=bus, tool=tool, args=args: bus.call(tool, args), n)
        print(f"{tool} round trip (n={n}, ratio to the direct call):")
        print(row("direct Python call", direct))
        print(row("MCP over stdio", stdio, direct))
        print(row("MCP over streamable HTTP", http, direct))


async def command_start(ws: Path, n: int) -> None:
    async def plain() -> None:
        proc = await asyncio.create_subprocess_exec("true")
        await proc.wait()

    bwrap_only = [a for a in sandbox_argv(ws, ["true"])]
    cut = bwrap_only.index("--") + 1  # drop prlimit: bwrap alone
    bwrap_argv = [*bwrap_only[:cut], "true"]

    async def bwrap() -> None:
        proc = await asyncio.create_subprocess_exec(*bwrap_argv)
        await proc.wait()

    async def full() -> None:
        await run_sandboxed(ws, ["true"], Limits())

    anchor = await timed(plain, n)
    print(f"command start, `true` (n={n}, ratio to a plain subprocess):")
    print(row("plain subprocess", anchor))
    print(row("bwrap only", await timed(bwrap, n), anchor))
    print(row("full sandbox (cgroup+bwrap+prlimit)", await timed(full, n), anchor))


async def server_start(ws: Path, n: int) -> None:
    async def one() -> None:
        async with McpToolBus(builtin_servers(ws, names=["fs"])):
            pass

    async def all_six() -> None:
        async with McpToolBus(builtin_servers(ws)):
            pass

    print(f"server start: spawn + initialize + tools/list (n={n}):")
    print(row("fs alone", await timed(one, n)))
    print(row(f"all {len(BUILTIN_SERVERS)} builtin servers, concurrently", await timed(all_six, n)))


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        await round_trips(ws, n)
        await command_start(ws, max(20, n // 4))
        await server_start(ws, max(3, n // 40))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    asyncio.run(main(parser.parse_args().n))

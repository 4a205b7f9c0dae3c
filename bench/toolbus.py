"""MCP tool-bus overhead: the same tool called directly in Python, over stdio, streamable HTTP and the shared
pool; what the sandbox costs per command; how long servers take to start; what N concurrent runs cost.

1. Round trip of ``fs.read`` (a 1 kB file) and ``exec.run`` (``true``): the tool's own function awaited
   in-process (the anchor) vs ``McpToolBus.call`` over a persistent stdio session, a streamable-HTTP session to
   a standalone server, and a session to the shared pool (naestro/mcppool.py, what runs use).
2. Command start: ``true`` as a plain subprocess (the anchor) vs inside bwrap alone vs the full sandbox
   (pids cgroup + bwrap + prlimit, as ``exec.run`` runs it).
3. Server start, per server: ``python -m mcp_servers.X --help`` (imports only; anchor ``python -c pass``),
   a stdio process's spawn + initialize + tools/list, a pooled process's spawn until it listens, and a run's
   session on a warm pool (the server built for the run's options + initialize + tools/list).
4. N concurrent runs' tool buses (all six builtin servers each), stdio (a process set per run) vs the pool:
   processes and resident memory of this process and its children, and the time to open them all.

Usage: python -m bench.toolbus [--n 200] [--runs 10] [--only calls sandbox start runs]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

from bench.procstat import cpu_s, tree_rss
from mcp_servers.sandbox import Limits, run_sandboxed, sandbox_argv
from mcp_servers.workspace import BUILTIN_SERVERS, ServerOptions, build_server
from naestro.mcppool import McpServerPool
from naestro.toolbus import McpToolBus, builtin_servers
from tests.mcp_http import http_server


async def timed(fn: Callable[[], Awaitable[object]], n: int, *, warm: bool = True) -> list[float]:
    if warm:
        await fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(label: str, ms: list[float], anchor: list[float] | None = None) -> str:
    p50, p95 = statistics.median(ms), statistics.quantiles(ms, n=20)[18] if len(ms) >= 20 else max(ms)
    ratio = f"  {p50 / statistics.median(anchor):7.1f}x" if anchor else ""
    return f"  {label:<40} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms{ratio}" if p50 >= 100 else \
        f"  {label:<40} p50 {p50:8.3f} ms  p95 {p95:8.3f} ms{ratio}"


async def round_trips(ws: Path, n: int, pool: McpServerPool) -> None:
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
        async with McpToolBus(await pool.connections(options, names=[server])) as bus:
            pooled = await timed(lambda bus=bus, tool=tool, args=args: bus.call(tool, args), n)
        print(f"{tool} round trip (n={n}, ratio to the direct call):")
        print(row("direct Python call", direct))
        print(row("MCP over stdio", stdio, direct))
        print(row("MCP over streamable HTTP (standalone)", http, direct))
        print(row("MCP to the shared pool (what runs use)", pooled, direct))


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


async def process(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, *argv, stdout=subprocess.DEVNULL)
    await proc.wait()


def children_cpu_ms() -> float:
    """CPU of this process's children that have ended and been waited for (a server's whole life)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


async def cpu_timed(fn: Callable[[], Awaitable[object]], n: int, cpu: Callable[[], float]) -> tuple[list[float], float]:
    """Wall times, and the median CPU per call that ``cpu`` (a counter) attributes to it: on a loaded machine
    the CPU a server spends to start says what a quiet machine's wall time would be."""
    await fn()
    walls, cpus = [], []
    for _ in range(n):
        c, t = cpu(), time.perf_counter()
        await fn()
        walls.append((time.perf_counter() - t) * 1000)
        cpus.append(cpu() - c)
    return walls, statistics.median(cpus)


def start_row(label: str, measured: tuple[list[float], float], anchor: tuple[list[float], float]) -> str:
    walls, cpu = measured
    return f"{row(label, walls, anchor[0])}  cpu {cpu:7.1f} ms ({cpu / anchor[1]:4.1f}x)"


async def server_start(ws: Path, n: int) -> None:
    print(f"server start, per server (n={n}; wall, and the server process's CPU; ratios to `python -c pass`):")
    anchor = await cpu_timed(lambda: process("-c", "pass"), n, children_cpu_ms)
    print(start_row("python -c pass", anchor, anchor))
    for name in BUILTIN_SERVERS:
        await start_rows(ws, name, n, anchor)


async def start_rows(ws: Path, name: str, n: int, anchor: tuple[list[float], float]) -> None:
    async def helped() -> None:
        await process("-m", f"mcp_servers.{name}", "--help")

    async def stdio() -> None:
        async with McpToolBus(builtin_servers(ws, names=[name])):
            pass

    async def pooled_process() -> None:
        pool = McpServerPool()
        try:
            await pool.connections(ServerOptions(workspace=ws), names=[name])
        finally:
            await pool.aclose()

    warm_pool = McpServerPool()
    await warm_pool.connections(ServerOptions(workspace=ws), names=[name])
    runs = iter(range(10**9))

    async def pooled_session() -> None:
        # a new workspace each time: the pooled process builds the server for a run it has not seen
        run_ws = ws / f"{name}-run{next(runs)}"
        run_ws.mkdir()
        async with McpToolBus(await warm_pool.connections(ServerOptions(workspace=run_ws), names=[name])):
            pass

    warm_pid = warm_pool.pids()[name]
    try:
        print(start_row(f"{name}: --help (imports)", await cpu_timed(helped, n, children_cpu_ms), anchor))
        print(start_row(f"{name}: stdio spawn+initialize+tools/list", await cpu_timed(stdio, n, children_cpu_ms),
                        anchor))
        print(start_row(f"{name}: pooled process until it listens", await cpu_timed(pooled_process, n,
                                                                                   children_cpu_ms), anchor))
        print(start_row(f"{name}: pooled, a run's initialize+tools/list",
                        await cpu_timed(pooled_session, n, lambda: cpu_s(warm_pid) * 1000), anchor))
    finally:
        await warm_pool.aclose()


async def concurrent_runs(ws: Path, runs: int) -> None:
    print(f"{runs} concurrent runs' tool buses, all {len(BUILTIN_SERVERS)} builtin servers each "
          f"(this process and its children; ratio to stdio):")
    base_procs, base_rss = tree_rss(os.getpid())
    results: dict[str, tuple[int, int, float]] = {}
    for mode in ("stdio", "pool"):
        pool = McpServerPool()
        t = time.perf_counter()
        async with AsyncExitStack() as stack:
            async def one(i: int, mode: str = mode, pool: McpServerPool = pool) -> McpToolBus:
                run_ws = ws / f"{mode}{i}"
                run_ws.mkdir()
                servers = builtin_servers(run_ws) if mode == "stdio" else \
                    await pool.connections(ServerOptions(workspace=run_ws))
                return await stack.enter_async_context(McpToolBus(servers))
            buses = await asyncio.gather(*(one(i) for i in range(runs)))
            opened = time.perf_counter() - t
            for bus in buses:
                assert (await bus.call("fs.list", {})).ok
            procs, rss = tree_rss(os.getpid())
            results[mode] = (procs - base_procs, rss - base_rss, opened)
        await pool.aclose()
    _, stdio_rss, stdio_s = results["stdio"]
    for mode, (procs, rss, opened) in results.items():
        print(f"  {mode:<6} {procs:4d} child processes  {rss / 2**20:8.1f} MB over the bench process "
              f"({rss / 2**20 / runs:6.1f} MB per run, {rss / stdio_rss:5.2f}x)  opened in {opened:6.2f} s "
              f"({opened / stdio_s:5.2f}x)")
    print(f"  (bench process before the runs: {base_procs} process(es), {base_rss / 2**20:.1f} MB)")


SECTIONS = ("calls", "sandbox", "start", "runs")


async def main(n: int, runs: int, sections: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        if "calls" in sections:
            pool = McpServerPool()
            try:
                await round_trips(ws, n, pool)
            finally:
                await pool.aclose()
        if "sandbox" in sections:
            await command_start(ws, max(20, n // 4))
        if "start" in sections:
            await server_start(ws, max(3, n // 40))
        if "runs" in sections:
            await concurrent_runs(ws, runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--runs", type=int, default=10, help="concurrent runs for the process/memory comparison")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.runs, args.only))

"""Start-up times (issue 16: MCP server start ≤ 2 s, ``naestro --help`` ≤ 0.5 s), next to two anchors.

Every round runs each probe once, in an order rotated per round (a load spike hits all probes alike), and each
probe is a fresh process:

- ``python -c pass``: the interpreter's own start (anchor 1);
- ``bare FastMCP``: a stdio server from the mcp package with one trivial tool, spawn → ``initialize`` answered
  (anchor 2: what any Python MCP server built on the SDK pays; ours cannot start faster);
- ``NAME stdio``: ``python -m mcp_servers.NAME --workspace WS``, as naestro/toolbus.py starts a standalone
  server, spawn → ``initialize`` answered;
- ``NAME pooled``: ``python -m mcp_servers.pooled NAME``, as naestro/mcppool.py starts the shared pool, spawn →
  ``listening PORT`` → ``GET /health`` answered (the server module is imported before it listens);
- ``naestro mcp serve naestro``: the front door for IDE clients (naestro/frontdoor.py: plan, run, status,
  approve), spawn → ``initialize`` answered; it builds the whole runtime before it serves;
- ``all 6 pooled at once``: the six pooled servers spawned together, as the runtime's first run starts its pool,
  until the last ``/health`` is answered (CPU summed over the six);
- ``naestro --help`` and ``naestro runs list`` (a NAESTRO_HOME of its own with no runs): spawn → exit.

For each probe: the median wall time and its spread (min–max) over the rounds, the median of the per-round
ratios to each anchor, and the median CPU the process spent (user + system, from rusage). A start is one
thread, so on a loaded machine the CPU column says what a quiet machine's wall time would be; the wall times
are what a user waits for at the load printed with them.

Run from the repository root at normal priority: ``python -m bench.startup [--rounds 10] [--only fs db help]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import http.client
import json
import os
import resource
import secrets
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Copied, not imported, so that this process loads nothing of what it measures (mcp_servers.workspace and
# mcp_servers.pooled import the mcp SDK); tests/unit/test_startup_bench.py pins the copies.
BUILTIN_SERVERS = ("fs", "exec", "git", "pdf", "db", "web")
TOKEN_ENV = "NAESTRO_MCP_POOL_TOKEN"
READY_PREFIX = "listening "

BARE_FASTMCP = """
from mcp.server.fastmcp import FastMCP

mcp = FastMCP("anchor")


@mcp.tool()
def add(a: int, b: int) -> int:
    \"\"\"Add two integers.\"\"\"
    return a + b


mcp.run()
"""

INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench.startup", "version": "0"}}})


class ProbeFailed(Exception):
    """A probe's process did not get ready: the reason and the tail of its stderr."""


@dataclass
class Sample:
    wall_ms: float
    cpu_ms: float


@dataclass
class Probe:
    """One way of starting a process, measured from spawn to ready."""

    name: str
    run: Callable[[], Sample]
    samples: dict[int, Sample] = field(default_factory=dict)  # by round
    failures: list[str] = field(default_factory=list)


def children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


class _Child:
    """A probe's process: spawned with stderr to a file (shown when it fails), waited for and its CPU counted."""

    def __init__(self, argv: list[str], *, env: dict[str, str], scratch: Path, stdin: bool) -> None:
        self.stderr_path = scratch / f"stderr-{secrets.token_hex(4)}"
        self._stderr = self.stderr_path.open("wb")
        self.cpu0 = children_cpu_ms()
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr, cwd=scratch)

    def ready(self) -> float:
        return (time.perf_counter() - self.t0) * 1000

    def fail(self, reason: str) -> ProbeFailed:
        self.finish()
        tail = self.stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
        return ProbeFailed(f"{reason}; stderr: {' | '.join(tail) or '(empty)'}")

    def finish(self, timeout_s: float = 15.0) -> float:
        """Close stdin (servers exit on EOF), wait, and return the CPU the process spent in its whole life."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()  # the file stays for fail() to quote; the scratch folder goes at the end
        return children_cpu_ms() - self.cpu0

    def read_line(self, until: Callable[[str], bool], timeout_s: float) -> str:
        """The first stdout line ``until`` accepts; a ProbeFailed on EOF or timeout."""
        assert self.proc.stdout is not None
        fd, buffer = self.proc.stdout.fileno(), b""
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    text = line.decode(errors="replace")
                    if until(text):
                        return text
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self.fail(f"not ready after {timeout_s:.0f} s")
                if sel.select(left):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        raise self.fail(f"exited with {self.proc.wait()} before it was ready")
                    buffer += chunk


def _answers_initialize(line: str) -> bool:
    try:
        message = json.loads(line)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("id") == 1 and "result" in message


def stdio_probe(argv: list[str], *, env: dict[str, str], scratch: Path, timeout_s: float) -> Sample:
    """Spawn → the answer to ``initialize`` (sent at once: it waits in the pipe while the server imports)."""
    child = _Child(argv, env=env, scratch=scratch, stdin=True)
    assert child.proc.stdin is not None
    child.proc.stdin.write(INITIALIZE.encode() + b"\n")
    child.proc.stdin.flush()
    child.read_line(_answers_initialize, timeout_s)
    wall = child.ready()
    return Sample(wall, child.finish())


def _spawn_pooled(name: str, token: str, *, env: dict[str, str], scratch: Path) -> _Child:
    return _Child([sys.executable, "-m", "mcp_servers.pooled", name], env={**env, TOKEN_ENV: token},
                  scratch=scratch, stdin=True)


def _await_health(child: _Child, name: str, token: str, timeout_s: float) -> None:
    """``listening PORT`` on stdout, then ``GET /health`` answered 200 by the server kind asked for."""
    port = int(child.read_line(lambda line: line.startswith(READY_PREFIX), timeout_s).removeprefix(READY_PREFIX))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", "/health", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        raise child.fail(f"/health failed: {exc}") from exc
    finally:
        conn.close()
    if response.status != 200 or json.loads(body).get("server") != name:
        raise child.fail(f"/health answered {response.status} {body[:200]!r}")


def pooled_probe(name: str, *, env: dict[str, str], scratch: Path, timeout_s: float) -> Sample:
    """Spawn → ``listening PORT`` → ``GET /health`` answered 200, as the pool's first run would find it."""
    token = secrets.token_urlsafe(16)
    child = _spawn_pooled(name, token, env=env, scratch=scratch)
    _await_health(child, name, token, timeout_s)
    wall = child.ready()
    return Sample(wall, child.finish())


def pool_probe(names: tuple[str, ...], *, env: dict[str, str], scratch: Path, timeout_s: float) -> Sample:
    """Every server kind at once, as naestro/mcppool.py starts them for a runtime's first run (they import in
    parallel on the machine's cores): first spawn → the last ``/health`` answered; CPU summed over them."""
    token, cpu0, t0 = secrets.token_urlsafe(16), children_cpu_ms(), time.perf_counter()
    children = {name: _spawn_pooled(name, token, env=env, scratch=scratch) for name in names}
    try:
        for name, child in children.items():
            _await_health(child, name, token, timeout_s)
        wall = (time.perf_counter() - t0) * 1000
    finally:
        for child in children.values():
            child.finish()  # idempotent: a child that failed has finished already
    return Sample(wall, children_cpu_ms() - cpu0)


def exit_probe(argv: list[str], *, env: dict[str, str], scratch: Path, timeout_s: float) -> Sample:
    """Spawn → exit 0 (stdout read to its end, as a terminal or a pipe would)."""
    child = _Child(argv, env=env, scratch=scratch, stdin=False)
    assert child.proc.stdout is not None
    child.proc.stdout.read()
    try:
        code = child.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise child.fail(f"did not exit in {timeout_s:.0f} s") from exc
    wall = child.ready()
    if code != 0:
        raise child.fail(f"exited with {code}")
    return Sample(wall, child.finish())


def naestro_argv() -> list[str]:
    """The console script next to this interpreter (what users run), else ``python -m naestro``."""
    script = Path(sys.executable).parent / "naestro"
    return [str(script)] if script.exists() else [sys.executable, "-m", "naestro"]


def probes(only: list[str], *, env: dict[str, str], scratch: Path, timeout_s: float) -> list[Probe]:
    """The anchors first (the report divides by them), then the servers and commands asked for."""
    workspace = scratch / "workspace"
    workspace.mkdir()
    py, naestro = sys.executable, naestro_argv()

    def stdio(argv: list[str]) -> Callable[[], Sample]:
        return functools.partial(stdio_probe, argv, env=env, scratch=scratch, timeout_s=timeout_s)

    def exits(argv: list[str]) -> Callable[[], Sample]:
        return functools.partial(exit_probe, argv, env=env, scratch=scratch, timeout_s=timeout_s)

    found = [Probe("python -c pass", exits([py, "-c", "pass"])), Probe("bare FastMCP", stdio([py, "-c", BARE_FASTMCP]))]
    for name in BUILTIN_SERVERS:
        if not only or name in only:
            server = [py, "-m", f"mcp_servers.{name}", "--workspace", str(workspace)]
            found.append(Probe(f"{name} stdio", stdio(server)))
            found.append(Probe(f"{name} pooled", functools.partial(pooled_probe, name, env=env, scratch=scratch,
                                                                   timeout_s=timeout_s)))
    if not only or "frontdoor" in only:
        front = [*naestro, "mcp", "serve", "naestro", "--workspace", str(workspace)]
        found.append(Probe("naestro front door", stdio(front)))
    if not only or "pool" in only:
        found.append(Probe("all 6 pooled at once", functools.partial(pool_probe, BUILTIN_SERVERS, env=env,
                                                                     scratch=scratch, timeout_s=timeout_s)))
    if not only or "help" in only:
        found.append(Probe("naestro --help", exits([*naestro, "--help"])))
    if not only or "runs" in only:
        found.append(Probe("naestro runs list", exits([*naestro, "runs", "list"])))
    return found


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


def commit() -> str:
    git = shutil.which("git")
    if git is None:
        return "unknown"
    head = subprocess.run([git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run([git, "status", "--porcelain", "--", "naestro", "mcp_servers", "bench"],
                           capture_output=True, text=True, check=False)
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def report(found: list[Probe], loads: list[float]) -> None:
    anchors = found[:2]
    print(f"{'probe':<20} {'wall median':>11} {'(min-max)':>19} {'x pass':>7} {'x FastMCP':>9} {'CPU median':>10}")
    for probe in found:
        if not probe.samples:
            print(f"{probe.name:<20} no sample: {probe.failures[0] if probe.failures else 'not run'}")
            continue
        walls = [s.wall_ms for s in probe.samples.values()]
        ratios = []
        for anchor in anchors:  # per round, then the median: both ran under the same load
            per_round = [s.wall_ms / anchor.samples[i].wall_ms for i, s in probe.samples.items() if i in anchor.samples]
            ratios.append(f"{statistics.median(per_round):.2f}x" if per_round else "-")
        cpu = statistics.median(s.cpu_ms for s in probe.samples.values())
        print(f"{probe.name:<20} {statistics.median(walls):8.0f} ms ({min(walls):6.0f}-{max(walls):6.0f} ms) "
              f"{ratios[0]:>8} {ratios[1]:>9} {cpu:7.0f} ms")
        if probe.failures:
            print(f"{'':<20} {len(probe.failures)} failed, first: {probe.failures[0]}")
    print(f"load average (1 min) over the rounds: {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=[], help="measure only these servers / commands (the anchors "
                        "always run)", choices=[*BUILTIN_SERVERS, "frontdoor", "pool", "help", "runs"])
    parser.add_argument("--timeout-s", type=float, default=120.0, help="per probe, before it counts as failed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="naestro-startup-") as tmp:
        scratch = Path(tmp)
        (scratch / "home").mkdir()
        # The repository root first on the path, as `python -m` gives this process: the servers run from it.
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "NAESTRO_HOME": str(scratch / "home"),
               "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
        found = probes(args.only, env=env, scratch=scratch, timeout_s=args.timeout_s)
        print(f"python -m bench.startup --rounds {args.rounds}{' --only ' + ' '.join(args.only) if args.only else ''}"
              f"  {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}, Python {sys.version.split()[0]}")
        loads = []
        for i in range(args.rounds):
            loads.append(load_average()[0])
            shift = i % len(found)
            for probe in found[shift:] + found[:shift]:
                try:
                    probe.samples[i] = probe.run()
                except ProbeFailed as exc:
                    probe.failures.append(str(exc))
            loads.append(load_average()[0])
            print(f"round {i + 1}/{args.rounds} done, load {loads[-1]:.2f}", file=sys.stderr, flush=True)
        report(found, loads)


if __name__ == "__main__":
    main()

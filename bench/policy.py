"""Policy decision latency: embedded regorus vs the OPA Go engine in-process vs OPA over REST, same inputs.

Also the gate's whole cost per tool call (input facts + decision + signed audit append + journal
receipts), against the decision alone. Run: ``.venv/bin/python bench/policy.py [--n 2000]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from naestro.journal import Journal, request_hash
from nodes.roles import load_roles
from policies.audit import AuditLog, load_signing_key
from policies.decision import RunPolicy
from policies.engines import OpaGoEngine, OpaRestEngine, RegorusEngine, load_bundle
from policies.gate import Gate
from policies.opa_server import OpaApiServer
from policies.switches import KillSwitches

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("fs.read", {"path": "src/app.py"}),
    ("fs.write", {"path": "out/report.md", "content": "# report\n" * 20}),
    ("fs.read", {"path": "../../etc/passwd"}),
    ("exec.run", {"command": "pytest -q"}),
    ("web.fetch", {"url": "https://docs.python.org/3/library/json.html"}),
    ("nope.tool", {}),
]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.99) - 1] * 1e6


def measure(fn: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(min(50, n)):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return percentiles(samples)


def main(n: int) -> None:
    roles = {r.value: list(s.tools) for r, s in load_roles().items()}
    bundle = load_bundle(roles=roles)
    # Thousands of calls in seconds would trip the rate-limit rule (correctly); lift the limits for the bench.
    for limit in bundle.data["naestro"]["rate_limits"].values():
        limit["max_calls"] = 10**9
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = root / "ws"
        ws.mkdir()
        switches = KillSwitches(root / "control.sqlite")
        audit = AuditLog(root / "audit.jsonl", run_id="bench", key=load_signing_key(root / "keys"),
                         anchors=root / "anchors")
        policy = RunPolicy(allow_domains=["*.python.org"])
        known = {"fs.read", "fs.write", "fs.list", "exec.run", "web.fetch"}
        limits = bundle.data["naestro"]["rate_limits"]
        gate = Gate(RegorusEngine(bundle), run_id="bench", workspace=ws, policy=policy, audit=audit,
                    switches=switches, registered=lambda: known, rate_limits=limits)
        docs = [gate.tool_input(task="t", role="coder", tool=t, arguments=a).document() for t, a in CALLS]
        with OpaApiServer() as server:
            engines: list[Any] = [RegorusEngine(bundle), OpaGoEngine(bundle), OpaRestEngine(server.url, bundle)]
            rows = []
            for engine in engines:
                verdicts = [engine.decide(d).verdict for d in docs]
                turn = iter(range(10**9))
                p50, p99 = measure(lambda e=engine, i=turn: e.decide(docs[next(i) % len(docs)]), n)
                rows.append((engine.name, p50, p99, verdicts))
        base = rows[0][1]
        print(f"decision latency over {len(docs)} inputs x {n} calls (µs):")
        for name, p50, p99, verdicts in rows:
            print(f"  {name:9s} p50 {p50:8.1f}  p99 {p99:8.1f}  ratio to regorus {p50 / base:5.1f}x  {verdicts}")

        journal = Journal(root / "journal.jsonl")
        counter = iter(range(10**9))

        def gated_call() -> None:
            # What RunContext.call_tool does around the tool itself: gate (facts + decide + audit), journal.
            k = next(counter)
            args: dict[str, Any] = {"path": f"out/f{k % 50}.txt", "content": "x"}
            gate.authorize_tool(task="t", role="coder", tool="fs.write", arguments=args)
            req = request_hash(["fs.write", args])
            journal.started(f"k{k}", "tool", req)
            journal.done(f"k{k}", "tool", req, {"ok": True})

        allowed_doc = gate.tool_input(task="t", role="coder", tool="fs.write",
                                      arguments={"path": "out/a.txt", "content": "x"}).document()
        d50, _ = measure(lambda: gate.engine.decide(allowed_doc), n)
        g50, g99 = measure(gated_call, n)
        print(f"gate per allowed tool call: p50 {g50:.1f} µs, p99 {g99:.1f} µs "
              f"(decision alone p50 {d50:.1f} µs; gate/decision {g50 / d50:.1f}x)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    main(ap.parse_args().n)

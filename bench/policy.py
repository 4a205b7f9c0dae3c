"""Policy decision latency: embedded regorus vs the OPA Go engine in-process vs OPA over REST, same inputs.

Also the gate's whole cost per allowed tool call (input facts, secret/PII labels, the decision, the audit append
with its two Ed25519 signatures, the journal's before/after receipts), against the decision alone measured in the
same rounds: ``--rounds`` rounds interleave the decision and the gate, and each line gives the median of the
rounds' p50s with their spread. Goals (issue 16): decision ≤ 100 µs p50, gate ≤ 0.5 ms p50.

Run from the repository root: ``python -m bench.policy [--n 2000] [--rounds 5]``. (Run as a file, ``bench/`` would
come first on ``sys.path`` and its modules shadow packages of the same name, such as ``checkpoints``.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} µs (rounds {min(values):.1f}–{max(values):.1f})"


def main(n: int, rounds: int) -> None:
    from naestro.journal import Journal, request_hash
    from nodes.roles import load_roles
    from policies.audit import AuditLog, load_signing_key
    from policies.decision import RunPolicy
    from policies.engines import OpaGoEngine, OpaRestEngine, RegorusEngine, load_bundle
    from policies.gate import Gate
    from policies.opa_server import OpaApiServer
    from policies.switches import KillSwitches

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
        inputs = [gate.tool_input(task="t", role="coder", tool=t, arguments=a) for t, a in CALLS]
        docs = [i.document() for i in inputs]
        with OpaApiServer() as server:
            engines: list[Any] = [RegorusEngine(bundle), OpaGoEngine(bundle), OpaRestEngine(server.url, bundle)]
            rows = []
            for engine in engines:
                verdicts = [engine.decide(d).verdict for d in docs]
                turn = iter(range(10**9))
                p50, p99 = measure(lambda e=engine, i=turn: e.decide_input(inputs[next(i) % len(inputs)]), n)
                rows.append((engine.name, p50, p99, verdicts))
        base = rows[0][1]
        print(f"decision latency over {len(docs)} inputs x {n} calls (µs), as the gate calls it (decide_input):")
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

        allowed = gate.tool_input(task="t", role="coder", tool="fs.write",
                                  arguments={"path": "out/a.txt", "content": "x"})
        allowed_doc = allowed.document()
        decision, from_dict, whole = [], [], []
        for _ in range(rounds):
            decision.append(measure(lambda: gate.engine.decide_input(allowed), n)[0])
            from_dict.append(measure(lambda: gate.engine.decide(allowed_doc), n)[0])
            whole.append(measure(gated_call, n)[0])
        print(f"an allowed fs.write, {rounds} rounds x {n} calls, p50 per round:")
        print(f"  decision (decide_input)         {spread(decision)}")
        print(f"  decision from a dict (decide)   {spread(from_dict)}")
        print(f"  gate + journal per tool call    {spread(whole)}   "
              f"gate/decision {statistics.median(whole) / statistics.median(decision):.1f}x")


if __name__ == "__main__":
    if not __package__:
        sys.exit("run it as a module from the repository root: python -m bench.policy")
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    main(a.n, a.rounds)

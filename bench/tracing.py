"""Tracing overhead per agent step: tracing off vs local spans.jsonl vs local + OTLP/HTTP export.

A step is one model call plus one tool call (each with its policy decision), made by a real run: LangGraph,
SQLite checkpoints, MCP servers, regorus; the model is the scripted one with no delay, so what is measured is
Naestro's own work per step (the worst case for relative overhead: a real model call takes seconds). The OTLP
mode exports to ``OtlpSink``, a local OTLP/HTTP receiver in this process. Modes are interleaved per round.

Also the bare cost of one span (open, set attributes, close, write/export) in each mode.
Run: ``.venv/bin/python -m bench.tracing [--rounds 5]`` (as a module, like every bench).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from naestro.events import read_events
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from naestro.telemetry import OtlpSink, Telemetry, TelemetrySettings, read_spans, span
from tests.fakes import ScriptedProvider, all_text

STEPS = 7  # tool steps per task (the coder's max_steps is 8: seven writes, then finish)
TASKS = 6


def script(messages: list[BaseMessage]) -> dict[str, Any]:
    if "Write 2-4 sentences" in all_text(messages):
        return {"summary": "done"}
    step = sum(isinstance(m, AIMessage) for m in messages)
    if step < STEPS:
        return {"thought": "w", "tool": "fs.write", "arguments": {"path": f"f{step}.txt", "content": "x" * 200}}
    return {"thought": "done", "tool": "finish", "arguments": {"summary": "ok", "outputs": {}}}


def plan() -> Plan:
    tasks = [{"id": f"t{i}", "role": "coder", "description": "write files", "deps": [f"t{i - 1}"] if i else [],
              "accept": [{"kind": "file_exists", "path": "f0.txt"}]} for i in range(TASKS)]
    return Plan.model_validate({"goal": "bench", "tasks": tasks})


SPANS_PER_STEP: list[float] = []


async def per_step(home: Path, telemetry: Telemetry) -> list[float]:
    settings = Settings(home=home, max_replans=0)
    result = await Runner(settings, ScriptedProvider(script), telemetry=telemetry).start("bench", plan=plan())
    assert result.passed, result.tasks
    run_dir = settings.runs_dir / result.record.run_id
    if (run_dir / "spans.jsonl").exists():
        SPANS_PER_STEP.append(len(read_spans(run_dir)) / (TASKS * (STEPS + 1)))
    events = read_events(run_dir / "events.jsonl")
    return [float(e["wall_s"]) / (STEPS + 1) for e in events if e["event"] == "task_ran"]  # type: ignore[arg-type]


def span_cost(telemetry: Telemetry, run_dir: Path, n: int) -> float:
    with telemetry.run(run_id="bench", run_dir=run_dir):
        start = time.perf_counter()
        for i in range(n):
            with span("chat bench", attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                                                "naestro.task.id": f"t{i}"}) as sp:
                sp.set_attributes({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5})
        return (time.perf_counter() - start) / n


async def main(rounds: int, spans: int) -> None:
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp, OtlpSink() as sink:
        modes = {"off": Telemetry(TelemetrySettings(naestro_trace="off")),
                 "local": Telemetry(TelemetrySettings()),
                 "local+otlp": Telemetry(TelemetrySettings(otel_exporter_otlp_endpoint=sink.endpoint))}
        samples: dict[str, list[float]] = {m: [] for m in modes}
        for r in range(rounds):
            for mode, telemetry in modes.items():
                samples[mode] += await per_step(Path(tmp) / f"{mode}-{r}", telemetry)
        base = statistics.median(samples["off"])
        print(f"per agent step (model call + tool call + 2 policy decisions), {len(samples['off'])} samples/mode")
        print("| mode | median ms/step | p90 ms/step | ratio to off |")
        print("|---|---|---|---|")
        for mode, xs in samples.items():
            xs.sort()
            med = statistics.median(xs)
            print(f"| {mode} | {med * 1e3:.2f} | {xs[int(len(xs) * 0.9) - 1] * 1e3:.2f} | {med / base:.3f} |")
        print(f"\nOTLP receiver got {len(sink.spans)} spans in {sink.requests} requests; "
              f"{statistics.median(SPANS_PER_STEP):.1f} spans per step (run, phase, task, agent amortised)\n")
        print(f"one span (open, 5 attributes, close), {spans} spans")
        print("| mode | µs/span |")
        print("|---|---|")
        for mode, telemetry in modes.items():
            cost = span_cost(telemetry, Path(tmp) / f"span-{mode}", spans)
            print(f"| {mode} | {cost * 1e6:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spans", type=int, default=5000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.spans))

"""Reference programs asked for inside a JSON string (the anchor: how the planner asked until now) or as a Markdown
code block, on the embedded model: how many samples give a usable result (the program runs in the sandbox and its
result has the file's shape), how many distinct results the usable ones give, tokens and seconds per sample.

Interleaved in one run: for each golden data goal, deliverable and sample, both formats are asked with the same
sampling (temperature 0.5, the sample's seed), in alternating order. Run:

    python -m bench.reference_format [--samples 4] [--goal report_big_orders ...] [--base-url URL] [--json]

``--base-url`` points at an OpenAI-compatible server already running (e.g. the llama-server of a golden run);
without it the embedded server of this home starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mcp_servers.sandbox import Completed, Limits, run_sandboxed
from naestro.endpoints import Endpoint, ModelRegistry, load_registry
from naestro.golden import load_suite
from naestro.llm import EndpointProvider
from naestro.settings import Settings
from nodes.reference import ProgramFormat, deliverables, sample_program

FORMATS: tuple[ProgramFormat, ...] = ("json", "fenced")
DATA_GOALS = ["report_big_orders", "report_region_totals", "report_score_stats", "region_totals", "adults_csv"]


async def _sandboxed(command: str, where: Path) -> Completed | None:
    return await run_sandboxed(where, command, Limits(wall_s=20, cpu_s=20))


def _provider(settings: Settings, base_url: str | None) -> EndpointProvider:
    if base_url is None:
        return EndpointProvider(load_registry(settings.models_file), settings)
    ep = Endpoint(name="bench", kind="openai", model="bench", base_url=base_url, context=8192,
                  capabilities=("json_schema",), timeout_s=900)
    return EndpointProvider(ModelRegistry(default="bench", fast="bench", endpoints=(ep,)), settings)


async def measure(samples: int, goal_ids: list[str], base_url: str | None) -> dict[str, Any]:
    settings = Settings()
    provider = _provider(settings, base_url)
    goals = {g.id: g for g in load_suite(Path(__file__).resolve().parent.parent / "tests" / "golden")}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-reference-") as tmp:
        for gid in goal_ids:
            goal = goals[gid]
            ws = Path(tmp) / gid
            ws.mkdir()
            for rel, text in goal.files.items():
                (ws / rel).write_text(text)
            for file in deliverables(goal.goal, ws):
                for i in range(samples):
                    sampling: dict[str, float | int] = {"temperature": 0.5, "seed": 101 + i}
                    for fmt in (FORMATS if i % 2 == 0 else tuple(reversed(FORMATS))):
                        start = time.monotonic()
                        content, problem, tokens = await sample_program(goal.goal, file, provider, ws, _sandboxed,
                                                                        program_format=fmt, sampling=sampling)
                        rows.append({"goal": gid, "file": file, "sample": i, "format": fmt,
                                     "usable": content is not None, "result": content, "problem": problem,
                                     "tokens": tokens, "seconds": round(time.monotonic() - start, 2)})
                        print(json.dumps({k: v for k, v in rows[-1].items() if k != "result"}), flush=True)
    summary: dict[str, Any] = {}
    for fmt in FORMATS:
        mine = [r for r in rows if r["format"] == fmt]
        per_file: dict[tuple[str, str], set[str]] = {}
        for r in mine:
            if r["usable"]:
                per_file.setdefault((r["goal"], r["file"]), set()).add(str(r["result"]).strip())
        summary[fmt] = {"samples": len(mine), "usable": sum(r["usable"] for r in mine),
                        "distinct_results": sum(len(v) for v in per_file.values()),
                        "files_with_a_result": len(per_file),
                        "median_tokens": statistics.median(r["tokens"] for r in mine) if mine else 0,
                        "median_seconds": statistics.median(r["seconds"] for r in mine) if mine else 0}
    j, f = summary["json"], summary["fenced"]
    summary["ratio_usable_fenced_over_json"] = round(f["usable"] / j["usable"], 2) if j["usable"] else None
    summary["ratio_seconds_fenced_over_json"] = (round(f["median_seconds"] / j["median_seconds"], 2)
                                                 if j["median_seconds"] else None)
    return {"summary": summary, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--goal", action="append", dest="goals")
    parser.add_argument("--base-url")
    parser.add_argument("--json", action="store_true", help="print the rows too")
    args = parser.parse_args()
    out = asyncio.run(measure(args.samples, args.goals or DATA_GOALS, args.base_url))
    print(json.dumps(out if args.json else out["summary"], indent=1))


if __name__ == "__main__":
    main()

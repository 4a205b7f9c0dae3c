"""A real Naestro run in its own process, for SIGKILL tests: ``python -m tests.crash.child HOME start|resume [RUN]``.

Real LangGraph, SQLite checkpoints, MCP servers, sandboxed exec and the policy gate; only the model text is
scripted. Every tool effect appends a unique key to ``effects.log`` in the workspace, so the parent can
count effects per completed tool call.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider, all_text


def effect(key: str) -> dict[str, Any]:
    return {"tool": "exec.run", "arguments": {"command": f"echo {key} >> effects.log"}}


PLAN = Plan.model_validate({"goal": "crash test", "tasks": [
    *({"id": f"d{i}", "role": "runner", "description": f"direct {i}", "deps": [f"d{i - 1}"] if i % 2 else [],
       "action": effect(f"d{i}"), "accept": [{"kind": "regex", "file": "effects.log", "pattern": f"d{i}"}]}
      for i in range(4)),
    *({"id": f"g{i}", "role": "coder", "description": f"agent {i}", "deps": [f"d{i}"],
       "accept": [{"kind": "regex", "file": "effects.log", "pattern": f"g{i}b"}]} for i in range(2)),
]})
KEYS = [f"d{i}" for i in range(4)] + [f"g{i}{s}" for i in range(2) for s in "ab"]


def script(messages: list[BaseMessage]) -> dict[str, Any]:
    text = all_text(messages)
    if "Write 2-4 sentences" in text:
        return {"summary": "every effect was recorded"}
    task = re.search(r"Your task \((\w+)\)", text)
    assert task is not None
    steps = sum(isinstance(m, AIMessage) for m in messages)
    if steps < 2:
        return {"thought": "effect", **effect(f"{task.group(1)}{'ab'[steps]}")}
    return {"thought": "done", "tool": "finish", "arguments": {"summary": "ok", "outputs": {}}}


async def main(home: Path, action: str, run_id: str | None) -> int:
    settings = Settings(home=home, max_replans=0)
    runner = Runner(settings, ScriptedProvider(script, delay_s=0.05))
    if action == "start":
        result = await runner.start("crash test", plan=PLAN,
                                    policy=RunPolicy(approve=[ApprovedScope(tool="exec.run")]))
    else:
        assert run_id is not None
        result = await runner.resume(run_id)
    print(result.record.run_id, result.record.status, flush=True)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)))

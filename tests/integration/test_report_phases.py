"""A re-planned run's final report shows what failed before the re-plan (issue 18: the first phase's failure,
``wall_s`` exceeded, was only in report.phase0.md under a PASSED report.md). Scripted model text, real graph."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from tests.fakes import ScriptedProvider, all_text


def task(tid: str, pattern: str) -> dict[str, Any]:
    return {"id": tid, "role": "coder", "description": f"write {tid}.txt",
            "accept": [{"kind": "regex", "file": f"{tid}.txt", "pattern": pattern}]}


async def test_the_final_report_shows_the_failed_earlier_phase(settings: Settings) -> None:
    settings = settings.model_copy(update={"max_replans": 1, "review": False})
    plan = Plan.model_validate({"goal": "g", "tasks": [task("a", "^right$")]})
    writes = iter(["wrong", "wrong", "right"])  # both phase-0 attempts fail; the re-planned task writes it right

    def script(messages: list[BaseMessage]) -> Any:
        text = all_text(messages)
        if "You are the Planner" in text:
            return {"goal": "g", "tasks": [task("a", "^(right|almost)$")]}
        if "Write 2-4 sentences" in text:
            return {"summary": "done"}
        if not any(isinstance(m, AIMessage) for m in messages):
            return {"thought": "w", "tool": "fs.write", "arguments": {"path": "a.txt", "content": next(writes)}}
        return {"thought": "f", "tool": "finish", "arguments": {"summary": "wrote a.txt", "outputs": {}}}

    result = await Runner(settings, ScriptedProvider(script)).start("g", plan=plan)
    assert result.passed
    report = result.report_path.read_text()
    assert report.startswith("# Naestro report: PASSED")
    earlier = report[report.index("**Earlier phases**"):report.index("## Summary")]
    assert re.search(r"- phase 0 \(report\.phase0\.md\): FAILED: a failed \(regex check failed: .*does not match",
                     earlier), earlier
    assert "phase 1" not in earlier  # the last phase is the report itself


async def test_a_one_phase_report_has_no_earlier_phases(settings: Settings) -> None:
    plan = Plan.model_validate({"goal": "g", "tasks": [task("a", "^ok$")]})

    def script(messages: list[BaseMessage]) -> Any:
        if "Write 2-4 sentences" in all_text(messages):
            return {"summary": "done"}
        if not any(isinstance(m, AIMessage) for m in messages):
            return {"thought": "w", "tool": "fs.write", "arguments": {"path": "a.txt", "content": "ok"}}
        return {"thought": "f", "tool": "finish", "arguments": {"summary": "wrote a.txt", "outputs": {}}}

    result = await Runner(settings, ScriptedProvider(script)).start("g", plan=plan)
    assert result.passed and "Earlier phases" not in result.report_path.read_text()

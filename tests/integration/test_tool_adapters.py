"""A merged ``tool_adapter`` self-PR changes how runs call tools (issue 21): the active signed release's
``tools/exec.yaml`` puts its hint on exec.run's line of the agent's prompt and its timeout on the call, through
the composition root (``build_runtime``) and a real run (LangGraph, the pooled MCP servers, the gate, the
sandbox); only the model's text is scripted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from naestro.improve.adapter_rule import tool_adapter_for
from naestro.improve.release import publish
from naestro.improve.repo import ConfigRepo, seed_files
from naestro.introspect import introspect_run
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.runtime import build_runtime
from naestro.settings import Settings
from naestro.tooladapter import ToolAdapter, parse_server_adapter
from policies.audit import load_signing_key
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider, all_text

HINT = "run tests with python3 -m pytest -q and read the first failure"
PLAN = {"goal": "count", "tasks": [{"id": "count", "role": "runner", "description": "count files into n.txt",
                                    "accept": [{"kind": "regex", "file": "n.txt", "pattern": "^counted$"}]}]}


async def test_the_active_release_tool_adapter_reaches_the_prompt_and_the_call(settings: Settings) -> None:
    improve = settings.home / "improve"
    key = load_signing_key(settings.keys_dir)
    adapter = f"tools:\n  run:\n    hint: {HINT}\n    timeout_s: 2\n"
    publish(ConfigRepo.open(improve / "config.git", seed={**seed_files(), "tools/exec.yaml": adapter}), improve, key,
            proposal=None)

    prompts: list[str] = []
    observations: list[str] = []

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "Write 2-4 sentences" in text:
            return {"summary": "Counted."}
        prompts.append(str(messages[0].content))
        turns = sum(isinstance(m, AIMessage) for m in messages)
        if turns:
            last = messages[-1]
            observations.append(str(last.content) if isinstance(last, HumanMessage) else "")
        if turns == 0:  # longer than the adapter's 2 s: cancelled by the bus, the sandbox killed
            return {"thought": "wait", "tool": "exec.run", "arguments": {"command": "sleep 30; echo late > late.txt"}}
        if turns == 1:
            return {"thought": "count", "tool": "exec.run", "arguments": {"command": "echo counted > n.txt"}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "counted", "outputs": {}}}

    runtime = build_runtime(settings, provider=ScriptedProvider(script))
    assert runtime.tool_adapters == {"exec.run": ToolAdapter(hint=HINT, timeout_s=2)}
    try:
        result = await Runner.of(runtime).start(
            "count the files", plan=Plan.model_validate(PLAN),
            policy=RunPolicy(mode="auto", approve=[ApprovedScope(tool="exec.run")]))
    finally:
        await runtime.aclose()
    assert result.record.status == "passed", result.record.error
    line = next(ln for ln in prompts[0].splitlines() if ln.startswith("- exec.run:"))
    assert line.endswith(f"Hint: {HINT}"), line
    assert observations[0].startswith("[exec.run ERROR]") and "timed out after 2s" in observations[0]
    workspace = Path(result.record.workspace)
    assert (workspace / "n.txt").read_text() == "counted\n" and not (workspace / "late.txt").exists()

    # Learn from it: the timed-out call's event carries the limit it hit, the Introspector makes it a finding,
    # and the loop's rule proposes the next adapter (the hint kept, the timeout doubled).
    (finding,) = [f for f in introspect_run(settings.runs_dir / result.record.run_id) if f.kind == "tool_timeout"]
    assert (finding.tool, finding.limit_s) == ("exec.run", 2.0)
    proposal = tool_adapter_for(finding, adapter)
    assert proposal is not None and proposal.kind == "tool_adapter"
    (change,) = proposal.changes
    assert change.path == "tools/exec.yaml"
    assert parse_server_adapter(change.path, change.text or "") == {"exec.run": ToolAdapter(hint=HINT, timeout_s=4)}
